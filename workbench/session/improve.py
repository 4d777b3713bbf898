"""Session: the accuracy steps (equalization, smoothing, weight rounding, bias correction) on
top of the ranges, through the one calibration path (:mod:`workbench.search.improve_steps`).

:meth:`ImproveMixin.improve` keeps :attr:`~workbench.session.state.SessionState.improvement`;
builds and exports then use the improved model while the plan's precisions and amax overrides
are those it was judged under (a plan change makes it stale: builds and exports fall back to
the plain model and say so, until :meth:`improve` runs again).
"""
from __future__ import annotations

from ..errors import WorkbenchError
from .state import Event


def _plan_key(plan) -> tuple:
    return (tuple((e.node, e.precision.value) for e in plan), tuple(sorted(plan.amax_overrides.items())))


class ImproveMixin:
    """:meth:`improve`, :meth:`step_table` and the improved export source of :class:`~workbench.session.Session`."""

    def improve(self, steps=None, *, progress=None, cancel=None, strict: bool = False):
        """Try the accuracy ``steps`` (None: all of :data:`~workbench.search.improve_steps.STEP_NAMES`;
        ``[]``: none, back to the plain model) on the current ranges and plan; each is kept only
        when the exported model's output improves on the samples the ranges are judged on
        (:attr:`holdout`). ``strict``: a named step that cannot apply raises WorkbenchError.
        ``progress(done, total)`` / ``cancel`` (a ``threading.Event``, checked before the steps run).
        Returns the :class:`~workbench.search.improve_steps.Improvement`."""
        from ..search.improve_steps import check_steps, improve
        from ..validate import check_bool

        check_bool(strict, "improve(strict=...)")
        wanted = check_steps(steps)
        self._need_ranges()
        if self.imported is not None or self.model_info.has_qdq():
            raise WorkbenchError("The accuracy steps cannot apply to an already quantized model: its own scales "
                                 "are kept. Open the FP32 model to improve it.")
        plan = self.plan if self.plan is not None else self._initial_plan()
        result = improve(self.model_info, self.base_ranges, plan, self.holdout, self.evaluator, steps=wanted,
                         strict=strict and steps is not None, batch_size=self.calib_settings.batch_size,
                         params={"percentile": self.calib_settings.percentile}, progress=progress, cancel=cancel)
        self.state.improvement = result
        self.state.improvement_plan = _plan_key(plan)
        self._notify(Event.RANGES)  # the layer table, the calibration panel and staleness read it
        return result

    @property
    def improvement(self):
        """The last :meth:`improve` result (None: none since the ranges were last chosen)."""
        return self.state.improvement

    def step_table(self) -> list:
        """The accuracy-step rows (dicts: step, layers, sqnr/metric before and after, applied,
        reason, seconds) of the last :meth:`improve`, or []."""
        return self.improvement.table() if self.improvement is not None else []

    def improvement_note(self) -> str | None:
        """Why the improved model is not in use (the plan changed since :meth:`improve`), or None."""
        imp = self.improvement
        if imp is None or not imp.applied() or self.plan is None:
            return None
        if self.state.improvement_plan != _plan_key(self.plan):
            return ("the plan changed since the accuracy steps ran: builds and exports use the plain model "
                    "until improve() runs again")
        return None

    def _export_source(self, plan, ranges) -> tuple:
        """(model_info, ranges, plan) to build or export: the improved model with its re-calibrated
        ranges (the plan's overrides on top) and the plan recording the steps, when the improvement
        is current; else the session's model, ``ranges`` and ``plan``."""
        imp = self.improvement
        if imp is None or plan is None or self.state.improvement_plan != _plan_key(plan):
            return self.model_info, ranges, plan
        plan = plan.copy()
        plan.steps = imp.record()
        if not imp.applied():
            return self.model_info, ranges, plan
        overrides = {t: a for t, a in plan.amax_overrides.items() if t in imp.ranges}
        return imp.model, imp.ranges.with_overrides(overrides), plan
