"""Calibration bar: range method (from the method registry), its parameter, samples, batch, Run;
the collapse guards' warnings and the last run's warnings and errors beside them."""
from __future__ import annotations

import html
import inspect

from ..._optional import require
from ...session import Event
from ..messages import Message, MessageArea
from ..style import BASE_METHOD, fmt_seconds, is_output_aware, method_description, method_names, method_params
from .base import Panel

w = require("ipywidgets", "workbench app", "ui")


class CalibrationPanel(Panel):
    name, title = "calibration", "Calibration"
    events = frozenset({Event.RANGES, Event.MODEL, Event.DATA})

    def __init__(self, ctx):
        super().__init__(ctx)
        c, d = self.session.calib_settings, self.session.data_settings
        # output-aware methods ("auto") are a search: the session runs it with progress and Cancel
        names = method_names(output_aware="progress" in inspect.signature(self.session.set_method).parameters)
        self.method = w.Dropdown(options=names, value=c.method if c.method in names else names[0],
                                 description="Ranges", tooltip=self._method_tip(c.method),
                                 layout=w.Layout(width="190px"), style={"description_width": "48px"})
        self.method.add_class("wb-method")
        # one control per parameter the registry lists and the session takes (shown with its method)
        accepted = inspect.signature(self.session.set_method).parameters
        self.params: dict = {}
        self._param_of: dict = {}
        for m in names:
            for p in method_params(m):
                if p.name not in accepted:
                    continue
                if p.name in self.params:
                    self._param_of[p.name].append(m)
                    continue
                kind = w.BoundedIntText if getattr(p, "integer", False) else w.BoundedFloatText
                value = getattr(c, p.name, p.default)
                ctl = kind(value=value, min=p.lo, max=p.hi, description=p.name.replace("_", " "),
                           tooltip=p.help, layout=w.Layout(width="170px"), style={"description_width": "70px"})
                ctl.add_class(f"wb-{p.name.replace('_', '-')}")
                ctl.observe(lambda ch: self._method_changed(), names="value")
                self.params[p.name], self._param_of[p.name] = ctl, [m]
        self.percentile = self.params.get("percentile")
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
        self._syncing = False
        self._sync_params()
        # beside the method (placed by the app under it): the ranges' guard warnings and what the last
        # calibration or method change warned; beside Run: why a calibration failed
        self.messages = MessageArea("wb-calibration-messages", compact=True)  # one line each: the histogram stays in view
        self.run_messages = MessageArea("wb-calibration-run-messages")
        row = dict(align_items="center", flex_flow="row wrap")
        # two parts the app places apart: the method next to the histogram (changed while looking
        # at tensors), the collection settings with the model and data (set once)
        self.method_row = w.HBox([self.method, *self.params.values()], layout=w.Layout(**row))
        self.run_row = w.VBox([w.HBox([self.samples, self.batch, self.run, self.info],
                                      layout=w.Layout(width="100%", **row)), self.run_messages.widget],
                              layout=w.Layout(width="100%"))
        self.widget = w.VBox([self.method_row, self.run_row], layout=w.Layout(width="100%"))

    @staticmethod
    def _method_tip(name: str) -> str:
        text = method_description(name)
        return f"range method: {text}" if text else "range method (changing it needs no new inference)"

    def _sync_params(self) -> None:
        for name, ctl in self.params.items():
            ctl.layout.display = None if self.method.value in self._param_of[name] else "none"
        self.method.tooltip = self._method_tip(self.method.value)

    def _settings(self) -> dict:
        """The shown parameters of the chosen method that the session's set_method takes."""
        accepted = inspect.signature(self.session.set_method).parameters
        return {n: ctl.value for n, ctl in self.params.items()
                if self.method.value in self._param_of[n] and n in accepted}

    def _method_changed(self) -> None:
        self._sync_params()
        if self._syncing:
            return
        if self.session.stats is None or self.runner.busy:
            return
        method, settings = self.method.value, self._settings()
        if is_output_aware(method):  # a search over the evaluation data: a task
            self.runner.run(f"Choosing {method} ranges", lambda progress, cancel: self.session.set_method(
                method, progress=progress, cancel=cancel, **settings), unit="runs", messages=self.messages)
        else:
            self.runner.guard(self.session.set_method, self.messages)(method, **settings)

    def calibrate(self) -> None:
        """Run calibration (collect or reuse statistics, then compute ranges) as a task."""
        s = self.session
        samples = self.samples.value if self.samples.value > 0 else None
        accepted = inspect.signature(s.calibrate).parameters
        extra = {k: v for k, v in self._settings().items() if k in accepted}

        method = self.method.value
        search = is_output_aware(method)

        def work(progress, cancel):
            # statistics first (with a histogram method), then the output-aware search if asked
            first = BASE_METHOD if search else method
            out = s.calibrate(method=first, num_samples=samples, batch_size=self.batch.value,
                              progress=progress, cancel=cancel, **extra)
            if search:
                progress.phase(f"Choosing {method} ranges", "runs")
                s.set_method(method, progress=progress, cancel=cancel,
                             **{k: v for k, v in self._settings().items()})
            return out
        self.runner.run("Calibrating", work, unit="samples", messages=self.messages, errors=self.run_messages)

    def refresh(self, event) -> None:
        lc, c = self.session.last_calibration, self.session.calib_settings
        # the session may have been changed from code: show its settings
        self._syncing = True
        try:
            if c.method in self.method.options:
                self.method.value = c.method
            for name, ctl in self.params.items():
                if hasattr(c, name):
                    ctl.value = getattr(c, name)
            self.batch.value = c.batch_size
            self.samples.value = self.session.data_settings.limit or 0
        finally:
            self._syncing = False
        self._sync_params()
        calibration = self.session.calibration
        self.messages.show([Message("warning", n, "range guard") for n in (calibration.notes if calibration else ())],
                           "state")
        if self.session.stats is None:
            self.info.value = "<i style='font-size:12px'>Not calibrated yet.</i>"
            return
        how = lc.get("how", "")
        how = "reused from the project" if how.startswith("reused from") else how
        self.info.value = (f"<span style='font-size:12px' title='{html.escape(lc.get('how', ''))}'>Statistics "
                           f"{html.escape(how)}: {lc.get('samples')} samples, batch {lc.get('batch_size')}, "
                           f"{fmt_seconds(lc.get('seconds', 0))}. Ranges: <b>{html.escape(c.method)}</b>.</span>")
