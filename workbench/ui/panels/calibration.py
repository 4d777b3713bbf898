"""Calibration panel: method, percentile, sample count, batch size, Run."""
from __future__ import annotations

import html

from ..._optional import require

w = require("ipywidgets", "workbench app", "ui")


class CalibrationPanel:
    def __init__(self, session, runner):
        from ...calib.algorithms import METHODS

        self.session, self.runner = session, runner
        c, d = session.calib_settings, session.data_settings
        self.method = w.Dropdown(options=list(METHODS), value=c.method, description="Method",
                                 layout=w.Layout(width="230px"))
        self.method.add_class("wb-method")
        self.percentile = w.BoundedFloatText(value=c.percentile, min=50.0, max=100.0, step=0.01,
                                             description="p", layout=w.Layout(width="150px"))
        self.percentile.add_class("wb-percentile")
        self.samples = w.IntText(value=d.limit or 0, description="Samples", layout=w.Layout(width="160px"))
        self.samples.add_class("wb-samples")
        self.batch = w.BoundedIntText(value=c.batch_size, min=1, max=1024, description="Batch",
                                      layout=w.Layout(width="150px"))
        self.batch.add_class("wb-batch")
        self.run = w.Button(description="Run calibration", button_style="primary", icon="play")
        self.run.add_class("wb-run-calibration")
        self.run.on_click(lambda _: self.calibrate())
        self.info = w.HTML()
        self.info.add_class("wb-calibration-info")
        # changing the method only re-reads the statistics: apply at once when there are some
        self.method.observe(lambda ch: self._method_changed(), names="value")
        self.percentile.observe(lambda ch: self._method_changed(), names="value")
        self._syncing = False
        self._sync_percentile()
        self.widget = w.VBox([w.HBox([self.method, self.percentile, self.samples, self.batch, self.run]),
                              self.info])
        self.refresh("all")

    def _sync_percentile(self) -> None:
        self.percentile.layout.display = None if self.method.value == "percentile" else "none"

    def _method_changed(self) -> None:
        self._sync_percentile()
        if self._syncing:
            return
        if self.session.stats is not None and not self.runner.busy:
            self.runner.guard(self.session.set_method)(self.method.value, self.percentile.value)

    def calibrate(self) -> None:
        """Run calibration (collect or reuse statistics, then compute ranges) as a task."""
        s = self.session
        samples = self.samples.value if self.samples.value > 0 else None

        def work(progress, cancel):
            return s.calibrate(method=self.method.value, percentile=self.percentile.value,
                               num_samples=samples, batch_size=self.batch.value,
                               progress=progress, cancel=cancel)
        self.runner.run("Calibrating", work)

    def refresh(self, what: str) -> None:
        if what not in ("ranges", "model", "all"):
            return
        lc, c = self.session.last_calibration, self.session.calib_settings
        # the session may have been changed from code: show its settings
        self._syncing = True
        try:
            self.method.value, self.percentile.value, self.batch.value = c.method, c.percentile, c.batch_size
            self.samples.value = self.session.data_settings.limit or 0
        finally:
            self._syncing = False
        if self.session.stats is None:
            self.info.value = "<i>Not calibrated yet.</i>"
            return
        self.info.value = (f"Statistics {html.escape(lc.get('how', ''))}: {lc.get('samples')} samples, "
                           f"batch {lc.get('batch_size')}, {lc.get('seconds', 0):.1f} s. "
                           f"Ranges: <b>{html.escape(self.session.calib_settings.method)}</b>.")
