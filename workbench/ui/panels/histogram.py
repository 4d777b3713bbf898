"""Histogram view of the selected tensor, with a manual threshold (slider or click on the plot)."""
from __future__ import annotations

import html

from ..._optional import require
from .. import plots

w = require("ipywidgets", "workbench app", "ui")
go = require("plotly.graph_objects", "workbench app", "ui", package="plotly")


class HistogramPanel:
    def __init__(self, session, runner):
        self.session, self.runner = session, runner
        self.figure = go.FigureWidget(plots.histogram_figure([0], 1.0))
        self.figure.layout.width = 540  # a fixed width: plotly's default (700 px) overflows the column
        self.figure.add_class("wb-histogram")
        self.log = w.Checkbox(value=True, description="log scale", indent=False, layout=w.Layout(width="100px"))
        self.log.add_class("wb-log-scale")
        self.log.observe(lambda ch: self.redraw(), names="value")
        self.threshold = w.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.001, description="manual amax",
                                       readout_format=".4g", continuous_update=False, layout=w.Layout(width="380px"),
                                       style={"description_width": "90px"})
        self.threshold.add_class("wb-threshold")
        self.apply = w.Button(description="Set threshold", icon="check", layout=w.Layout(width="130px"))
        self.apply.add_class("wb-set-threshold")
        self.apply.on_click(lambda _: runner.guard(self.set_threshold)())
        self.clear = w.Button(description="Use calibrated", layout=w.Layout(width="130px"))
        self.clear.add_class("wb-clear-threshold")
        self.clear.on_click(lambda _: runner.guard(self.clear_threshold)())
        self.caption = w.HTML()
        self.caption.add_class("wb-histogram-caption")
        self._bind_click()
        self.data = None
        self.widget = w.VBox([self.caption, self.figure, w.HBox([self.log, self.threshold, self.apply, self.clear])])

    def _bind_click(self) -> None:
        # a click on a bar moves the slider there (then "Set threshold" applies it)
        for trace in self.figure.data[:2]:
            trace.on_click(self._clicked)

    def _clicked(self, trace, points, state) -> None:
        if points.xs:
            self.threshold.value = min(max(float(points.xs[0]), self.threshold.min), self.threshold.max)

    def set_threshold(self, amax: float | None = None) -> None:
        """Make the slider's value (or ``amax``) the selected tensor's manual threshold."""
        if self.data is None:
            return
        self.session.set_amax(self.data["tensor"], float(amax if amax is not None else self.threshold.value))

    def clear_threshold(self) -> None:
        if self.data is not None and self.data["manual"] is not None:
            self.session.clear_amax(self.data["tensor"])

    def redraw(self) -> None:
        """Draw the selected node's input histogram from the session's statistics."""
        s = self.session
        if s.stats is None or s.selected is None:
            self.caption.value = "<i>Calibrate, then pick a layer to see its histogram.</i>"
            return
        d = s.histogram()
        self.data = d
        fig = plots.histogram_figure(d["hist"], d["bin_width"], d["amax_by_method"], d["chosen"],
                                     manual_amax=d["manual"], log_y=self.log.value,
                                     title=f"{d['tensor']}")
        fig.update_layout(width=580)  # fits the half-width column next to the layer table
        n = len(self.figure.data)
        plots.update_figure_in_place(self.figure, fig)
        if len(self.figure.data) != n:
            self._bind_click()
        top = max(d["max"], d["chosen"]) or 1.0
        self.threshold.max = top
        self.threshold.step = top / 1000
        self.threshold.value = d["chosen"]
        self.caption.value = (f"<b>{html.escape(d['node'] or '')}</b> input <code>{html.escape(d['tensor'])}</code>: "
                              f"max |x| {d['max']:.4g}, amax {d['chosen']:.4g} "
                              f"({'manual' if d['manual'] is not None else html.escape(d['method'])}), "
                              f"clipped {100 * d['clipped']:.3g}% of values")

    def refresh(self, what: str) -> None:
        if what in ("selection", "ranges", "plan", "model", "all"):
            self.redraw()
