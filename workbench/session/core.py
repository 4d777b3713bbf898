"""The workbench session: all the state of one quantization job, as a plain Python object.

A :class:`Session` holds the model, the data settings, the calibration statistics and ranges,
the precision plan (with an undo stack), the build history and the selected layer. Every
method calls the core modules (collect, ranges, plan, export, evaluate, sensitivity); the
widgets in :mod:`workbench.ui` are views over a session and hold no computation, so the same
session can be driven from code, from a notebook or from the app.

A session can be saved to a project folder and loaded back::

    project/
      session.json       model path, data and calibration settings, current plan, build history
      statistics.npz     calibration histograms (reused when model and data are unchanged)
      exports/           files written by :meth:`Session.export`

Nothing here imports ipywidgets, plotly or :mod:`workbench.ui`; the HTML report is written by
:func:`workbench.ui.report.export_report` (it draws the plots).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..calib.algorithms import DEFAULT_PERCENTILE
from ..calib.registry import DEFAULT_METHOD
from ..errors import WorkbenchError
from ..validate import check_names, check_text
from .builds import BuildsMixin
from .calibration import CalibrationMixin
from .explorer import ExplorerMixin
from .exports import ExportsMixin
from .imported import ImportedMixin
from .improve import ImproveMixin
from .project import ProjectMixin
from .ranges import RangesMixin
from .state import MAX_UNDO, PUBLIC_STATE, CalibrationSettings, DataSettings, Event, SessionState
from .views import ViewsMixin


class Session(CalibrationMixin, RangesMixin, ViewsMixin, BuildsMixin, ExportsMixin, ExplorerMixin, ProjectMixin,
              ImportedMixin, ImproveMixin):
    """State of one quantization job; see the module docstring.

    Args:
        model: path of the FP32 ONNX model (None: open one later with :meth:`open_model`).
        data: calibration folder (images or .npy/.npz), or None.
        eval_data: held-out evaluation folder, or None.
        preset: preprocessing preset for image folders (default None: the data module's default).
        loader_script: ``"file.py[:func]"`` data loader instead of ``data``.
        calib_samples / eval_samples: most samples to use (None: all).
        method, percentile, batch_size: calibration settings (see :class:`CalibrationSettings`).
        project: project folder for saved statistics, the session file and exports
            (None: nothing is saved unless :meth:`save` is given a folder).
        plan_base: "fp32" or "fp16": precision of the nodes that are not INT8 by default.
    """

    def __init__(self, model=None, data=None, *, eval_data=None, preset: str | None = None,
                 loader_script: str | None = None, calib_samples: int | None = None,
                 eval_samples: int | None = None, method: str = DEFAULT_METHOD, percentile: float = DEFAULT_PERCENTILE,
                 batch_size: int = 8, project=None, plan_base: str = "fp32"):
        from ..calib.registry import check_calibration_settings
        from ..validate import check_choice, check_path, check_positive_int

        for value, what in ((model, "Session(model=...)"), (data, "Session(data=...)"),
                            (eval_data, "Session(eval_data=...)"), (project, "Session(project=...)")):
            if value is not None:
                check_path(value, what)
        check_calibration_settings(method, percentile, batch_size)
        check_positive_int(calib_samples, "calib_samples", allow_none=True)
        check_positive_int(eval_samples, "eval_samples", allow_none=True)
        check_choice(plan_base, ("fp32", "fp16"), "plan_base")
        self.project: Path | None = Path(project) if project is not None else None
        self.data_settings = DataSettings(str(data) if data is not None else None, loader_script, preset,
                                          None, calib_samples,
                                          str(eval_data) if eval_data is not None else None, eval_samples)
        self.calib_settings = CalibrationSettings(method, percentile, batch_size)
        self.plan_base = plan_base
        self.state = SessionState()    # everything derived: one declared place (session/state.py)
        self._listeners: list[Callable[[str], None]] = []
        if model is not None:
            self.open_model(model)

    # ------------------------------------------------------------------ notifications
    def subscribe(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback(event)`` after each change, ``event`` an :class:`Event` (MODEL, DATA,
        RANGES, PLAN, BUILD, SELECTION, SENSITIVITY; a str enum). The app refreshes its views."""
        self._listeners.append(callback)

    def _notify(self, what: Event) -> None:
        self._track_versions(what)  # staleness of the last build (views)
        for cb in list(self._listeners):
            cb(what)

    # ------------------------------------------------------------------ model and data
    def open_model(self, path) -> None:
        """Load the ONNX model at ``path``; statistics, ranges, plan and history are reset. A Q/DQ
        model is read back (:mod:`.imported`): the session works on its recovered FP32 graph."""
        from ..validate import check_path

        info, imported = self._read_model(check_path(path, "The model"))
        self.state.reset("model")  # everything derived from the previous model
        self.state.model_info, self.state.imported = info, imported
        targets = info.quantizable_nodes()
        self.selected = targets[0].node if targets else None
        self._notify(Event.MODEL)

    def _need_model(self):
        if self.model_info is None:
            raise WorkbenchError("No model is open: give a model path first (open_model).")
        return self.model_info

    def set_data(self, source=None, *, loader_script: str | None = None, preset: str | None = None,
                 preprocess: dict | None = None, limit: int | None = None, eval_source=None,
                 eval_limit: int | None = None, preparation=None) -> None:
        """Change the data settings (see :class:`DataSettings`); the data is checked right away
        when a model is open. Statistics stay until the next :meth:`calibrate`, which reuses
        them only if the data fingerprint is unchanged.

        ``preparation``: how images become the model's input, a dict of fields such as
        ``{"preset": "imagenet", "size": (480, 640), "resize": "letterbox"}`` or an
        :class:`workbench.data.InputPreparation`; what it leaves out comes from the model
        (:attr:`preparation` says each field's source). A size or layout the model cannot take
        is refused here."""
        from ..data.prepare import InputPreparation, check_request
        from ..validate import check_path, check_positive_int

        if isinstance(preparation, InputPreparation):
            preparation = preparation.to_dict()
        elif preparation is not None:
            preparation = check_request(preparation)

        for value, what in ((source, "The data folder"), (eval_source, "The evaluation data folder")):
            if value is not None:
                check_path(value, what)
        check_positive_int(limit, "The sample limit (limit)", allow_none=True)
        check_positive_int(eval_limit, "The evaluation sample limit (eval_limit)", allow_none=True)
        new = DataSettings(str(source) if source is not None else None, loader_script, preset, preprocess,
                           limit, str(eval_source) if eval_source is not None else None, eval_limit, preparation)
        old, self.data_settings = self.data_settings, new
        self.state.reset("data")
        try:
            if self.model_info is not None:
                self.data
        except WorkbenchError:
            self.data_settings = old
            raise
        self._notify(Event.DATA)

    @property
    def preparation(self):
        """How images become the model's input (:class:`workbench.data.InputPreparation`), each
        field with its source; ``session.preparation.describe()`` says it."""
        from ..data.prepare import InputPreparation, combine_request

        s = self.data_settings
        if s.source or s.loader_script:
            return getattr(self.data, "preparation", None)
        return InputPreparation.resolve(self._need_model(), combine_request(s.preset, s.preprocess, s.preparation),
                                        origin="setting")

    def _open(self, source, limit):
        from ..data import open_data

        s = self.data_settings
        from ..data.prepare import combine_request

        return open_data(source, self._need_model(), preparation=combine_request(s.preset, s.preprocess, s.preparation),
                         loader_script=s.loader_script if source is None else None, limit=limit)

    @property
    def data(self):
        """The calibration data (opened on first use)."""
        if self.state.data is None:
            s = self.data_settings
            if s.source is None and s.loader_script is None:
                raise WorkbenchError("No calibration data: give an image/.npy folder or a loader script.")
            self.state.data = self._open(s.source, s.limit)
        return self.state.data

    @property
    def holdout(self):
        """Where statistics come from and where ranges and builds are judged: the one hold-out
        rule (:func:`workbench.search.calibration.hold_out`) over the data settings."""
        if self.state.holdout is None:
            from ..search.calibration import hold_out

            s = self.data_settings
            self.state.holdout = hold_out(self.data, self._open(s.eval_source, s.eval_limit) if s.eval_source else None)
        return self.state.holdout

    @property
    def evaluator(self):
        """The :class:`workbench.evaluate.Evaluator` where ranges and builds are judged (built on
        first use: it runs the FP32 model once): the evaluation data, else the calibration
        samples the hold-out rule keeps out of the statistics (see :attr:`holdout`)."""
        if self.state.evaluator is None:
            from ..search.calibration import judge

            self.state.evaluator = judge(self._need_model(), self.holdout, batch_size=self.calib_settings.batch_size,
                                         max_samples=self.data_settings.eval_limit)
        return self.state.evaluator

    def model_summary(self) -> dict:
        """Inputs, outputs, node counts by op type and quantizable nodes of the model."""
        summary = self._need_model().summary()
        if self.imported is not None:
            summary["already_quantized"] = self.imported.summary()
        return summary

    @property
    def ranges(self):
        """The ranges in use: the chosen method's, with the plan's manual amax overrides."""
        if self.base_ranges is None:
            return None
        if self.plan is None:
            return self.base_ranges
        overrides = {t: a for t, a in self.plan.amax_overrides.items() if t in self.base_ranges}
        return self.base_ranges.with_overrides(overrides)

    def _need_ranges(self):
        if self.base_ranges is None:
            raise WorkbenchError("Calibrate first: there are no activation ranges yet.")
        return self.ranges

    # ------------------------------------------------------------------ plan changes
    def _change_plan(self, change: Callable, label: str):
        """Apply ``change(plan)`` to a copy; keep the old plan on the undo stack."""
        if self.plan is None:
            self.plan = self._initial_plan()
        new = self.plan.copy()
        result = change(new)
        self.state.undo.append((self.plan, label))
        del self.state.undo[:-MAX_UNDO]
        self.plan = new
        self._notify(Event.PLAN)
        return result

    def set_precision(self, nodes, precision: str, origin: str = "Session.set_precision") -> list:
        """Put ``nodes`` (a name or a list of names) in ``precision`` ("int8", "fp16", "fp32"); ``origin``
        (who asked, e.g. "app click") is kept in the recipe. Returns the nodes changed; one undo step."""
        names = check_names(nodes, "set_precision(nodes=...)")
        if not names:
            raise WorkbenchError("No node selected: pick one or more layers first.")

        def change(plan):
            for n in names:
                plan.set_node(n, precision, reason="user", origin=origin)
            return names
        return self._change_plan(change, f"{', '.join(names[:3])}{'...' if len(names) > 3 else ''} -> {precision}")

    def set_precision_by_op(self, op_type: str, precision: str, origin: str = "Session") -> list:
        """Put every node of ``op_type`` that can run in ``precision`` there; returns the nodes."""
        return self._change_plan(lambda p: p.set_op_type(op_type, precision, "user", f"{origin}: all {op_type}"),
                                 f"all {op_type} -> {precision}")

    def set_precision_by_pattern(self, pattern: str, precision: str, origin: str = "Session") -> list:
        """Put every node whose name matches the regular expression ``pattern`` in ``precision``."""
        return self._change_plan(lambda p: p.set_pattern(pattern, precision, "user", f"{origin}: /{pattern}/"),
                                 f"/{pattern}/ -> {precision}")

    def set_amax(self, tensor: str, amax: float, origin: str = "Session.set_amax") -> None:
        """Override the threshold of ``tensor`` (manual amax; undoable; ``origin``: who asked)."""
        self._need_ranges()[tensor]  # a clear error for a tensor that has no range
        self._change_plan(lambda p: p.set_amax(tensor, amax, origin), f"amax {tensor} = {amax:.4g}"
                          if isinstance(amax, (int, float)) else f"amax {tensor}")  # the plan checks amax

    def clear_amax(self, tensor: str | None = None) -> None:
        """Remove the manual threshold of ``tensor`` (None: of every tensor)."""
        self._change_plan(lambda p: p.clear_amax(tensor), f"clear amax {tensor or 'all'}")

    def reset_plan(self) -> None:
        """Back to the default plan, or a Q/DQ model's own (undoable)."""
        self._change_plan(self._reset_plan_in_place, "reset plan")

    def undo(self) -> str | None:
        """Restore the plan before the last change; returns what was undone (None: nothing)."""
        if not self.state.undo:
            return None
        self.plan, label = self.state.undo.pop()
        self._notify(Event.PLAN)
        return label

    @property
    def undo_label(self) -> str | None:
        """What :meth:`undo` would undo, or None."""
        return self.state.undo[-1][1] if self.state.undo else None

    def select(self, node: str | None) -> None:
        """Make ``node`` the selected layer (shown in the histogram, highlighted in charts)."""
        if check_text(node, "select(node=...)", allow_none=True, example="'conv1'") is not None and node not in self._targets():
            raise WorkbenchError(f"'{node}' is not a quantizable node of this model.")
        self.selected = node
        self._notify(Event.SELECTION)

    # ------------------------------------------------------------------ views of the state


def _state_attribute(name: str) -> property:
    """``session.<name>`` reads and writes ``session.state.<name>`` (declared in SessionState)."""
    return property(lambda self: getattr(self.state, name), lambda self, value: setattr(self.state, name, value),
                    doc=f"The session's {name.replace('_', ' ')} (:class:`~workbench.session.state.SessionState`).")


for _name in PUBLIC_STATE:
    setattr(Session, _name, _state_attribute(_name))
