"""Plot functions: data in, plotly figure out.

Every function here takes plain data (numpy arrays, dicts, pandas DataFrames) and
returns a ``plotly.graph_objects.Figure``. Nothing here reads files, runs models or
touches widgets, so the figures can be tested by asserting on ``fig.data`` and reused
in notebooks, in the app and in the HTML report.

Traces carry a stable ``meta`` role so the app and the tests can find them
(:func:`traces_by_meta`): the histogram figure has ``"histogram"``, ``"clipped"``, one line
per threshold (its method name; a list of names when several thresholds coincide and share
one line), ``"flags"`` (a coloured marker per threshold at the top of its line) and, when
given, ``"preview"``. The trade-off plots live in :mod:`workbench.ui.plots_tradeoff`, the
teaching plots in :mod:`workbench.ui.plots_teaching` and the model graph in
:mod:`workbench.ui.graph_plot`; all are re-exported here.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from .._optional import require
from ..calib.algorithms import clipped_fraction
from .style import CLIPPED_COLOR, PRECISION_COLORS, fmt_num, fmt_pct, method_color
from .graph_plot import graph_figure  # noqa: F401 (re-export)
from .plots_tradeoff import (AXIS_LABELS, FRACTION_METRICS, fitted_range,  # noqa: F401 (re-export)
                             method_comparison_figure, tradeoff_figure)
from .plots_teaching import curve_figure, distributions_figure, finite_or_none, quantization_figure  # noqa: F401,E501

go = require("plotly.graph_objects", "plots", "ui", package="plotly")

#: kept for callers of the earlier API; :func:`workbench.ui.style.method_color` is the source
METHOD_COLORS = {m: method_color(m) for m in ("entropy", "entropy_zero_fix", "minmax", "percentile", "mse",
                                             "manual", "chosen")}
#: share of the x-range within which two thresholds are drawn as one line
COINCIDE = 0.006
ZOOMS = ("all", "chosen", "tail")
_MARGIN = dict(l=55, r=15, t=40, b=40)


def _rebin(hist: np.ndarray, bin_width: float, max_bins: int) -> tuple[np.ndarray, float]:
    """Sum neighbouring bins so at most ``max_bins`` are drawn (the browser stays fast)."""
    hist = np.asarray(hist, dtype=np.float64)
    if max_bins <= 0 or len(hist) <= max_bins:
        return hist, float(bin_width)
    factor = int(np.ceil(len(hist) / max_bins))
    pad = (-len(hist)) % factor
    grouped = np.concatenate([hist, np.zeros(pad)]).reshape(-1, factor).sum(axis=1)
    return grouped, float(bin_width) * factor


def _finite(values) -> list:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def histogram_x_range(zoom: str, *, data_max: float, thresholds: Sequence[float],
                      chosen: float | None) -> tuple[float, float]:
    """The x-range of the histogram for a zoom setting.

    ``"all"`` covers the data's max |x| and every threshold (4 % margin); ``"chosen"`` the
    values up to 1.25 x the chosen threshold (the bins that are kept, in detail);
    ``"tail"`` from 0.8 x the chosen threshold to the end (the clipped values and outliers).
    """
    top = max(_finite([data_max, *thresholds]) + [0.0])
    top = top * 1.04 if top > 0 else 1.0
    if zoom == "chosen" and chosen:
        return 0.0, min(float(chosen) * 1.25, top)
    if zoom == "tail" and chosen:
        return float(chosen) * 0.8, top
    return 0.0, top


def threshold_groups(lines: Mapping[str, float], tol: float) -> list:
    """Thresholds closer than ``tol`` to their neighbour, grouped: ``[(x, [(name, value), ...])]``
    sorted by x; a group containing "chosen" (or "manual") is drawn at that value."""
    items = sorted(((float(v), k) for k, v in lines.items() if v is not None and math.isfinite(float(v))))
    groups: list = []
    for value, name in items:
        if groups and value - groups[-1][-1][0] <= tol:
            groups[-1].append((value, name))
        else:
            groups.append([(value, name)])
    out = []
    role = {"chosen": 0, "manual": 1}
    for g in groups:
        g = sorted(g, key=lambda vn: (role.get(vn[1], 2), vn[0], vn[1]))  # chosen / manual named first
        anchor = next((v for v, n in g if n in role), g[0][0])
        out.append((anchor, [(n, v) for v, n in g]))
    return out


def _group_label(members: list) -> str:
    values = {fmt_num(v) for _, v in members}
    if len(values) == 1:
        return " = ".join(n for n, _ in members) + f" {fmt_num(members[0][1])}"
    return " ≈ ".join(f"{n} {fmt_num(v)}" for n, v in members)


def histogram_figure(
    hist: np.ndarray,
    bin_width: float,
    amax_by_method: Mapping[str, float] | None = None,
    chosen_amax: float | None = None,
    *,
    manual_amax: float | None = None,
    preview_amax: float | None = None,
    chosen_label: str | None = None,
    data_max: float | None = None,
    log_y: bool = True,
    zoom: str = "all",
    title: str | None = None,
    max_bins: int = 400,
    height: int = 340,
) -> "go.Figure":
    """|x| histogram of one tensor with a vertical line per threshold and the clipped mass.

    Args:
        hist: counts of |x| per bin; bin ``i`` covers ``[i * bin_width, (i + 1) * bin_width)``.
        bin_width: width of one bin (in the tensor's units).
        amax_by_method: name -> threshold, one dashed line each (calibration methods and any
            other line the data carries, e.g. "model" or "auto"; default: none). Lines closer
            than 0.6 % of the x-range share one line with a merged legend entry
            ("entropy = entropy_zero_fix 40.75") and keep one coloured flag each.
        chosen_amax: the threshold the plan uses (a thick black line); the mass above it is
            the ``"clipped"`` trace, shaded, and its share is in the title (default: none).
        manual_amax: a user override, drawn dotted (default: none).
        preview_amax: a threshold being tried (the slider), drawn thin (default: none).
        chosen_label: where the chosen threshold comes from, for the title (e.g. "mse").
        data_max: max |x| of the data (default: the upper edge of the last non-empty bin).
        log_y: logarithmic count axis (default True: the tails matter for clipping).
        zoom: "all" (every threshold and the data max), "chosen" or "tail"
            (see :func:`histogram_x_range`).
        title: figure title (default: "|x| histogram"; "" for none).
        max_bins: neighbouring bins are summed so that at most this many bars are drawn in
            the visible range (default 400); the clipped share uses the full histogram.
        height: figure height in pixels.
    """
    hist = np.asarray(hist, dtype=np.float64)
    bw = float(bin_width) if bin_width and bin_width > 0 else 1.0
    nonzero = np.flatnonzero(hist)
    extent = (nonzero[-1] + 1) * bw if len(nonzero) else 0.0
    data_max = max(float(data_max) if data_max is not None else 0.0, extent)
    lines = {str(k): float(v) for k, v in (amax_by_method or {}).items() if v is not None}
    if chosen_amax is not None:
        lines["chosen"] = float(chosen_amax)
    if manual_amax is not None:
        lines["manual"] = float(manual_amax)
    full = histogram_x_range("all", data_max=data_max, thresholds=list(lines.values()) + _finite([preview_amax]),
                             chosen=chosen_amax)
    lo, hi = histogram_x_range(zoom, data_max=data_max, thresholds=list(lines.values()), chosen=chosen_amax)
    # bars of the visible range only, rebinned there (a zoom shows finer bins)
    i0, i1 = int(lo // bw), min(len(hist), int(math.ceil(hi / bw)) + 1)
    shown, width = _rebin(hist[i0:i1], bw, max_bins)
    centers = i0 * bw + (np.arange(len(shown)) + 0.5) * width
    cut = chosen_amax if chosen_amax is not None else np.inf
    inside = centers <= cut
    traces = []
    traces.append(dict(type="bar", x=centers[inside], y=shown[inside], width=width, name="values",
                       marker=dict(color="#8fb3d9", line=dict(width=0)), meta="histogram",
                       hovertemplate="|x|≈%{x:.4g}<br>count %{y}<extra></extra>"))
    traces.append(dict(type="bar", x=centers[~inside], y=shown[~inside], width=width, name="clipped",
                       marker=dict(color=CLIPPED_COLOR, line=dict(width=0)), meta="clipped",
                       hovertemplate="|x|≈%{x:.4g}<br>count %{y} (clipped)<extra></extra>"))
    flags_x, flags_y, flags_c, flags_t = [], [], [], []
    for x, members in threshold_groups(lines, COINCIDE * full[1]):
        names = [n for n, _ in members]
        if "chosen" in names:
            style = dict(color="#000000", width=3)
        elif "manual" in names:
            style = dict(color=method_color("manual"), width=2, dash="dot")
        else:
            style = dict(color=method_color(names[0]), width=2, dash="dash" if len(names) == 1 else "longdashdot")
        label = _group_label(members)
        traces.append(dict(
            type="scatter", x=[x, x], y=[0, 1], yaxis="y2", mode="lines", name=label,
            meta=names[0] if len(names) == 1 else names, line=style,
            hovertemplate="<br>".join(f"{n}: amax {v:.6g}" for n, v in members) + "<extra></extra>"))
        for k, (n, v) in enumerate(members):
            flags_x.append(x)
            flags_y.append(0.97 - 0.075 * k)
            flags_c.append(method_color(n))
            flags_t.append(f"{n}: {v:.6g}")
    traces.append(dict(type="scatter", x=flags_x, y=flags_y, yaxis="y2", mode="markers", meta="flags",
                       showlegend=False, text=flags_t, marker=dict(symbol="triangle-down", size=11, color=flags_c,
                                                                   line=dict(width=1, color="white")),
                       hovertemplate="%{text}<extra></extra>"))
    if preview_amax is not None:
        traces.append(dict(type="scatter", x=[preview_amax, preview_amax], y=[0, 1], yaxis="y2", mode="lines",
                           name=f"trying {fmt_num(preview_amax)}", meta="preview", showlegend=False,
                           line=dict(color=method_color("preview"), width=1.5),
                           hovertemplate=f"trying amax {preview_amax:.6g}<extra></extra>"))
    head = "|x| histogram" if title is None else title
    shapes, notes = [], []
    if chosen_amax is not None:
        clipped = clipped_fraction(hist, bw, chosen_amax) if hist.sum() else 0.0
        src = f" ({chosen_label})" if chosen_label else ""
        if head:  # title="" draws no title (the app writes its own caption)
            head += f" — amax {fmt_num(chosen_amax)}{src}, clipped {fmt_pct(clipped)} of values"
        shapes.append(dict(type="rect", xref="x", yref="paper", x0=chosen_amax, x1=max(hi, chosen_amax), y0=0, y1=1,
                           fillcolor=CLIPPED_COLOR, opacity=0.10, line=dict(width=0), layer="below"))
        right = chosen_amax > lo + 0.75 * (hi - lo)  # near the right edge: write it to the left
        notes.append(dict(x=chosen_amax, y=0.7, xref="x", yref="paper", xanchor="right" if right else "left",
                          yanchor="top", showarrow=False, text=f" clipped {fmt_pct(clipped)} ",
                          font=dict(size=11, color="#a0306e")))
    layout = dict(
        title=dict(text=head, font=dict(size=13)), barmode="overlay", bargap=0,
        xaxis=dict(range=[lo, hi], autorange=False, ticksuffix=""),
        yaxis=dict(title=dict(text="count", standoff=4), type="log" if log_y else "linear", autorange=True),
        yaxis2=dict(overlaying="y", range=[0, 1], visible=False, fixedrange=True),
        shapes=shapes, annotations=notes,
        legend=dict(orientation="h", y=-0.1, yanchor="top", font=dict(size=10), itemwidth=30,
                    tracegroupgap=0),
        margin=dict(l=50, r=10, t=30 if head else 12, b=10), height=height, autosize=True,
    )
    return go.Figure(data=traces, layout=layout)


def layer_error_figure(
    nodes: Sequence[str],
    values: Sequence[float],
    *,
    precisions: Sequence[str] | None = None,
    selected: str | None = None,
    metric: str = "sqnr_db",
    title: str | None = None,
    interactive: bool = True,
    height: int = 280,
) -> "go.Figure":
    """Bar per layer of an error metric (default SQNR in dB; higher is better).

    Args:
        nodes: node names in graph order; each bar's ``customdata`` is its node name so a
            click can select the layer.
        values: the metric of each node (NaN draws no bar).
        precisions: the precision of each node ("INT8", "FP16", "FP32") for the colour
            (default: all INT8).
        selected: node drawn with an outline (default: none).
        metric: axis label (default "sqnr_db").
        title: figure title (default "Per-layer error", plus a click hint when interactive).
        interactive: the figure is shown in the app (False: a static report, no click hint).
    """
    nodes = list(nodes)
    values = np.asarray(values, dtype=np.float64)
    precisions = list(precisions) if precisions is not None else ["INT8"] * len(nodes)
    colors = [PRECISION_COLORS.get(str(p).upper(), "#7f7f7f") for p in precisions]
    outline = [3 if n == selected else 0 for n in nodes]
    bars = dict(
        type="bar", x=list(range(len(nodes))), y=values, customdata=nodes, name=metric, meta="layers",
        text=[str(p) for p in precisions], marker=dict(color=colors, line=dict(width=outline, color="black")),
        hovertemplate="%{customdata}<br>" + metric + " %{y:.3g}<br>%{text}<extra></extra>",
        textposition="none")
    default = "Per-layer SQNR of the last build" + (" (click a bar to select the layer)" if interactive else "")
    layout = dict(
        title=dict(text=title or default, font=dict(size=13)),
        xaxis=dict(title="layer (graph order)", autorange=True),
        yaxis=dict(title={"sqnr_db": "SQNR [dB]"}.get(metric, metric), autorange=True),
        margin=_MARGIN, height=height, clickmode="event", autosize=True,
    )
    return go.Figure(data=[bars], layout=layout)


def traces_by_meta(fig, meta: str) -> list:
    """The traces of ``fig`` whose ``meta`` is ``meta`` or a list containing it."""
    return [t for t in fig.data
            if t.meta == meta or (isinstance(t.meta, (list, tuple)) and meta in t.meta)]


def update_figure_in_place(target, source) -> None:
    """Make ``target`` (a FigureWidget) show ``source`` with as little traffic as possible.

    When both have the same trace types in the same order, each trace's properties are
    updated in place (fast, no flicker); otherwise the traces are replaced.
    """
    same = len(target.data) == len(source.data) and all(
        a.type == b.type for a, b in zip(target.data, source.data))
    with target.batch_update():
        if same:
            for dst, src in zip(target.data, source.data):
                dst.update(src.to_plotly_json(), overwrite=True)
        target.layout.update(source.layout.to_plotly_json(), overwrite=True)
    if not same:
        target.data = []
        target.add_traces(list(source.data))
