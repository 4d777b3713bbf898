"""Sensitivity ranking (fills in while it runs, kept when cancelled) and the automatic
mixed-precision search, with tables that agree with the chosen plan."""
from __future__ import annotations

import html
import math

from ..._optional import require
from ...session import Event
from .. import plots
from ..plotview import PlotView
from ..texts import auto_message, ranking_note  # noqa: F401 (re-export)
from ..table import DataTable
from .base import Panel

w = require("ipywidgets", "workbench app", "ui")
go = require("plotly.graph_objects", "workbench app", "ui", package="plotly")

#: (sensitivity column, header, tooltip, format)
RANKING_COLUMNS = (
    ("rank", "rank", "1 = most sensitive", ".0f"),
    ("node", "node", "ONNX node", "s"),
    ("op_type", "op", "op type", "s"),
    ("sqnr_only_int8", "SQNR, only it INT8", "output SQNR [dB] with only this node INT8 (lower = more sensitive)",
     ".2f"),
    ("top1_only_int8", "top-1, only it INT8", "top-1 agreement with only this node INT8", ".3f"),
    ("sqnr_gain_fp16", "SQNR gain, it in FP16", "output SQNR change [dB] when only this node goes to FP16; "
                                          "negative = slightly worse (see the note)", "+.2f"),
    ("top1_gain_fp16", "top-1 gain, it in FP16", "top-1 agreement change when only this node goes to FP16", "+.3f"),
)


