"""HTML report of a session: model, calibration, layers, builds, searches and the plots.

The report is small: plotly.js is not embedded but written once, beside the report, as
``plotly-<version>.min.js`` (shared by every report in that folder; an existing identical file
is reused, a different one is never overwritten). Texts are those of a static page: no
"click to ..." hints.
"""
from __future__ import annotations

import hashlib
import html
import time
from pathlib import Path

from .._io import atomic_write_text
from . import plots
from .style import fmt_num, fmt_seconds
from .texts import ranking_note


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{body}\n"


def _table(df) -> str:
    if df is None or not len(df):
        return "<p><i>none</i></p>"
    return df.to_html(index=False, float_format=lambda v: fmt_num(v), na_rep="–", border=0, classes="t")


def report_figures(session) -> list:
    """(title, figure) pairs drawn in the report, from the session's state."""
    figs = []
    if session.stats is not None and session.selected is not None:
        try:
            d = session.histogram()
        except Exception:  # noqa: BLE001 - the selected layer has no histogram: leave the plot out
            d = None
        if d is not None:
            figs.append((f"Histogram of {d['tensor']} (input of {d['node']})", plots.histogram_figure(
                d["hist"], d["bin_width"], d["amax_by_method"], d["chosen"], manual_amax=d["manual"],
                data_max=d["max"], chosen_label="set by hand" if d["manual"] is not None else d["method"],
                title=d["tensor"])))
    if session.base_ranges is not None and session.base_ranges.tensors:
        df = session.base_ranges.to_dataframe()
        table = df[["tensor"]].copy()
        first = next(iter(session.base_ranges.tensors.values()))
        for m in first.amax_by_method:
            if f"amax_{m}" in df.columns:
                table[m] = df[f"amax_{m}"]
        if "minmax" in table.columns:
            figs.append(("Thresholds by method", plots.method_comparison_figure(table)))
    if session.history and session.history[-1].per_layer is not None:
        pl = session.history[-1].per_layer
        figs.append(("Per-layer error of the last build", plots.layer_error_figure(
            list(pl["node"]), list(pl["sqnr_db"]), precisions=[str(p).upper() for p in pl["precision"]],
            interactive=False)))
    hist = session.history_table()
    y = "top1_agreement" if "top1_agreement" in hist.columns else "cosine"
    if len(hist) and y in hist.columns:
        figs.append(("Builds: accuracy vs INT8 nodes", plots.tradeoff_figure(
            hist, x="n_int8", y=y, connect=False, interactive=False, title=f"builds: {y} vs INT8 nodes")))
    r = session.mixed_precision_result
    if r is not None:
        key = r.target.key if r.target.key in r.curve.columns else "sqnr_db"
        figs.append(("Automatic search curve", plots.tradeoff_figure(
            r.curve, x="n_int8", y=key, label="n_fallback", chosen="chosen", interactive=False,
            title=f"search: {key} vs INT8 nodes (star = chosen plan)")))
    return figs


def _calibration_text(session) -> str:
    c, lc = session.calib_settings, session.last_calibration
    text = f"Range method <b>{html.escape(c.method)}</b>"
    if c.method == "percentile":
        text += f" (percentile {fmt_num(c.percentile)})"
    if lc:
        how = lc.get("how", "")
        text += (f"; statistics {html.escape(how)} from {lc.get('samples')} samples, batch "
                 f"{lc.get('batch_size')}, in {fmt_seconds(lc.get('seconds'))}")
    else:
        text += "; not calibrated"
    return f"<p>{text}.</p>"


def _auto_text(session) -> str:
    r = session.mixed_precision_result
    if r is None:
        return ""
    cols = [c for c in ("plan", "n_fallback", "n_int8", r.target.key, "sqnr_db", "meets_target", "nodes")
            if c in r.curve.columns]
    cols = list(dict.fromkeys(cols))
    state = "met" if r.met else "not met"
    head = (f"<p>Target {html.escape(r.target.text)} {state} with {len(r.fallback)} node(s) out of INT8 "
            f"({r.evaluations} plans scored in {fmt_seconds(r.seconds)}). Rows \"the k most sensitive\" take the k "
            "first nodes of the ranking; the chosen row is the plan kept, after nodes that did not help went back to "
            "INT8.</p>")
    return head + _table(r.curve[cols])


def plotly_js_name(folder: Path) -> tuple:
    """``(name, text)`` of plotly.js beside the reports in ``folder`` (``plotly-<version>.min.js``);
    ``text`` is None when an identical file is already there (reused), else the file to write.
    A different existing file is left alone and another name used."""
    import plotly
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    digest = hashlib.sha256(js.encode()).hexdigest()[:10]
    for name in (f"plotly-{plotly.__version__}.min.js", f"plotly-{plotly.__version__}-{digest}.min.js"):
        path = folder / name
        if not path.exists():
            return name, js
        if hashlib.sha256(path.read_bytes()).hexdigest()[:10] == digest:
            return name, None
    raise FileExistsError(f"'{folder / name}' exists with other content")


def export_report(session, path=None, *, overwrite: bool | None = None) -> Path:
    """Write the session's HTML report (default path: the session's export stem +
    ``.report.html``) and, the first time in that folder, plotly.js beside it: both files in one
    result (:class:`workbench.outputs.ResultWriter`), so a failed write leaves neither."""
    from ..outputs.names import export_path

    session._need_model()
    path = Path(path) if path is not None else export_path(session.export_stem(), "report")
    js_name, js_text = plotly_js_name(path.parent)
    files = [path] + ([path.parent / js_name] if js_text is not None else [])
    with session._writer(files, "report", overwrite, path) as result:
        if js_text is not None:
            atomic_write_text(result.path(path.parent / js_name), js_text)
        atomic_write_text(result.path(path), report_html(session, js_name))
    return path


def report_html(session, js_name: str) -> str:
    """The report's HTML, loading plotly.js from ``js_name`` (a file beside the report)."""
    parts = [f"<p>Written {time.strftime('%Y-%m-%d %H:%M')}.</p>"]
    if session.model_info is not None:
        d = session.model_summary()
        parts.append(_section("Model", "<pre>" + html.escape("\n".join(f"{k}: {v}" for k, v in d.items())) + "</pre>"))
    parts.append(_section("Calibration", _calibration_text(session)))
    if session.plan is not None:
        parts.append(_section("Layers", _table(session.layer_table())))
    stale = session.staleness()
    note = ("<p><b>The last build is out of date:</b> " + html.escape("; ".join(stale)) + ".</p>") if stale else ""
    parts.append(_section("Builds", note + _table(session.history_table())))
    if session.sensitivity_table is not None:
        parts.append(_section("Sensitivity", f"<p>{html.escape(ranking_note(session.sensitivity_table))}</p>"
                              + _table(session.sensitivity_table)))
    if session.mixed_precision_result is not None:
        parts.append(_section("Automatic mixed precision", _auto_text(session)))
    for title, fig in report_figures(session):
        parts.append(_section(title, fig.to_html(full_html=False, include_plotlyjs=False)))
    doc = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Workbench report</title>"
           f"<script src='{html.escape(js_name)}'></script>"
           "<style>body{font-family:sans-serif;margin:20px} table.t{border-collapse:collapse;font-size:12px}"
           "table.t td,table.t th{padding:2px 6px;border-bottom:1px solid #ddd}</style></head><body>"
           "<h1>Quantization workbench report</h1>" + "".join(parts) + "</body></html>")
    return doc
