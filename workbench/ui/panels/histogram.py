"""Histogram of the selected tensor, a zoom, and a threshold to try live before setting it."""
from __future__ import annotations

import html
import math

from ..._optional import require
from ...session import Event
from .. import plots
from ..messages import Message, MessageArea, captured_warnings
from ..style import fmt_delta, fmt_num, fmt_pct
from ..texts import flag_sentences
from ..plotview import PlotView
from ..slider import DragSlider
from ..tasks import Throttle
from .base import Panel

w = require("ipywidgets", "workbench app", "ui")

ZOOM_OPTIONS = (("whole range", "all"), ("kept values", "chosen"), ("clipped tail", "tail"))
ZOOM_TIPS = ("every threshold and the largest value", "from 0 to a little above the threshold in use",
             "around and above the threshold: the values that get clipped")
FIG_HEIGHT = 250
#: evaluation samples of the preview once the slider rests (while dragging: the session's default)
SETTLED_SAMPLES = 8


def preview_html(p: dict) -> str:
    """One line telling what the tried threshold would change (from ``Session.preview_amax``);
    every "now" is the amax in use, and the output figure is a change against it."""
    head = (f"try <b>{fmt_num(p['amax'])}</b> (amax in use {fmt_num(p['current'])}): clipped {fmt_pct(p['clipped'])} "
            f"(now {fmt_pct(p['clipped_now'])}) · tensor SQNR {fmt_num(p['tensor_sqnr_db'], 3)} dB "
            f"(now {fmt_num(p['tensor_sqnr_now'], 3)} dB)")
    if not p["in_use"]:
        tail = "no INT8 node reads this tensor in the plan: the output does not change"
    elif p["output_delta_db"] is not None:
        d = p["output_delta_db"]
        word = "better" if d > 0.005 else "worse" if d < -0.005 else "no change"
        rough = "; rough: the rounding of one tensor alone moves it" if p["samples"] < SETTLED_SAMPLES else ""
        tail = (f"change of the output SQNR vs the amax in use: <b>{fmt_delta(d)} dB</b> ({word}: "
                f"{fmt_num(p['output_sqnr_db'], 3)} dB instead of {fmt_num(p['output_sqnr_now'], 3)} dB, on "
                f"{p['samples']} evaluation samples{rough})")
    else:
        tail = "output change: computed when the running task ends"
    return f"<span class='wb-preview-text'>{head} · {tail}</span>"


