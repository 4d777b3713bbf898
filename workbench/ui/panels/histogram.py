"""Histogram of the selected tensor, a zoom, and a threshold to try live before setting it."""
from __future__ import annotations

import html
import math

from ..._optional import require
from ...session import Event
from .. import plots
from ..style import fmt_num, fmt_pct
from ..tasks import Throttle
from .base import Panel

w = require("ipywidgets", "workbench app", "ui")
go = require("plotly.graph_objects", "workbench app", "ui", package="plotly")

ZOOM_OPTIONS = (("whole range", "all"), ("kept values", "chosen"), ("clipped tail", "tail"))
ZOOM_TIPS = ("every threshold and the largest value", "from 0 to a little above the threshold in use",
             "around and above the threshold: the values that get clipped")
#: evaluation samples of the preview once the slider rests (while dragging: the session's default)
SETTLED_SAMPLES = 8


def preview_html(p: dict) -> str:
    """One line telling what the tried threshold would change (from ``Session.preview_amax``)."""
    parts = [f"trying amax <b>{fmt_num(p['amax'])}</b> (now {fmt_num(p['current'])})",
             f"clipped {fmt_pct(p['clipped'])} (now {fmt_pct(p['clipped_now'])})",
             f"tensor SQNR {fmt_num(p['tensor_sqnr_db'], 3)} dB (now {fmt_num(p['tensor_sqnr_now'], 3)})"]
    if not p["in_use"]:
        parts.append("no INT8 node reads this tensor in the plan, so the output does not change")
    elif p["output_delta_db"] is not None:
        d = p["output_delta_db"]
        word = "better" if d > 0.005 else "worse" if d < -0.005 else "unchanged"
        parts.append(f"output SQNR {fmt_num(p['output_sqnr_db'], 3)} dB, <b>{d:+.2f} dB</b> ({word}) on "
                     f"{p['samples']} samples")
    else:
        parts.append("output change: computed when the running task ends")
    return "<span class='wb-preview-text'>" + " · ".join(parts) + "</span>"


