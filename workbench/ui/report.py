"""HTML report of a session: model, calibration, layer table, builds, and the plots."""
from __future__ import annotations

import html
import time
from pathlib import Path

from .._io import atomic_write_text
from . import plots


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{body}\n"


def _table(df) -> str:
    if df is None or not len(df):
        return "<p><i>none</i></p>"
    return df.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-", border=0, classes="t")


def report_figures(session) -> list:
    """(title, figure) pairs drawn in the report, from the session's state."""
    figs = []
    if session.stats is not None and session.selected is not None:
        d = session.histogram()
        figs.append((f"Histogram of {d['tensor']}", plots.histogram_figure(
            d["hist"], d["bin_width"], d["amax_by_method"], d["chosen"], manual_amax=d["manual"],
            title=d["tensor"])))
    if session.base_ranges is not None:
        df = session.base_ranges.to_dataframe()
        table = df[["tensor"]].copy()
        for m in session.base_ranges.tensors[next(iter(session.base_ranges.tensors))].amax_by_method:
            table[m] = df[f"amax_{m}"]
        figs.append(("Thresholds by method", plots.method_comparison_figure(table)))
    if session.history and session.history[-1].per_layer is not None:
        pl = session.history[-1].per_layer
        figs.append(("Per-layer error of the last build", plots.layer_error_figure(
            list(pl["node"]), list(pl["sqnr_db"]), precisions=[str(p).upper() for p in pl["precision"]])))
    hist = session.history_table()
    if len(hist) and "top1_agreement" in hist.columns:
        figs.append(("Builds: accuracy vs INT8 nodes", plots.tradeoff_figure(hist, x="n_int8")))
    if session.auto_result is not None and "top1_agreement" in session.auto_result.curve.columns:
        figs.append(("Automatic search curve", plots.tradeoff_figure(
            session.auto_result.curve, x="n_int8", label="n_fallback")))
    return figs


def write_report(session, path) -> Path:
    """Write a self-contained HTML report (plotly.js embedded once) and return its path."""
    parts = [f"<p>Written {time.strftime('%Y-%m-%d %H:%M')}.</p>"]
    if session.model_info is not None:
        d = session.model_summary()
        parts.append(_section("Model", f"<pre>{html.escape(_kv(d))}</pre>"))
    c = session.calib_settings
    parts.append(_section("Calibration", f"<p>method {html.escape(c.method)}, percentile {c.percentile}, "
                                         f"batch {c.batch_size}; {html.escape(str(session.last_calibration))}</p>"))
    if session.plan is not None:
        parts.append(_section("Layers", _table(session.layer_table())))
    parts.append(_section("Builds", _table(session.history_table())))
    if session.sensitivity_table is not None:
        parts.append(_section("Sensitivity", _table(session.sensitivity_table)))
    first = True
    for title, fig in report_figures(session):
        parts.append(_section(title, fig.to_html(full_html=False, include_plotlyjs=first)))
        first = False
    doc = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Workbench report</title>"
           "<style>body{font-family:sans-serif;margin:20px} table.t{border-collapse:collapse;font-size:12px}"
           "table.t td,table.t th{padding:2px 6px;border-bottom:1px solid #ddd}</style></head><body>"
           "<h1>Quantization workbench report</h1>" + "".join(parts) + "</body></html>")
    return atomic_write_text(path, doc)


def _kv(d: dict) -> str:
    return "\n".join(f"{k}: {v}" for k, v in d.items())
