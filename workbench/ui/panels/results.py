"""Rebuild and results: metrics before/after, per-layer error chart, build history, trade-off plot."""
from __future__ import annotations

import html
import math

from ..._optional import require
from .. import plots

w = require("ipywidgets", "workbench app", "ui")
go = require("plotly.graph_objects", "workbench app", "ui", package="plotly")

METRICS = (("top1_agreement", "top-1 agreement", ".4f"), ("cosine", "cosine", ".6f"),
           ("sqnr_db", "SQNR [dB]", ".2f"), ("max_abs_error", "max |error|", ".4g"))


def _fmt(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, fmt)


def metrics_html(before, after) -> str:
    """A small before/after table of two builds (``before`` may be None)."""
    rows = []
    for key, label, fmt in METRICS:
        if key not in after.summary:
            continue
        b = before.summary.get(key) if before is not None else None
        rows.append((label, _fmt(b, fmt), _fmt(after.summary.get(key), fmt)))
    rows.append(("INT8 / FP16 nodes", f"{before.n_int8} / {before.n_fp16}" if before else "-",
                 f"{after.n_int8} / {after.n_fp16}"))
    rows.append(("latency [ms]", _fmt(before.latency_ms, ".2f") if before else "-", _fmt(after.latency_ms, ".2f")))
    head = (f"<tr><th></th><th>build {before.id}</th><th>build {after.id} (new)</th></tr>" if before
            else f"<tr><th></th><th>-</th><th>build {after.id} (new)</th></tr>")
    body = "".join(f"<tr><td>{html.escape(a)}</td><td>{b}</td><td><b>{c}</b></td></tr>" for a, b, c in rows)
    notes = "".join(f"<div style='font-size:11px;color:#666'>{html.escape(n)}</div>" for n in after.notes)
    return (f"<table class='wb-metrics' data-build='{after.id}' style='border-collapse:collapse'>{head}{body}</table>"
            f"<div style='font-size:11px;color:#666'>metrics against the FP32 model on the evaluation data; "
            f"build + evaluation took {after.seconds:.2f} s</div>{notes}")


def history_html(table) -> str:
    if table is None or not len(table):
        return "<i>No builds yet.</i>"
    return table.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-", classes="wb-history-table")


class ResultsPanel:
    def __init__(self, session, runner, on_select):
        from ...backends.trt import trt_available

        self.session, self.runner, self.on_select = session, runner, on_select
        self.rebuild = w.Button(description="Rebuild & evaluate", button_style="primary", icon="refresh",
                                layout=w.Layout(width="190px", min_width="190px"))
        self.rebuild.add_class("wb-rebuild")
        self.rebuild.on_click(lambda _: self.run_rebuild())
        self.latency = w.Checkbox(value=False, description="measure latency", indent=False,
                                  layout=w.Layout(width="140px"))
        ok, reason = trt_available()
        self.backend = w.Dropdown(options=[("ONNX Runtime", "ort")] + ([("TensorRT", "trt")] if ok else []),
                                  value="ort", description="Backend", layout=w.Layout(width="220px"))
        short = reason.split(" (import")[0].split(". ")[0]
        self.trt_note = w.HTML(f"<span style='font-size:11px;color:#666' title='{html.escape(reason)}'>"
                               f"TensorRT: {html.escape(short)}</span>", layout=w.Layout(max_width="420px"))
        self.metrics = w.HTML("<i>No builds yet.</i>")
        self.metrics.add_class("wb-results")
        self.layer_errors = go.FigureWidget(plots.layer_error_figure([], []))
        self.layer_errors.add_class("wb-layer-errors")
        self.layer_errors.data[0].on_click(self._bar_clicked)
        self.history = w.HTML()
        self.history.add_class("wb-history")
        self.x_axis = w.ToggleButtons(options=[("INT8 nodes", "n_int8"), ("latency", "latency_ms")],
                                      value="n_int8", style={"button_width": "90px"})
        self.x_axis.observe(lambda ch: self.redraw_history(), names="value")
        self.tradeoff = go.FigureWidget(plots.tradeoff_figure(session.history_table().reindex(
            columns=["build", "n_int8", "top1_agreement"]), x="n_int8"))
        self.tradeoff.add_class("wb-tradeoff")
        self.tradeoff.data[0].on_click(self._point_clicked)
        self.restore_choice = w.Dropdown(options=[], description="Build", layout=w.Layout(width="160px"))
        self.restore = w.Button(description="Restore plan", icon="history", layout=w.Layout(width="130px"))
        self.restore.add_class("wb-restore")
        self.restore.on_click(lambda _: runner.guard(self.restore_selected)())
        self.widget = w.VBox([
            w.HBox([self.rebuild, self.latency, self.backend, self.trt_note]),
            w.HBox([self.metrics, self.layer_errors]),
            w.HBox([w.VBox([self.history, w.HBox([self.restore_choice, self.restore])],
                           layout=w.Layout(max_width="55%", overflow="auto")),
                    w.VBox([self.x_axis, self.tradeoff])]),
        ])
        self.refresh("build")

    def _bar_clicked(self, trace, points, state) -> None:
        if points.point_inds:
            self.runner.guard(self.on_select)(trace.customdata[points.point_inds[0]])

    def _point_clicked(self, trace, points, state) -> None:
        if points.point_inds:
            self.restore_choice.value = int(trace.customdata[points.point_inds[0]])

    def restore_selected(self) -> None:
        if self.restore_choice.value is not None:
            self.session.restore(int(self.restore_choice.value))

    def run_rebuild(self) -> None:
        latency, backend = self.latency.value, self.backend.value
        self.runner.run("Rebuilding and evaluating",
                        lambda progress, cancel: self.session.rebuild(latency=latency, backend=backend),
                        cancellable=False)

    def redraw_history(self) -> None:
        s = self.session
        table = s.history_table()
        self.history.value = history_html(table)
        self.restore_choice.options = [(f"build {b.id}", b.id) for b in s.history]
        if s.history:
            self.restore_choice.value = s.history[-1].id
        x = self.x_axis.value
        if not len(table) or x not in table.columns or "top1_agreement" not in table.columns:
            y = "cosine" if len(table) and "cosine" in table.columns else "top1_agreement"
        else:
            y = "top1_agreement"
        if len(table) and x in table.columns and y in table.columns:
            fig = plots.tradeoff_figure(table, x=x, y=y, highlight=s.history[-1].id)
            plots.update_figure_in_place(self.tradeoff, fig)

    def redraw_layers(self) -> None:
        s = self.session
        if not s.history or s.history[-1].per_layer is None:
            return
        pl = s.history[-1].per_layer
        fig = plots.layer_error_figure(list(pl["node"]), list(pl["sqnr_db"]),
                                       precisions=[str(p).upper() for p in pl["precision"]],
                                       selected=s.selected)
        plots.update_figure_in_place(self.layer_errors, fig)

    def refresh(self, what: str) -> None:
        s = self.session
        if what in ("build", "all", "model"):
            if s.history:
                prev = s.history[-2] if len(s.history) > 1 else None
                self.metrics.value = metrics_html(prev, s.history[-1])
            else:
                self.metrics.value = "<i>No builds yet: press Rebuild.</i>"
            self.redraw_history()
            self.redraw_layers()
        elif what == "selection":
            self.redraw_layers()
