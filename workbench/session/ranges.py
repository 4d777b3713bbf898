"""Session: choosing the ranges from the statistics (any method of the range-method registry,
``auto`` included) and explaining them (range sensitivity)."""
from __future__ import annotations

from ..errors import WorkbenchError
from .state import Event


class RangesMixin:
    """:meth:`set_method` and :meth:`explain_ranges` of :class:`~workbench.session.Session`."""

    def set_method(self, method: str, percentile: float | None = None, *, progress=None, cancel=None,
                   workers: int | None = None) -> None:
        """Use another calibration method (re-reads the statistics; no new inference for a
        histogram method). ``auto`` (see :mod:`workbench.search.autorange`) scores candidates on the
        evaluation data (the calibration data when there is none, said so in the result), one
        emulated run each: ``progress(done, total)`` and ``cancel`` (the partial choice is kept)
        as for :meth:`calibrate`; ``workers``: run those runs in N local worker processes (the
        same ranges; None: here). The result of the search is :attr:`range_search`; collapse-guard
        warnings are ``base_ranges.notes`` and each tensor's ``flags``."""
        from ..calib.registry import check_method_name
        from ..search.calibration import choose_ranges
        from ..search.executor import make_executor
        from ..validate import check_percentile, check_positive_int

        check_method_name(method, "The calibration method")
        percentile = check_percentile(percentile, "The percentile", allow_none=True)
        check_positive_int(workers, "set_method(workers=...)", allow_none=True)
        if self.stats is None:
            raise WorkbenchError("Calibrate first: there are no statistics to compute ranges from.")
        p = self.calib_settings.percentile if percentile is None else percentile
        # the one calibration path (search.calibration): judged where the hold-out rule says
        with make_executor(workers) as executor:
            outcome = choose_ranges(self.stats, method, evaluator=self.evaluator, holdout=self.holdout,
                                    plan=self.plan, params={"percentile": p}, progress=progress, cancel=cancel,
                                    executor=executor)
        ranges = self._with_model_source(outcome.ranges)  # + a Q/DQ model's thresholds
        self.calib_settings.percentile, self.calib_settings.method = p, method  # only once this worked
        self.state.reset("ranges")
        self.base_ranges = ranges
        self.calibration = outcome
        self.range_search = outcome.auto
        if self.plan is None:
            self.plan = self._initial_plan()
        self._notify(Event.RANGES)

    def explain_ranges(self, *, samples: int | None = 16, progress=None, cancel=None):
        """Range sensitivity of the ranges in use (:func:`workbench.search.range_checks.range_sensitivity`):
        per INT8 input tensor what its threshold costs at the output, kept as
        :attr:`range_sensitivity` for the layer table (``cost_db``) and the histogram panel
        (``sentence``)."""
        from ..search.range_checks import range_sensitivity

        if self.ranges is None:
            raise WorkbenchError("Calibrate first: there are no ranges to explain.")
        self.range_sensitivity = range_sensitivity(self.evaluator, self.ranges, self.plan, samples=samples,
                                                   progress=progress, cancel=cancel)
        self._notify(Event.SENSITIVITY)  # the app's table, histogram and graph show it
        return self.range_sensitivity
