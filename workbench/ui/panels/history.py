"""Build history: a table rounded for people, the trade-off plot (sorted, every point in view),
and Restore."""
from __future__ import annotations

import html

from ..._optional import require
from ...session import Event
from .. import plots
from ..plotview import PlotView
from ..style import fmt_num
from .base import Panel

w = require("ipywidgets", "workbench app", "ui")

#: history column -> (header, tooltip, significant digits; 0 = as is)
HISTORY_COLUMNS = {
    "build": ("build", "build number", 0),
    "label": ("label", "free text given to the build", 0),
    "method": ("method", "range method", 0),
    "n_int8": ("INT8", "INT8 nodes", 0),
    "n_fp16": ("FP16", "FP16 nodes", 0),
    "top1_agreement": ("top-1", "top-1 agreement with FP32 (0–1)", 4),
    "cosine": ("cosine", "output cosine similarity with FP32", 6),
    "sqnr_db": ("SQNR dB", "output SQNR vs FP32", 4),
    "max_abs_error": ("max |err|", "largest absolute output error", 3),
    "latency_ms": ("ms", "batch-1 latency (– = not measured)", 4),
    "backend": ("backend", "where it was built", 0),
    "seconds": ("took s", "build + evaluation time in seconds", 3),
}
X_CHOICES = (("INT8 nodes", "n_int8"), ("latency", "latency_ms"))


def history_html(table, selected: int | None = None) -> str:
    """The history as a compact HTML table: labelled columns, numbers rounded, empty columns left out."""
    if table is None or not len(table):
        return "<i>No builds yet.</i>"
    cols = [c for c in HISTORY_COLUMNS if c in table.columns and table[c].notna().any()
            and not (table[c].astype(str) == "").all()]
    if "backend" in cols and table["backend"].nunique() == 1:  # said once under the table instead
        cols.remove("backend")
    head = "".join(f"<th title='{html.escape(HISTORY_COLUMNS[c][1])}'>{html.escape(HISTORY_COLUMNS[c][0])}</th>"
                   for c in cols)
    body = []
    for r in table.to_dict("records"):
        cells = []
        for c in cols:
            v, digits = r.get(c), HISTORY_COLUMNS[c][2]
            cells.append(html.escape(fmt_num(v, digits) if digits else ("–" if v is None else str(v))))
        mark = " class='wb-current'" if selected is not None and r.get("build") == selected else ""
        body.append(f"<tr{mark}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    note = (f"<div class='wb-note'>all built with {html.escape(str(table['backend'].iloc[0]))}</div>"
            if "backend" in table.columns and "backend" not in cols else "")
    return f"<table class='wb-history-table'><tr>{head}</tr>{''.join(body)}</table>{note}"


class HistoryPanel(Panel):
    name, title = "history", "History"
    events = frozenset({Event.BUILD, Event.MODEL})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.history = w.HTML(layout=w.Layout(overflow="auto", max_height="220px"))
        self.history.add_class("wb-history")
        self.x_axis = w.Dropdown(options=X_CHOICES, value="n_int8", description="x axis",
                                 tooltip="INT8 nodes, or measured latency (builds without it are left out)",
                                 layout=w.Layout(width="190px"), style={"description_width": "44px"})
        self.x_axis.observe(lambda ch: self.redraw(), names="value")
        self.tradeoff = PlotView(self._figure())
        self.tradeoff.add_class("wb-tradeoff")
        self.tradeoff.on_click("points", self._point_clicked)
        self.restore_choice = w.Dropdown(options=[], description="Build", tooltip="a build of the history",
                                         layout=w.Layout(width="150px"), style={"description_width": "36px"})
        self.restore = w.Button(description="Restore its plan", icon="history",
                                tooltip="make that build's plan the current plan (undoable)",
                                layout=w.Layout(width="auto", flex="0 0 auto"))
        self.restore.add_class("wb-restore")
        self.restore.on_click(lambda _: self.runner.guard(self.restore_selected)())
        self.widget = w.GridBox([
            w.VBox([self.history, w.HBox([self.restore_choice, self.restore], layout=w.Layout(align_items="center"))],
                   layout=w.Layout(min_width="0")),
            w.VBox([self.x_axis, self.tradeoff], layout=w.Layout(min_width="0")),
        ], layout=w.Layout(grid_template_columns="minmax(0, 3fr) minmax(0, 2fr)", grid_gap="12px", width="100%"))

    def _figure(self):
        s = self.session
        table = s.history_table()
        x = self.x_axis.value
        y = "top1_agreement" if "top1_agreement" in table.columns else "cosine"
        if not len(table) or x not in table.columns or y not in table.columns or not table[x].notna().any():
            import pandas as pd

            table = pd.DataFrame({"build": [], x: [], y: []})
        label = plots.AXIS_LABELS
        title = f"builds: {label.get(y, y)} (click a point to pick it)"
        return plots.tradeoff_figure(table, x=x, y=y, highlight=s.history[-1].id if s.history else None,
                                     connect=False, height=250, title=title)

    def _point_clicked(self, point: dict) -> None:
        if point["customdata"] is not None:
            self.restore_choice.value = int(point["customdata"])

    def restore_selected(self) -> None:
        if self.restore_choice.value is not None:
            self.session.restore(int(self.restore_choice.value))

    def redraw(self) -> None:
        s = self.session
        self.history.value = history_html(s.history_table(), s.history[-1].id if s.history else None)
        self.restore_choice.options = [(f"build {b.id}", b.id) for b in s.history]
        if s.history:
            self.restore_choice.value = s.history[-1].id
        self.tradeoff.show(self._figure())

    def refresh(self, event) -> None:
        self.redraw()
