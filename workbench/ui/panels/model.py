"""Model and data panel: paths with validation, a small file browser, summary. How images become
the model's input (preset, size, normalisation...) has one place: the input-preparation panel."""
from __future__ import annotations

import html
from pathlib import Path

from ..._optional import require
from ...errors import WorkbenchError
from ...session import Event
from .base import Panel

w = require("ipywidgets", "workbench app", "ui")


class FileBrowser:
    """A folder listing to pick a file or folder into a Text widget (ipywidgets has none)."""

    def __init__(self, target, *, suffixes=(".onnx",), folders: bool = False):
        self.target, self.suffixes, self.folders = target, suffixes, folders
        start = Path(target.value).expanduser() if target.value else Path.cwd()
        self.cwd = (start if start.is_dir() else start.parent).resolve()
        self.listing = w.Select(options=[], rows=8, layout=w.Layout(width="100%", max_width="640px"))
        self.listing.add_class("wb-file-list")
        self.use = w.Button(description="Use", tooltip="use the highlighted entry (or this folder)",
                            layout=w.Layout(width="auto", flex="0 0 auto"))
        self.use.on_click(lambda _: self._pick())
        self.listing.observe(self._open_dir, names="value")
        self.widget = w.VBox([self.listing, self.use], layout=w.Layout(display="none"))
        self.refresh()

    def toggle(self) -> None:
        self.widget.layout.display = None if self.widget.layout.display == "none" else "none"

    def refresh(self) -> None:
        try:
            entries = sorted(self.cwd.iterdir(), key=lambda p: (not p.is_dir(), p.name.lower()))
        except OSError:
            entries = []
        opts = [("../", str(self.cwd.parent))]
        for p in entries:
            if p.name.startswith("."):
                continue
            if p.is_dir():
                opts.append((p.name + "/", str(p)))
            elif p.suffix.lower() in self.suffixes:
                opts.append((p.name, str(p)))
        self.listing.unobserve(self._open_dir, names="value")
        self.listing.options, self.listing.value = opts, None
        self.listing.observe(self._open_dir, names="value")

    def _open_dir(self, change) -> None:
        p = Path(change["new"]) if change["new"] else None
        if p is not None and p.is_dir() and (not self.folders or change["new"] == str(self.cwd.parent)):
            self.cwd = p.resolve()
            self.refresh()

    def _pick(self) -> None:
        value = self.listing.value
        self.target.value = value if value else str(self.cwd)
        self.toggle()


def _path_row(label: str, value: str, css: str, browser_kw: dict, tip: str):
    text = w.Text(value=value, description=label, tooltip=tip, layout=w.Layout(flex="1 1 400px", min_width="300px"),
                  style={"description_width": "110px"})
    text.add_class(css)
    valid = w.HTML(layout=w.Layout(width="auto", flex="0 0 auto"))
    browse = w.Button(description="Browse…", tooltip="pick from a folder listing",
                      layout=w.Layout(width="auto", flex="0 0 auto"))
    browser = FileBrowser(text, **browser_kw)
    browse.on_click(lambda _: browser.toggle())
    return text, valid, w.VBox([w.HBox([text, browse, valid], layout=w.Layout(align_items="center", width="100%")),
                                browser.widget], layout=w.Layout(width="100%"))


