"""Session: calibration statistics, collected or reused (in memory or from the project folder),
on the samples the one hold-out rule gives them (:mod:`workbench.search.calibration`), then the
ranges of the chosen method (:meth:`RangesMixin.set_method`)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .._io import atomic_write_text
from ..errors import StaleError, WorkbenchError
from .state import STATS_FILE


class CalibrationMixin:
    """:meth:`calibrate` of :class:`~workbench.session.Session` and its saved statistics."""

    def _stats_path(self) -> Path | None:
        return self.project / STATS_FILE if self.project is not None else None

    def calibrate(self, *, method: str | None = None, percentile: float | None = None,
                  num_samples: int | None = None, batch_size: int | None = None, reuse: bool = True,
                  progress=None, cancel=None, workers: int | None = None):
        """Collect statistics (or reuse saved ones) and compute the ranges of ``method``.

        Args:
            method / percentile / batch_size: change the calibration settings (None: keep).
            num_samples: change the calibration sample limit (None: keep).
            reuse: reuse statistics in memory or in the project folder when they were computed
                for the same model, data (fingerprints) and batch size (default True).
            progress: callback ``(samples_done, total)``; cancel: a ``threading.Event``.
            workers: run the auto search's evaluations in N local worker processes (the same
                ranges; None: in this process).

        Returns the ranges in use. ``last_calibration`` says whether statistics were reused.
        """
        from ..calib.registry import check_calibration_settings
        from ..validate import check_positive_int

        c = self.calib_settings
        check_calibration_settings(method or c.method, c.percentile if percentile is None else percentile,
                                   c.batch_size if batch_size is None else batch_size)
        check_positive_int(num_samples, "num_samples", allow_none=True)
        info = self._need_model()
        old = (self.data_settings.limit, c.batch_size, self.state.data)
        if num_samples is not None and num_samples != self.data_settings.limit:
            self.data_settings.limit = num_samples
            self.state.data = None
        if batch_size is not None:
            c.batch_size = int(batch_size)
        try:
            return self._calibrate(info, method, percentile, reuse, progress, cancel, workers)
        except BaseException:  # a failed or cancelled run leaves the settings as they were
            self.data_settings.limit, c.batch_size, self.state.data = old
            raise

    def _calibrate(self, info, method, percentile, reuse, progress, cancel, workers=None):
        from ..calib.collect import collect_statistics
        from ..calib.stats import Statistics
        from ..search.calibration import extend_statistics

        data = self.holdout.histogram_data  # the one hold-out rule: statistics from these samples
        mfp, dfp = info.fingerprint(), data.fingerprint()
        bs = self.calib_settings.batch_size
        stats, how = None, "collected"
        if reuse and self.stats is not None and self.stats.model_fingerprint == mfp \
                and self.stats.data_fingerprint == dfp:
            stats, how = self.stats, "reused (in memory)"
        path = self._stats_path()
        if stats is None and reuse and path is not None and path.exists():
            # statistics do not depend on the batch size (see workbench.calib.collect)
            try:
                stats, how = Statistics.load(path, mfp, dfp), f"reused from '{path}'"
            except StaleError:
                stats = None
        started = time.perf_counter()
        if stats is None or stats.extended is None and not self._nothing_held_out():
            if stats is None:
                stats = collect_statistics(info, data, tensors=self._observed_tensors(), batch_size=bs,
                                           progress=progress or False, cancel=cancel)
            # the chosen methods are then read from every calibration sample (search.calibration)
            stats = extend_statistics(info, stats, self.holdout, self.data, batch_size=bs, cancel=cancel)
            if path is not None:  # statistics and their record: one result of the project
                meta = path.with_suffix(".json")
                with self._writer([path, meta], "statistics", True, path) as result:
                    stats.save(result.path(path))
                    atomic_write_text(result.path(meta), json.dumps({"batch_size": bs}))
        self.stats = stats
        self.last_calibration = {"how": how, "batch_size": bs, "samples": stats.num_samples,
                                 "seconds": time.perf_counter() - started}
        self.set_method(method or self.calib_settings.method, percentile, workers=workers)
        return self.ranges

    def _load_saved_statistics(self) -> bool:
        """Take the project's statistics if they match the model and data (no inference)."""
        from ..calib.stats import Statistics

        try:
            stats = Statistics.load(self._stats_path(), self.model_info.fingerprint(),
                                    self.holdout.histogram_data.fingerprint())
        except WorkbenchError:  # stale or unreadable statistics, or the data folder is gone
            return False
        if stats.extended is None and not self._nothing_held_out():
            return False  # written before the refit on every sample: calibrate again
        self.stats = stats
        self.last_calibration = {"how": f"reused from '{self._stats_path()}'", "samples": stats.num_samples,
                                 "batch_size": self._read_stats_meta().get("batch_size"), "seconds": 0.0}
        self.set_method(self.calib_settings.method)
        return True

    def _nothing_held_out(self) -> bool:
        """True when the hold-out rule keeps no calibration sample out of the statistics."""
        return self.holdout.from_evaluation_data or self.holdout.optimistic

    def _read_stats_meta(self) -> dict:
        try:
            return json.loads(self._stats_path().with_suffix(".json").read_text())
        except (OSError, ValueError):
            return {}

