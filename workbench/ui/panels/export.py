"""Export buttons: Q/DQ ONNX, plan JSON, calibration cache, HTML report."""
from __future__ import annotations

import html

from ..._optional import require

w = require("ipywidgets", "workbench app", "ui")

KINDS = (("qdq", "Q/DQ ONNX (TensorRT)"), ("plan", "Plan JSON"), ("cache", "Calibration cache"),
         ("report", "HTML report"))


class ExportPanel:
    def __init__(self, session, runner):
        self.session, self.runner = session, runner
        self.folder = w.Text(value=str(session.project / "exports") if session.project else "",
                             description="Folder", placeholder="output folder", layout=w.Layout(width="460px"))
        self.folder.add_class("wb-export-folder")
        self.buttons = {}
        for kind, label in KINDS:
            b = w.Button(description=label, icon="download", layout=w.Layout(width="190px"))
            b.add_class(f"wb-export-{kind}")
            b.on_click(lambda _, k=kind: runner.guard(self.export)(k))
            self.buttons[kind] = b
        self.written = w.HTML()
        self.written.add_class("wb-export-log")
        self.widget = w.VBox([self.folder, w.HBox(list(self.buttons.values())), self.written])

    def export(self, kind: str):
        from pathlib import Path

        folder = self.folder.value.strip()
        path = None
        if folder:
            from ...export.names import export_path

            stem = self.session.model_info.path.stem if self.session.model_info and self.session.model_info.path else "model"
            path = export_path(Path(folder) / f"{stem}.quant", kind)
        out = self.session.export(kind, path)
        self.written.value += f"<div>wrote <code>{html.escape(str(out))}</code></div>"
        return out

    def refresh(self, what: str) -> None:
        """Nothing to redraw: the buttons read the session when pressed."""
