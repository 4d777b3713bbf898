"""The workbench app: one ipywidgets layout over a :class:`workbench.session.Session`.

    from workbench import Workbench
    wb = Workbench("model.onnx", "calib_images/", eval_data="eval_images/", preset="imagenet")
    wb.show()

Widgets only forward actions to the session and redraw from its state; long work runs in
a background thread (``blocking=True`` runs it in the caller, for scripts and tests).
"""
from __future__ import annotations

from pathlib import Path

from .._optional import require
from ..session import Session, sample_paths
from .panels.calibration import CalibrationPanel
from .panels.export import ExportPanel
from .panels.histogram import HistogramPanel
from .panels.layers import LayerTable
from .panels.model import ModelPanel
from .panels.precision import PrecisionPanel
from .panels.results import ResultsPanel
from .tasks import TaskRunner

w = require("ipywidgets", "workbench app", "ui")

STYLE = """<style>
.wb-layer-table select { font-family: monospace; font-size: 11px; }
.wb-history-table { font-size: 11px; border-collapse: collapse; }
.wb-history-table td, .wb-history-table th { padding: 1px 6px; }
.wb-metrics td, .wb-metrics th { padding: 1px 8px; text-align: right; }
.wb-app h4 { margin: 8px 0 2px 0; }
</style>"""


def _heading(text: str):
    return w.HTML(f"<h4>{text}</h4>")


class Workbench:
    """The app. Arguments are those of :class:`~workbench.session.Session` (model, data,
    eval_data, preset, loader_script, calib_samples, eval_samples, method, batch_size, project),
    or an existing ``session``.

    Args:
        project: project folder (default ``workbench_projects/<model name>`` in the current
            folder): saved statistics are reused from there, exports go to ``<project>/exports``.
        blocking: run long tasks in the calling thread (default False: a background thread).
    """

    def __init__(self, model=None, data=None, *, session: Session | None = None, blocking: bool = False,
                 project=None, **session_kw):
        if session is None:
            if project is None and model is not None:
                project = Path("workbench_projects") / Path(model).stem
            session = Session(model, data, project=project, **session_kw)
        self.session = session
        self.runner = TaskRunner(blocking=blocking)
        self._widget = None
        self.panels: dict = {}
        session.subscribe(self._changed)

    @classmethod
    def sample(cls, *, calib_samples: int | None = None, eval_samples: int | None = None, **kw) -> "Workbench":
        """The app on the bundled EfficientNet-Lite0 sample (calibration and evaluation photos)."""
        p = sample_paths()
        return cls(p["model"], p["calib"], eval_data=p["eval"], preset=p["preset"], calib_samples=calib_samples,
                   eval_samples=eval_samples, **kw)

    @classmethod
    def load(cls, project, **kw) -> "Workbench":
        """Re-open a saved project folder (see :meth:`Session.load`)."""
        return cls(session=Session.load(project), **kw)

    # ------------------------------------------------------------------ widgets
    @property
    def widget(self):
        """The app's root widget (built on first use)."""
        if self._widget is None:
            self._build()
        return self._widget

    def _build(self) -> None:
        s, r = self.session, self.runner
        self.panels = {
            "model": ModelPanel(s, r),
            "calibration": CalibrationPanel(s, r),
            "layers": LayerTable(s, r, self.select),
            "histogram": HistogramPanel(s, r),
        }
        self.panels["precision"] = PrecisionPanel(s, r, lambda: self.panels["layers"].selected_nodes)
        self.panels["results"] = ResultsPanel(s, r, self.select)
        self.panels["export"] = ExportPanel(s, r)
        p = self.panels
        r.busy_listeners.append(self._busy)
        self._widget = w.VBox([
            w.HTML(STYLE + "<h3 style='margin:0'>Quantization workbench</h3>"), r.widget,
            _heading("1 · Model and data"), p["model"].widget,
            _heading("2 · Calibration"), p["calibration"].widget,
            _heading("3 · Layers"),
            # wraps instead of clipping the histogram when the notebook is narrow
            w.HBox([w.Box([p["layers"].widget], layout=w.Layout(width="52%", min_width="520px")),
                    w.Box([p["histogram"].widget], layout=w.Layout(width="48%", min_width="560px"))],
                   layout=w.Layout(flex_flow="row wrap")),
            p["precision"].widget,
            _heading("4 · Rebuild and results"), p["results"].widget,
            _heading("5 · Export"), p["export"].widget,
        ])
        self._widget.add_class("wb-app")
        for panel in self.panels.values():
            panel.refresh("all")

    def _busy(self, busy: bool) -> None:
        p = self.panels
        for b in (p["calibration"].run, p["results"].rebuild, p["precision"].auto, p["precision"].sensitivity):
            b.disabled = busy

    def _changed(self, what: str) -> None:
        for panel in self.panels.values():
            panel.refresh(what)

    def show(self):
        """Display the app in the notebook cell."""
        from IPython.display import display

        display(self.widget)

    def _ipython_display_(self):
        self.show()

    # ------------------------------------------------------------------ actions (same as the buttons)
    def select(self, node: str) -> None:
        """Select ``node`` everywhere (table, histogram, per-layer chart)."""
        self.session.select(node)

    def calibrate(self) -> None:
        """Press Run calibration (with the panel's settings)."""
        self.widget
        self.panels["calibration"].calibrate()

    def rebuild(self) -> None:
        """Press Rebuild & evaluate."""
        self.widget
        self.panels["results"].run_rebuild()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running task (calibration, rebuild, ...) to finish."""
        return self.runner.wait(timeout)

    @property
    def error(self) -> str | None:
        """The last error message shown in the app (None when the last action succeeded)."""
        return self.runner.last_error