def _fmt(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return str(v) if fmt == "s" else format(float(v), fmt)


class SearchPanel(Panel):
    name, title = "search", "Sensitivity & auto"
    events = frozenset({Event.SENSITIVITY, Event.PLAN, Event.MODEL})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.sensitivity = w.Button(description="Rank layers by sensitivity", icon="sort-amount-desc",
                                    tooltip="score each INT8 node alone in INT8 and alone in FP16 (cancellable)",
                                    layout=w.Layout(width="auto", flex="0 0 auto"))
        self.sensitivity.add_class("wb-sensitivity")
        self.sensitivity.on_click(lambda _: self.run_sensitivity())
        self.samples = w.BoundedIntText(value=16, min=1, max=100000, description="on samples",
                                        tooltip="evaluation samples per score (fewer: faster, noisier)",
                                        layout=w.Layout(width="170px"), style={"description_width": "80px"})
        self.target = w.Text(value="top1>=0.99", description="Target", placeholder="e.g. sqnr>=25",
                             tooltip="METRIC OP VALUE: top1, top5, cosine, sqnr, max_abs_error or metric",
                             layout=w.Layout(width="210px"), style={"description_width": "48px"})
        self.target.add_class("wb-auto-target")
        self.auto = w.Button(description="Auto mixed precision", icon="magic", button_style="success",
                             tooltip="move the most sensitive nodes out of INT8 until the target holds",
                             layout=w.Layout(width="auto", flex="0 0 auto"))
        self.auto.add_class("wb-auto")
        self.auto.on_click(lambda _: self.run_auto())
        self.explain = w.Button(description="Explain thresholds", icon="question-circle",
                                tooltip="for each INT8 input tensor, what its threshold costs at the output (cancellable)",
                                layout=w.Layout(width="auto", flex="0 0 auto"))
        self.explain.add_class("wb-explain")
        self.explain.on_click(lambda _: self.run_explain())
        if not callable(getattr(self.session, "explain_ranges", None)):
            self.explain.layout.display = "none"
        self.busy_controls = [self.sensitivity, self.auto, self.explain]
        self.info = w.HTML()
        self.info.add_class("wb-auto-info")
        self.ranking = DataTable(height=210, columns=[{"key": k, "label": label, "tooltip": tip,
                                                       "align": "left" if fmt == "s" else "right"}
                                                      for k, label, tip, fmt in RANKING_COLUMNS])
        self.ranking.add_class("wb-ranking")
        self.ranking.observe(self._picked, names="selected")
        self.note = w.HTML()
        self.curve = PlotView(self._empty_curve())
        self.curve.add_class("wb-auto-curve")
        row = dict(align_items="center", flex_flow="row wrap")
        self.widget = w.VBox([
            w.HBox([self.sensitivity, self.samples, self.target, self.auto, self.explain], layout=w.Layout(**row)),
            self.info,
            w.GridBox([w.VBox([self.ranking, self.note], layout=w.Layout(min_width="0")), self.curve],
                      layout=w.Layout(grid_template_columns="minmax(0, 3fr) minmax(0, 2fr)", grid_gap="10px",
                                      width="100%")),
        ], layout=w.Layout(width="100%"))

    @staticmethod
    def _empty_curve():
        fig = go.Figure()
        fig.update_layout(height=240, margin=dict(l=10, r=10, t=10, b=10), xaxis=dict(visible=False),
                          yaxis=dict(visible=False), plot_bgcolor="white",
                          annotations=[dict(text="Run Auto mixed precision to see<br>its trade-off curve here",
                                            showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                                            font=dict(size=12, color="#777"))])
        return fig

    def _picked(self, change) -> None:
        if change["new"] and change["new"][-1] != self.session.selected:
            self.runner.guard(self.ctx.select)(change["new"][-1])

    def run_sensitivity(self) -> None:
        samples = int(self.samples.value)
        self.runner.run("Ranking layers by sensitivity",
                        lambda progress, cancel: self.session.run_sensitivity(
                            samples=samples, progress=progress, cancel=cancel), unit="nodes")

    def run_explain(self) -> None:
        samples = int(self.samples.value)

        def done(table):
            worst = table.iloc[0] if len(table) else None
            self.info.value = ("<span style='font-size:12px'>" + (
                f"{len(table)} thresholds explained; the costliest: <b>{html.escape(str(worst['tensor']))}</b>, "
                f"{html.escape(str(worst['sentence']))}. The layer table's 'range sens.' column and the graph's "
                "'range sensitivity' colours show them all." if worst is not None else "nothing to explain")
                + "</span>")
        self.runner.run("Explaining thresholds", lambda progress, cancel: self.session.explain_ranges(
            samples=samples, progress=progress, cancel=cancel), done=done, unit="runs")

    def run_auto(self) -> None:
        s = self.session
        target = self.target.value.strip()
        before = len(s.plan.int8_nodes()) if s.plan is not None else 0

        def work(progress, cancel):
            return s.mixed_precision(target, progress=progress, cancel=cancel, sensitivity_samples=int(self.samples.value))

        def done(result):
            self.info.value = f"<span style='font-size:12px'>{html.escape(auto_message(result, before))}</span>"
            self.redraw_curve()
        self.runner.run(f"Automatic mixed precision to {target}", work, done=done, unit="steps")

    def redraw_ranking(self) -> None:
        t = self.session.sensitivity_table
        if t is None:
            self.ranking.rows = []
            self.note.value = "<i style='font-size:12px'>No ranking yet.</i>"
            return
        self.ranking.rows = [{"key": r["node"], "cells": [_fmt(r.get(k), fmt) for k, _, _, fmt in RANKING_COLUMNS]}
                             for r in t.to_dict("records")]
        self.note.value = f"<div style='font-size:11px;color:#555'>{html.escape(ranking_note(t))}</div>"

    def redraw_curve(self) -> None:
        r = self.session.mixed_precision_result
        if r is None:
            return
        y = r.target.key if r.target.key in r.curve.columns else "sqnr_db"
        fig = plots.tradeoff_figure(r.curve, x="n_int8", y=y, label="n_fallback", chosen="chosen",
                                    height=240,
                                    title="automatic search (star = the chosen plan)")
        self.curve.show(fig)

    def refresh(self, event) -> None:
        if event in (Event.SENSITIVITY, Event.ALL, Event.MODEL):
            self.redraw_ranking()
        if event in (Event.PLAN, Event.ALL):
            self.redraw_curve()