class HistogramPanel(Panel):
    name, title = "histogram", "Histogram"
    events = frozenset({Event.SELECTION, Event.RANGES, Event.PLAN, Event.MODEL})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.figure = go.FigureWidget(plots.histogram_figure([0], 1.0, height=300))
        self.figure.add_class("wb-histogram")
        self.log = w.Checkbox(value=True, description="log count", indent=False,
                              tooltip="logarithmic count axis: the rare large values stay visible",
                              layout=w.Layout(width="auto"))
        self.log.add_class("wb-log-scale")
        self.zoom = w.ToggleButtons(options=ZOOM_OPTIONS, value="all", tooltips=list(ZOOM_TIPS),
                                    description="Zoom", style={"button_width": "auto", "description_width": "40px"})
        self.zoom.add_class("wb-zoom")
        for ctl in (self.log, self.zoom):
            ctl.observe(lambda ch: self.redraw(), names="value")
        self.threshold = w.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.001, description="Try amax",
                                       readout_format=".4g", continuous_update=True,
                                       tooltip="drag to see what another threshold would change, then Set",
                                       layout=w.Layout(flex="1 1 260px", min_width="240px"),
                                       style={"description_width": "64px"})
        self.threshold.add_class("wb-threshold")
        self.apply = w.Button(description="Set threshold", icon="check", button_style="warning",
                              tooltip="make the tried value this tensor's threshold (undoable)",
                              layout=w.Layout(width="auto"))
        self.apply.add_class("wb-set-threshold")
        self.apply.on_click(lambda _: self.runner.guard(self.set_threshold)())
        self.clear = w.Button(description="Use calibrated", icon="undo",
                              tooltip="drop this tensor's hand-set threshold: back to the calibrated one",
                              layout=w.Layout(width="auto"))
        self.clear.add_class("wb-clear-threshold")
        self.clear.on_click(lambda _: self.runner.guard(self.clear_threshold)())
        self.caption = w.HTML()
        self.caption.add_class("wb-histogram-caption")
        self.preview = w.HTML()
        self.preview.add_class("wb-preview")
        self.last_preview: dict | None = None
        self._throttle = Throttle(self._preview, blocking=self.runner.blocking,
                                  on_error=lambda exc: setattr(self.preview, "value",
                                                               f"<span style='color:#a00'>{html.escape(str(exc))}</span>"))
        self._moving = False  # the slider is being set from the session, not by the user
        self.threshold.observe(self._slider_moved, names="value")
        self._bind_click()
        self.data = None
        self.widget = w.VBox([
            self.caption, self.figure,
            w.HBox([self.zoom, self.log], layout=w.Layout(align_items="center", flex_flow="row wrap")),
            w.HBox([self.threshold, self.apply, self.clear], layout=w.Layout(align_items="center", width="100%")),
            self.preview,
        ], layout=w.Layout(width="100%"))

    def _bind_click(self) -> None:
        # a click on a bar tries that value (then "Set threshold" applies it)
        for trace in plots.traces_by_meta(self.figure, "histogram") + plots.traces_by_meta(self.figure, "clipped"):
            trace.on_click(self._clicked)

    def _clicked(self, trace, points, state) -> None:
        if points.xs:
            self.threshold.value = min(max(float(points.xs[0]), self.threshold.min), self.threshold.max)

    # ------------------------------------------------------------------ live preview
    def _slider_moved(self, change) -> None:
        if self._moving or self.data is None or not change["new"] or change["new"] <= 0:
            return
        self._throttle(float(change["new"]))

    def _preview(self, amax: float, final: bool) -> None:
        """Compute (session) and show what ``amax`` would change; moves the figure's line."""
        s, d = self.session, self.data
        if d is None:
            return
        emulate = not self.runner.busy
        p = s.preview_amax(d["tensor"], amax, emulate=emulate,
                           **({"samples": SETTLED_SAMPLES} if final and emulate else {}))
        if self.data is not d:  # another layer was selected meanwhile
            return
        self.last_preview = p
        self.preview.value = preview_html(p)
        lines = plots.traces_by_meta(self.figure, "preview")
        if lines:
            with self.figure.batch_update():
                lines[0].x = [amax, amax]
                lines[0].name = f"trying {fmt_num(amax)}"

    def set_threshold(self, amax: float | None = None) -> None:
        """Make the slider's value (or ``amax``) the selected tensor's manual threshold."""
        if self.data is None:
            return
        self.session.set_amax(self.data["tensor"], float(amax if amax is not None else self.threshold.value))

    def clear_threshold(self) -> None:
        if self.data is not None and self.data["manual"] is not None:
            self.session.clear_amax(self.data["tensor"])

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
        """Draw the selected node's input histogram from the session's statistics."""
        s = self.session
        if s.stats is None or s.selected is None:
            self.caption.value = "<i>Calibrate, then pick a layer to see its histogram.</i>"
            self.data = None
            return
        try:
            d = s.histogram()
        except Exception as exc:  # noqa: BLE001 - e.g. a node whose input was not observed
            self.caption.value = f"<i>{html.escape(str(exc))}</i>"
            self.data = None
            return
        source = "set by hand" if d["manual"] is not None else d["method"]
        fig = plots.histogram_figure(d["hist"], d["bin_width"], d["amax_by_method"], d["chosen"],
                                     manual_amax=d["manual"], preview_amax=d["chosen"], chosen_label=source,
                                     data_max=d["max"], log_y=self.log.value, zoom=self.zoom.value,
                                     title=d["tensor"], height=300)
        n = [t.meta for t in self.figure.data]
        plots.update_figure_in_place(self.figure, fig)
        if [t.meta for t in self.figure.data] != n:
            self._bind_click()
        self.data = d
        top = max([d["max"], d["chosen"], *[v for v in d["amax_by_method"].values() if v and math.isfinite(v)]]) * 1.04
        self._moving = True
        try:
            self.threshold.max = top or 1.0
            self.threshold.step = (top or 1.0) / 2000
            self.threshold.min = self.threshold.step
            self.threshold.value = d["chosen"]
        finally:
            self._moving = False
        self.preview.value = ("<span class='wb-preview-text' style='color:#666'>drag <b>Try amax</b> to see the "
                              "clipped share, this tensor's error and the output SQNR change before setting it"
                              "</span>")
        node = html.escape(d["node"] or "")
        self.caption.value = (
            f"<b>{node}</b> reads <code>{html.escape(d['tensor'])}</code>: max |x| {fmt_num(d['max'])}, "
            f"amax <b>{fmt_num(d['chosen'])}</b> ({html.escape(source)}), clipped {fmt_pct(d['clipped'])}, "
            f"tensor SQNR {fmt_num(d.get('tensor_sqnr_db'), 3)} dB")

    def refresh(self, event) -> None:
        self.redraw()
