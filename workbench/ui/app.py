"""The workbench app: one screen over a :class:`workbench.session.Session`.

    from workbench import Workbench
    wb = Workbench("model.onnx", "calib_images/", eval_data="eval_images/", preset="imagenet")
    wb.show()

Layout (fills the notebook's width; the main loop fits a 1400 x 900 window)::

    ▸ Quantization workbench · model, data and calibration (folded once calibrated)
    layer table + precision tools | range method, histogram of the selected layer, live threshold
    Rebuild bar with the "results out of date" mark
    progress · Cancel · status (rate, ETA) · errors
    tabs: Results | History | Model graph | Sensitivity & auto | Export

Panels follow one protocol (:mod:`workbench.ui.panels.base`): the app only dispatches the
session's events to the panels that want them and tells each when a task runs. Widgets only
forward actions to the session and redraw from its state; long work runs in a background
thread (``blocking=True`` runs it in the caller, for scripts and tests).
"""
from __future__ import annotations

from pathlib import Path

from .._optional import require
from ..session import Event, Session, sample_paths
from .panels.base import AppContext
from .panels.calibration import CalibrationPanel
from .panels.export import ExportPanel
from .panels.graph import GraphPanel
from .panels.histogram import HistogramPanel
from .panels.history import HistoryPanel
from .panels.layers import LayerTable
from .panels.model import ModelPanel
from .panels.preparation import PreparationPanel
from .panels.precision import PrecisionPanel
from .panels.results import ResultsPanel
from .panels.search import SearchPanel
from .panels.steps import StepsPanel
from .tasks import TaskRunner

w = require("ipywidgets", "workbench app", "ui")

#: the panels in the bottom tabs, in order
TABS = ("results", "history", "graph", "search", "export")

STYLE = """<style>
.wb-app { width: 100%; box-sizing: border-box; }
.wb-app .wb-title { font-size: 15px; font-weight: bold; margin-right: 12px; white-space: nowrap; }
.wb-note { font-size: 11px; color: #666; }
.wb-metrics { border-collapse: collapse; font-size: 12px; }
.wb-metrics td, .wb-metrics th { padding: 1px 8px; text-align: right; white-space: nowrap; }
.wb-metrics td:first-child, .wb-metrics th:first-child { text-align: left; }
.wb-metrics.wb-is-stale td { color: #8a8a8a; }
.wb-stale-note { font-size: 12px; color: #7a5200; margin-bottom: 4px; }
.wb-stale-badge { font-size: 12px; padding: 2px 8px; border-radius: 3px; }
.wb-stale-badge[data-state=stale] { background: #fff3cd; border: 1px solid #e0b000; color: #5c4100; }
.wb-stale-badge[data-state=fresh] { color: #2a7a2a; }
.wb-stale-badge[data-state=none] { color: #666; }
.wb-history-table { font-size: 11px; border-collapse: collapse; }
.wb-history-table td, .wb-history-table th { padding: 1px 5px; text-align: right; white-space: nowrap; }
.wb-history-table th { border-bottom: 1px solid #ccc; }
.wb-history-table tr.wb-current td { font-weight: bold; }
.wb-preview-text { font-size: 12px; }
.wb-app .widget-toggle-buttons .widget-toggle-button { padding: 0 8px; }
.wb-app .widget-html-content { line-height: 1.35; }
.wb-app .wb-metrics-box { margin-top: 4px; }
</style>"""


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
        ctx = AppContext(self.session, self.runner, self.select,
                         selected_nodes=lambda: self.panels["layers"].selected_nodes, show=self.show_tab)
        classes = (ModelPanel, PreparationPanel, CalibrationPanel, LayerTable, PrecisionPanel, HistogramPanel,
                   ResultsPanel, HistoryPanel, GraphPanel, SearchPanel, ExportPanel, StepsPanel)
        self.panels = {cls.name: cls(ctx) for cls in classes}
        p = self.panels
        self.runner.busy_listeners.append(self._busy)
        self.setup = w.Accordion(children=[w.VBox([p["model"].widget, p["preparation"].widget,
                                                   p["calibration"].run_row, p["steps"].widget],
                                                  layout=w.Layout(width="100%"))],
                                 titles=[self._setup_title()], layout=w.Layout(width="100%"))
        self.setup.add_class("wb-setup")
        self.tabs = w.Tab(children=[p[n].widget for n in TABS], titles=[p[n].title for n in TABS],
                          layout=w.Layout(width="100%"))
        self.tabs.add_class("wb-tabs")
        right = w.VBox([w.HBox([p["calibration"].method_row, p["histogram"].view_row],
                               layout=w.Layout(align_items="center", flex_flow="row wrap",
                                               justify_content="space-between", width="100%")),
                        p["calibration"].messages.widget, p["histogram"].body], layout=w.Layout(min_width="0"))
        # the layer table's column is never narrower than the table (more columns appear after the
        # accuracy steps, range sensitivity and ranking): the histogram side gives the room
        main = w.GridBox([w.VBox([p["layers"].widget, p["precision"].widget], layout=w.Layout(min_width="0")), right],
                         layout=w.Layout(grid_template_columns="minmax(min-content, 1fr) minmax(0, 1fr)",
                                         grid_gap="14px", width="100%"))
        main.add_class("wb-main")
        bar = w.HBox([p["results"].toolbar, self.runner.widget],
                     layout=w.Layout(align_items="center", flex_flow="row wrap", width="100%"))
        p["results"].toolbar.layout.flex = "0 1 auto"
        p["results"].toolbar.layout.width = "auto"
        self.runner.widget.layout.flex = "1 1 280px"
        self.runner.widget.layout.width = "auto"
        self._widget = w.VBox([w.HTML(STYLE, layout=w.Layout(display="none")), self.setup, main, bar, self.tabs],
                              layout=w.Layout(width="100%"))
        self._widget.add_class("wb-app")
        for panel in p.values():
            panel.refresh(Event.ALL)
        self._fold_setup()

    def _fold_setup(self) -> None:
        """Keep Model and data open until a model is open and calibrated, then fold it."""
        s = self.session
        self.setup.set_title(0, self._setup_title())
        done = s.model_info is not None and s.stats is not None
        if done != getattr(self, "_setup_done", None):  # fold or open on the change only
            self._setup_done = done
            self.setup.selected_index = None if done else 0

    def _setup_title(self) -> str:
        s = self.session
        title = "Quantization workbench · " + self.panels["model"].headline()
        if s.stats is not None:
            title += f" · {s.last_calibration.get('samples', s.stats.num_samples)} calibration samples"
        elif s.model_info is not None:
            title += " · not calibrated yet"
        return title

    def _busy(self, busy: bool) -> None:
        for panel in self.panels.values():
            panel.set_busy(busy)

    def _changed(self, event) -> None:
        for panel in self.panels.values():
            if panel.wants(event):
                panel.refresh(event)
        if self.panels and event in (Event.MODEL, Event.DATA, Event.RANGES):
            self._fold_setup()

    def show_tab(self, name: str) -> None:
        """Bring the tab of panel ``name`` (one of TABS) to the front."""
        self.widget
        self.tabs.selected_index = TABS.index(name)

    def show(self):
        """Display the app in the notebook cell."""
        from IPython.display import display

        display(self.widget)

    def _ipython_display_(self):
        self.show()

    # ------------------------------------------------------------------ actions (same as the buttons)
    def select(self, node: str) -> None:
        """Select ``node`` everywhere (table, histogram, graph, per-layer chart)."""
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