class ModelPanel(Panel):
    """Pick the ONNX model and the calibration source (folder or loader script); the input
    preparation is the preparation panel's (:mod:`.preparation`)."""

    name, title = "model", "Model and data"
    events = frozenset({Event.MODEL, Event.DATA})

    def __init__(self, ctx):
        super().__init__(ctx)
        session, runner = self.session, self.runner
        s = session.data_settings
        model = str(session.model_info.path) if session.model_info and session.model_info.path else ""
        self.model_path, self.model_ok, model_row = _path_row("ONNX model", model, "wb-model-path", {},
                                                              "the FP32 ONNX model to quantize")
        self.data_path, self.data_ok, data_row = _path_row(
            "Calibration data", s.source or "", "wb-data-path", {"suffixes": (), "folders": True},
            "folder of images or .npy/.npz files used to find the ranges")
        self.eval_path, self.eval_ok, eval_row = _path_row(
            "Evaluation data", s.eval_source or "", "wb-eval-path", {"suffixes": (), "folders": True},
            "held-out folder to compare the quantized model with FP32 (empty: the calibration data)")
        self.loader = w.Text(value=s.loader_script or "", description="or loader script",
                             placeholder="loader.py:load_data", tooltip="a Python data loader instead of a folder",
                             layout=w.Layout(flex="1 1 400px", min_width="300px"), style={"description_width": "110px"})
        self.apply = w.Button(description="Open", button_style="primary", icon="folder-open",
                              tooltip="open the model and check the data",
                              layout=w.Layout(width="auto", flex="0 0 auto"))
        self.apply.add_class("wb-open")
        self.apply.on_click(lambda _: runner.guard(self.open)())
        self.busy_controls = [self.apply]
        for text, flag, kind in ((self.model_path, self.model_ok, "file"), (self.data_path, self.data_ok, "dir"),
                                 (self.eval_path, self.eval_ok, "dir")):
            text.observe(lambda ch, f=flag, k=kind: self._validate(ch["new"], f, k), names="value")
            self._validate(text.value, flag, kind)
        self.summary = w.HTML()
        self.summary.add_class("wb-model-summary")
        self.widget = w.VBox([model_row, data_row, w.HBox([self.loader], layout=w.Layout(width="100%")), eval_row,
                              w.HBox([self.apply], layout=w.Layout(align_items="center")),
                              self.summary], layout=w.Layout(width="100%"))

    @staticmethod
    def _validate(value: str, flag, kind: str) -> None:
        if not value:
            flag.value = ""
            return
        p = Path(value).expanduser()
        good = p.is_file() if kind == "file" else p.is_dir()
        what = "file" if kind == "file" else "folder"
        flag.value = "✔" if good else f"<span style='color:#a00'>✘ not a {what}</span>"

    def open(self) -> None:
        """Open the model (if its path changed) and apply the data settings (the input preparation
        stays as the preparation panel set it)."""
        s = self.session
        path = self.model_path.value.strip()
        if not path:
            raise WorkbenchError("Type the path of an ONNX model first.")
        if s.model_info is None or str(s.model_info.path) != path:
            s.open_model(path)
        s.set_data(self.data_path.value.strip() or None, loader_script=self.loader.value.strip() or None,
                   preset=s.data_settings.preset, preprocess=s.data_settings.preprocess,
                   limit=s.data_settings.limit, eval_source=self.eval_path.value.strip() or None,
                   eval_limit=s.data_settings.eval_limit, preparation=s.data_settings.preparation)
        self.runner.status.value = f"Opened {html.escape(path)}; data: {html.escape(s.data.describe())}."

    def headline(self) -> str:
        """One line for the folded section's title."""
        s = self.session
        if s.model_info is None:
            return "Model and data: none open"
        d = s.data_settings
        name = Path(s.model_info.path).name if s.model_info.path else "model"
        calib = Path(d.source).name if d.source else (d.loader_script or "no data")
        ev = f", evaluation {Path(d.eval_source).name}" if d.eval_source else ""
        return f"Model and data: {name} · calibration {calib}{ev}"

    def refresh(self, event) -> None:
        if self.session.model_info is None:
            self.summary.value = "<i>No model open.</i>"
            return
        d = self.session.model_summary()
        ops = ", ".join(f"{k} {v}" for k, v in sorted(d["op_counts"].items(), key=lambda kv: -kv[1]))
        qops = ", ".join(f"{k} {v}" for k, v in d["quantizable_by_op"].items())
        self.summary.value = (
            f"<div style='font-size:12px'><b>{html.escape(Path(d['model']).name)}</b> (opset {d['opset']}): inputs "
            f"{html.escape('; '.join(d['inputs']))}; outputs {html.escape('; '.join(d['outputs']))}<br>"
            f"{d['nodes']} nodes: {html.escape(ops)}<br>"
            f"<b>{d['quantizable_nodes']}</b> quantizable nodes: {html.escape(qops)}</div>")