class HistogramPanel(Panel):
    name, title = "histogram", "Histogram"
    events = frozenset({Event.SELECTION, Event.RANGES, Event.PLAN, Event.MODEL, Event.SENSITIVITY})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.figure = PlotView(plots.histogram_figure([0], 1.0, height=FIG_HEIGHT))
        for meta in ("histogram", "clipped"):  # a click on a bar tries that value
            self.figure.on_click(meta, self._clicked)
        self.figure.add_class("wb-histogram")
        self.log = w.Checkbox(value=True, description="log count", indent=False,
                              tooltip="logarithmic count axis: the rare large values stay visible",
                              layout=w.Layout(width="auto", flex="0 0 auto"))
        self.log.add_class("wb-log-scale")
        self.zoom = w.Dropdown(options=ZOOM_OPTIONS, value="all", description="Zoom",
                               tooltip="; ".join(f"{label}: {tip}" for (label, _), tip in zip(ZOOM_OPTIONS, ZOOM_TIPS)),
                               layout=w.Layout(width="170px", flex="0 0 auto"), style={"description_width": "40px"})
        self.zoom.add_class("wb-zoom")
        for ctl in (self.log, self.zoom):
            ctl.observe(lambda ch: self.redraw(), names="value")
        # the slider moves in shares of the histogram's range (a fixed 0-1 scale: changing a
        # slider's range from Python races with the browser snapping its old value); the box
        # next to it holds the threshold itself and can be typed into
        self.position = DragSlider(description="Try",
                                   tooltip="drag to see what another threshold would change, then Set",
                                   layout=w.Layout(flex="1 1 200px", min_width="180px"))
        self.position.add_class("wb-threshold-slider")
        self.threshold = w.FloatText(value=1.0, description="amax",
                                     tooltip="the threshold to try (type a value or drag)",
                                     layout=w.Layout(width="146px", flex="0 0 auto"),
                                     style={"description_width": "44px"})
        self.threshold.add_class("wb-threshold")
        self._top = 1.0
        self.apply = w.Button(description="Set threshold", icon="check", button_style="warning",
                              tooltip="make the tried value this tensor's threshold (undoable)",
                              layout=w.Layout(width="auto", flex="0 0 auto"))
        self.apply.add_class("wb-set-threshold")
        self.apply.on_click(lambda _: self.runner.guard(self.set_threshold, self.messages)())
        self.clear = w.Button(description="Use calibrated", icon="undo",
                              tooltip="drop this tensor's hand-set threshold: back to the calibrated one",
                              layout=w.Layout(width="auto", flex="0 0 auto"))
        self.clear.add_class("wb-clear-threshold")
        self.clear.on_click(lambda _: self.runner.guard(self.clear_threshold, self.messages)())
        self.caption = w.HTML()
        self.caption.add_class("wb-histogram-caption")
        self.preview = w.HTML()
        self.preview.add_class("wb-preview")
        self.messages = MessageArea("wb-histogram-messages")  # the guards' flags of this tensor, warnings
        self.last_preview: dict | None = None
        self._throttle = Throttle(self._preview, blocking=self.runner.blocking, on_error=self._preview_failed)
        self._moving = False  # the controls are being set from the session, not by the user
        self.position.on_drag(self._slider_moved)
        self.threshold.observe(self._value_typed, names="value")
        self.data = None
        # the app puts view_row in one line with the range method; body is the rest
        self.view_row = w.HBox([self.zoom, self.log], layout=w.Layout(align_items="center", flex_flow="row wrap"))
        self.body = w.VBox([
            self.caption, self.messages.widget, self.figure,
            w.HBox([self.position, self.threshold, self.apply, self.clear],
                   layout=w.Layout(align_items="center", flex_flow="row wrap", width="100%")),
            self.preview,
        ], layout=w.Layout(width="100%"))
        self.widget = w.VBox([self.view_row, self.body], layout=w.Layout(width="100%"))

    def _preview_failed(self, exc: Exception) -> None:
        self.preview.value = ""
        self.messages.show([Message("error", str(exc))])

    def _enable(self, on: bool) -> None:
        for ctl in (self.position, self.threshold, self.apply, self.clear):
            ctl.disabled = not on

    def _clicked(self, point: dict) -> None:
        if point["x"] is not None and float(point["x"]) > 0:
            self.threshold.value = float(point["x"])

    # ------------------------------------------------------------------ live preview
    def _show_value(self, amax: float | None = None, position: float | None = None) -> None:
        self._moving = True
        try:
            if amax is not None:
                self._shown = float(f"{amax:.5g}")
                self.threshold.value = self._shown
            if position is not None:
                self.position.show(position)
        finally:
            self._moving = False

    def _slider_moved(self, position: float) -> None:
        if self.data is None:
            return
        amax = max(float(position), 0.0005) * self._top
        self._show_value(amax=amax)
        self._throttle((self.data["tensor"], amax))

    def _value_typed(self, change) -> None:
        if self._moving or self.data is None or not change["new"] or change["new"] <= 0:
            return
        if abs(change["new"] - getattr(self, "_shown", math.nan)) <= 1e-9 * abs(change["new"]):
            return  # the browser echoing the value shown, not the user typing
        self._show_value(position=float(change["new"]) / self._top)
        self._throttle((self.data["tensor"], float(change["new"])))

    def _preview(self, tried: tuple, final: bool) -> None:
        """Compute (session) and show what ``amax`` would change for ``tensor`` (``tried``)
        and move the figure's line; a value tried on another tensor is dropped."""
        s, d = self.session, self.data
        tensor, amax = tried
        if d is None or d["tensor"] != tensor:
            return
        emulate = not self.runner.busy
        if emulate and s.state.preview_cache is None:
            self.preview.value = ("<span class='wb-preview-text'>preparing the emulation model for live previews "
                                  "(the first time only; a few seconds)…</span>")
        with captured_warnings() as caught:  # shown beside the histogram, not in the cell
            p = s.preview_amax(d["tensor"], amax, emulate=emulate,
                               **({"samples": SETTLED_SAMPLES} if final and emulate else {}))
        self.messages.show(caught)
        if self.data is not d:  # another layer was selected meanwhile
            return
        self.last_preview = p
        self.preview.value = preview_html(p)
        self.figure.restyle("preview", x=[amax, amax], name=f"trying {fmt_num(amax)}")

    def set_threshold(self, amax: float | None = None) -> None:
        """Make the slider's value (or ``amax``) the selected tensor's manual threshold."""
        if self.data is None:
            return
        self.session.set_amax(self.data["tensor"], float(amax if amax is not None else self.threshold.value),
                              origin="app threshold")

    def clear_threshold(self) -> None:
        """Back to the calibrated threshold: the tensor's hand-set one is dropped (undoable), and a
        value only tried goes back to the one in use in the slider, the box and the line."""
        if self.data is None:
            return
        if self.data["manual"] is not None:
            self.session.clear_amax(self.data["tensor"])  # redraws from the session
        else:
            self.redraw()

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
            self.caption.value = f"<b>{html.escape(s.selected)}</b>: <i>{html.escape(str(exc))}</i>"
            self.data = None
            self._enable(False)
            self.preview.value = ""
            self.figure.show(plots.histogram_figure([0], 1.0, title="", height=FIG_HEIGHT).add_annotation(
                text="no histogram for this layer", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"))
            return
        source = "set by hand" if d["manual"] is not None else d["method"]
        fig = plots.histogram_figure(d["hist"], d["bin_width"], d["amax_by_method"], d["chosen"],
                                     manual_amax=d["manual"], preview_amax=d["chosen"], chosen_label=source,
                                     data_max=d["max"], log_y=self.log.value, zoom=self.zoom.value,
                                     title="", height=FIG_HEIGHT)
        self.figure.show(fig)
        self.data = d
        self._enable(True)
        self.messages.show([Message("warning", t, "range guard") for t in flag_sentences(d)], "state")
        # the slider spans the plot's whole range (one rule: plots.histogram_x_range)
        self._top = plots.histogram_x_range("all", data_max=d["max"], chosen=d["chosen"],
                                            thresholds=[d["chosen"], *d["amax_by_method"].values()])[1]
        self._show_value(amax=d["chosen"], position=d["chosen"] / self._top)
        self.preview.value = ("<span class='wb-preview-text' style='color:#666'>drag <b>Try</b> (or type an amax) "
                              "to see the clipped share, this tensor's error and the output SQNR change before "
                              "setting it"
                              "</span>")
        node = html.escape(d["node"] or "")
        self.caption.value = (
            f"<b>{node}</b> reads <code>{html.escape(d['tensor'])}</code>: max |x| {fmt_num(d['max'])}, "
            f"amax <b>{fmt_num(d['chosen'])}</b> ({html.escape(source)}), clipped {fmt_pct(d['clipped'])}, "
            f"tensor SQNR {fmt_num(d.get('tensor_sqnr_db'), 3)} dB"
            + (f"; {html.escape(d['range_sentence'])}" if d.get("range_sentence") else ""))

    def refresh(self, event) -> None:
        self.redraw()
