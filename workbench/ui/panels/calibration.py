"""Calibration bar: range method (from the method registry), its parameter, samples, batch, Run."""
from __future__ import annotations

import html

from ..._optional import require
from ...session import Event
from ..style import fmt_seconds, method_description, method_names
from .base import Panel

w = require("ipywidgets", "workbench app", "ui")


class CalibrationPanel(Panel):
    name, title = "calibration", "Calibration"
    events = frozenset({Event.RANGES, Event.MODEL, Event.DATA})

    def __init__(self, ctx):
        super().__init__(ctx)
        c, d = self.session.calib_settings, self.session.data_settings
        names = method_names()
        self.method = w.Dropdown(options=[(f"{m}", m) for m in names], value=c.method if c.method in names else names[0],
                                 description="Ranges", tooltip=self._method_tip(c.method),
                                 layout=w.Layout(width="190px"), style={"description_width": "48px"})
        self.method.add_class("wb-method")
        self.percentile = w.BoundedFloatText(value=c.percentile, min=50.0, max=100.0, step=0.01,
                                             description="percentile", tooltip="share of |x| values kept below amax, in %",
                                             layout=w.Layout(width="170px"), style={"description_width": "70px"})
        self.percentile.add_class("wb-percentile")
        self.samples = w.IntText(value=d.limit or 0, description="Calibration samples",
                                 tooltip="calibration samples to use (0 = all)",
                                 layout=w.Layout(width="230px"), style={"description_width": "130px"})
        self.samples.add_class("wb-samples")
        self.batch = w.BoundedIntText(value=c.batch_size, min=1, max=1024, description="batch",
                                      tooltip="samples per inference call while collecting",
                                      layout=w.Layout(width="120px"), style={"description_width": "40px"})
        self.batch.add_class("wb-batch")
        self.run = w.Button(description="Run calibration", button_style="primary", icon="play",
                            tooltip="collect histograms (or reuse saved ones) and compute the ranges",
                            layout=w.Layout(width="auto", flex="0 0 auto"))
        self.run.add_class("wb-run-calibration")
        self.run.on_click(lambda _: self.calibrate())
        self.busy_controls = [self.run]
        self.info = w.HTML(layout=w.Layout(flex="1 1 200px", min_width="0"))
        self.info.add_class("wb-calibration-info")
        # changing the method only re-reads the statistics: apply at once when there are some
        self.method.observe(lambda ch: self._method_changed(), names="value")
        self.percentile.observe(lambda ch: self._method_changed(), names="value")
        self._syncing = False
        self._sync_percentile()
        row = dict(align_items="center", flex_flow="row wrap")
        # two parts the app places apart: the method next to the histogram (changed while looking
        # at tensors), the collection settings with the model and data (set once)
        self.method_row = w.HBox([self.method, self.percentile], layout=w.Layout(**row))
        self.run_row = w.HBox([self.samples, self.batch, self.run, self.info], layout=w.Layout(width="100%", **row))
        self.widget = w.VBox([self.method_row, self.run_row], layout=w.Layout(width="100%"))

    @staticmethod
    def _method_tip(name: str) -> str:
        text = method_description(name)
        return f"range method: {text}" if text else "range method (changing it needs no new inference)"

    def _sync_percentile(self) -> None:
        self.percentile.layout.display = None if self.method.value == "percentile" else "none"
        self.method.tooltip = self._method_tip(self.method.value)

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
        self.runner.run("Calibrating", work, unit="samples")

    def refresh(self, event) -> None:
        lc, c = self.session.last_calibration, self.session.calib_settings
        # the session may have been changed from code: show its settings
        self._syncing = True
        try:
            if c.method in [v for _, v in self.method.options]:
                self.method.value = c.method
            self.percentile.value, self.batch.value = c.percentile, c.batch_size
            self.samples.value = self.session.data_settings.limit or 0
        finally:
            self._syncing = False
        self._sync_percentile()
        if self.session.stats is None:
            self.info.value = "<i style='font-size:12px'>Not calibrated yet.</i>"
            return
        how = lc.get("how", "")
        how = "reused from the project" if how.startswith("reused from") else how
        self.info.value = (f"<span style='font-size:12px' title='{html.escape(lc.get('how', ''))}'>Statistics "
                           f"{html.escape(how)}: {lc.get('samples')} samples, batch {lc.get('batch_size')}, "
                           f"{fmt_seconds(lc.get('seconds', 0))}. Ranges: <b>{html.escape(c.method)}</b>.</span>")
