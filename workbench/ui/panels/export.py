"""Export buttons, one per export kind (:data:`workbench.outputs.names.EXPORT_KINDS`), named by
the same scheme as the CLI and the Session."""
from __future__ import annotations

import html
from pathlib import Path

from ..._optional import require
from ...outputs.names import EXPORT_KINDS, export_path
from ...session import Event
from .base import Panel

w = require("ipywidgets", "workbench app", "ui")

LABELS = {"qdq": "Q/DQ ONNX (TensorRT)", "ort": "ORT twin ONNX", "cpu_uint8": "CPU uint8 ONNX",
          "plan": "Plan JSON", "cache": "Calibration cache", "ranges": "Ranges JSON", "report": "HTML report",
          "explorer": "Model Explorer overlays"}


class ExportPanel(Panel):
    name, title = "export", "Export"
    events = frozenset({Event.MODEL})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.stem = w.Text(value="", description="Files", placeholder="folder/name (each kind adds its suffix)",
                           tooltip="result stem: <stem>.onnx, <stem>.plan.json, <stem>.calib.cache, …",
                           layout=w.Layout(flex="1 1 420px", min_width="320px"), style={"description_width": "40px"})
        self.stem.add_class("wb-export-folder")
        self.buttons = {}
        for kind, spec in EXPORT_KINDS.items():
            b = w.Button(description=LABELS.get(kind, kind), icon="download", tooltip=spec.description,
                         layout=w.Layout(width="auto", flex="0 0 auto"))
            b.add_class(f"wb-export-{kind}")
            b.on_click(lambda _, k=kind: self.runner.guard(self.export)(k))
            self.buttons[kind] = b
        self.written = w.HTML()
        self.written.add_class("wb-export-log")
        self.widget = w.VBox([w.HBox([self.stem], layout=w.Layout(width="100%")),
                              w.HBox(list(self.buttons.values()), layout=w.Layout(flex_flow="row wrap")),
                              self.written], layout=w.Layout(width="100%"))
        self.refresh(Event.MODEL)

    def export(self, kind: str):
        text = self.stem.value.strip()
        path = export_path(Path(text), kind) if text else None
        if kind == "report":
            from ..report import export_report

            out = export_report(self.session, path)
        else:
            self.session.last_export_removed = []
            out = self.session.export(kind, path)
        lines = [f"wrote <code>{html.escape(str(out))}</code>"]
        lines += [f"removed <code>{html.escape(str(f))}</code> (a file of this stem from an earlier export)"
                  for f in getattr(self.session, "last_export_removed", [])]
        self.written.value += "".join(f"<div style='font-size:12px'>{line}</div>" for line in lines)
        return out

    def refresh(self, event) -> None:
        s = self.session
        if s.model_info is not None and s.project is not None and not self.stem.value:
            self.stem.value = str(s.export_stem())
