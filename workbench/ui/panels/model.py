"""Model and data panel: paths with validation, a small file browser, preprocessing, summary."""
from __future__ import annotations

import html
from pathlib import Path

from ..._optional import require

w = require("ipywidgets", "workbench app", "ui")

PRESET_NONE = "(default)"


class FileBrowser:
    """A folder listing to pick a file or folder into a Text widget (ipywidgets has none)."""

    def __init__(self, target, *, suffixes=(".onnx",), folders: bool = False):
        self.target, self.suffixes, self.folders = target, suffixes, folders
        start = Path(target.value).expanduser() if target.value else Path.cwd()
        self.cwd = (start if start.is_dir() else start.parent).resolve()
        self.listing = w.Select(options=[], rows=8, layout=w.Layout(width="420px"))
        self.listing.add_class("wb-file-list")
        self.use = w.Button(description="Use", layout=w.Layout(width="70px"))
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


def _path_row(label: str, value: str, css: str, browser_kw: dict):
    text = w.Text(value=value, description=label, layout=w.Layout(width="560px"),
                  style={"description_width": "110px"})
    text.add_class(css)
    valid = w.HTML()
    browse = w.Button(description="Browse…", layout=w.Layout(width="90px"))
    browser = FileBrowser(text, **browser_kw)
    browse.on_click(lambda _: browser.toggle())
    return text, valid, w.VBox([w.HBox([text, browse, valid]), browser.widget])


class ModelPanel:
    """Pick the ONNX model, the calibration source (folder or loader script), preprocessing."""

    def __init__(self, session, runner):
        from ...data import PRESETS

        self.session, self.runner = session, runner
        s = session.data_settings
        model = str(session.model_info.path) if session.model_info and session.model_info.path else ""
        self.model_path, self.model_ok, model_row = _path_row("ONNX model", model, "wb-model-path", {})
        self.data_path, self.data_ok, data_row = _path_row(
            "Calibration", s.source or "", "wb-data-path",
            {"suffixes": (), "folders": True})
        self.eval_path, self.eval_ok, eval_row = _path_row(
            "Evaluation", s.eval_source or "", "wb-eval-path", {"suffixes": (), "folders": True})
        self.loader = w.Text(value=s.loader_script or "", description="or loader script",
                             placeholder="loader.py:load_data", layout=w.Layout(width="560px"),
                             style={"description_width": "110px"})
        self.preset = w.Dropdown(options=[PRESET_NONE, *PRESETS], value=s.preset or PRESET_NONE,
                                 description="Preprocessing", style={"description_width": "110px"})
        self.preset.add_class("wb-preset")
        self.apply = w.Button(description="Open", button_style="primary", icon="folder-open")
        self.apply.add_class("wb-open")
        self.apply.on_click(lambda _: runner.guard(self.open)())
        for text, flag, kind in ((self.model_path, self.model_ok, "file"), (self.data_path, self.data_ok, "dir"),
                                 (self.eval_path, self.eval_ok, "dir")):
            text.observe(lambda ch, f=flag, k=kind: self._validate(ch["new"], f, k), names="value")
            self._validate(text.value, flag, kind)
        self.summary = w.HTML()
        self.summary.add_class("wb-model-summary")
        self.widget = w.VBox([model_row, data_row, self.loader, eval_row, w.HBox([self.preset, self.apply]),
                              self.summary])
        self.refresh("model")

    @staticmethod
    def _validate(value: str, flag, kind: str) -> None:
        if not value:
            flag.value = ""
            return
        p = Path(value).expanduser()
        good = p.is_file() if kind == "file" else p.is_dir()
        flag.value = "✔" if good else f"<span style='color:#a00'>✘ not a {'file' if kind == 'file' else 'folder'}</span>"

    def open(self) -> None:
        """Open the model (if its path changed) and apply the data settings."""
        s = self.session
        path = self.model_path.value.strip()
        if not path:
            raise_missing("Type the path of an ONNX model first.")
        if s.model_info is None or str(s.model_info.path) != path:
            s.open_model(path)
        s.set_data(self.data_path.value.strip() or None, loader_script=self.loader.value.strip() or None,
                   preset=None if self.preset.value == PRESET_NONE else self.preset.value,
                   limit=s.data_settings.limit, eval_source=self.eval_path.value.strip() or None,
                   eval_limit=s.data_settings.eval_limit)
        self.runner.status.value = f"Opened {html.escape(path)}; data: {html.escape(s.data.describe())}."

    def refresh(self, what: str) -> None:
        if what not in ("model", "data", "all"):
            return
        if self.session.model_info is None:
            self.summary.value = "<i>No model open.</i>"
            return
        d = self.session.model_summary()
        ops = ", ".join(f"{k} {v}" for k, v in sorted(d["op_counts"].items(), key=lambda kv: -kv[1]))
        qops = ", ".join(f"{k} {v}" for k, v in d["quantizable_by_op"].items())
        self.summary.value = (
            f"<b>{html.escape(Path(d['model']).name)}</b> (opset {d['opset']}): inputs "
            f"{html.escape('; '.join(d['inputs']))}; outputs {html.escape('; '.join(d['outputs']))}<br>"
            f"{d['nodes']} nodes: {html.escape(ops)}<br>"
            f"<b>{d['quantizable_nodes']}</b> quantizable nodes: {html.escape(qops)}")


def raise_missing(message: str):
    from ...errors import WorkbenchError

    raise WorkbenchError(message)
