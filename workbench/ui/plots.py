"""Plot functions: data in, plotly figure out.

Every function here takes plain data (numpy arrays, dicts, pandas DataFrames) and
returns a ``plotly.graph_objects.Figure``. Nothing here reads files, runs models or
touches widgets, so the figures can be tested by asserting on ``fig.data`` and reused
in notebooks, in the app and in the HTML report.

Traces carry a stable ``name`` (and ``meta`` for the role) so the app and the tests
can find them: e.g. the histogram figure has traces named ``"|x| histogram"``,
``"clipped"``, one per method, ``"chosen"`` and, when set, ``"manual"``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .._optional import require
from ..calib.algorithms import clipped_fraction

go = require("plotly.graph_objects", "plots", "ui", package="plotly")

#: one colour per calibration method, used consistently in every figure
METHOD_COLORS = {
    "entropy": "#1f77b4",
    "entropy_zero_fix": "#17becf",
    "minmax": "#d62728",
    "percentile": "#2ca02c",
    "mse": "#9467bd",
    "manual": "#ff7f0e",
    "chosen": "#000000",
}
PRECISION_COLORS = {"INT8": "#1f77b4", "FP16": "#ff7f0e", "FP32": "#7f7f7f"}


def _rebin(hist: np.ndarray, bin_width: float, max_bins: int) -> tuple[np.ndarray, float]:
    """Sum neighbouring bins so at most ``max_bins`` are drawn (the browser stays fast)."""
    hist = np.asarray(hist, dtype=np.float64)
    if max_bins <= 0 or len(hist) <= max_bins:
        return hist, float(bin_width)
    factor = int(np.ceil(len(hist) / max_bins))
    pad = (-len(hist)) % factor
    grouped = np.concatenate([hist, np.zeros(pad)]).reshape(-1, factor).sum(axis=1)
    return grouped, float(bin_width) * factor


def histogram_figure(
    hist: np.ndarray,
    bin_width: float,
    amax_by_method: Mapping[str, float] | None = None,
    chosen_amax: float | None = None,
    *,
    manual_amax: float | None = None,
    log_y: bool = True,
    title: str | None = None,
    max_bins: int = 512,
) -> "go.Figure":
    """|x| histogram of one tensor with a vertical line per threshold and the clipped mass.

    Args:
        hist: counts of |x| per bin; bin ``i`` covers ``[i * bin_width, (i + 1) * bin_width)``.
        bin_width: width of one bin (in the tensor's units).
        amax_by_method: threshold of each calibration method, drawn as dashed lines
            (default: none).
        chosen_amax: the threshold the plan uses; the mass above it is drawn as the
            ``"clipped"`` trace and its share is given in the title (default: none).
        manual_amax: a user override, drawn as its own line (default: none).
        log_y: logarithmic count axis (default True: the tails matter for clipping).
        title: figure title (default: "|x| histogram").
        max_bins: neighbouring bins are summed so that at most this many bars are drawn
            (default 512); the clipped mass is computed on the full histogram.
    """
    hist = np.asarray(hist, dtype=np.float64)
    shown, width = _rebin(hist, bin_width, max_bins)
    centers = (np.arange(len(shown)) + 0.5) * width
    fig = go.Figure()
    # the bars past the chosen threshold get their own trace so the clipped mass stands out
    cut = chosen_amax if chosen_amax is not None else np.inf
    inside = centers <= cut
    fig.add_trace(go.Bar(x=centers[inside], y=shown[inside], width=width, name="|x| histogram",
                         marker=dict(color="#8fb3d9", line=dict(width=0)), meta="histogram",
                         hovertemplate="|x|≈%{x:.4g}<br>count %{y}<extra></extra>"))
    fig.add_trace(go.Bar(x=centers[~inside], y=shown[~inside], width=width, name="clipped",
                         marker=dict(color="#e377c2", line=dict(width=0)), meta="clipped",
                         hovertemplate="|x|≈%{x:.4g}<br>count %{y} (clipped)<extra></extra>"))
    lines: list[tuple[str, float, str]] = []
    for method, value in (amax_by_method or {}).items():
        lines.append((method, float(value), "dash"))
    if chosen_amax is not None:
        lines.append(("chosen", float(chosen_amax), "solid"))
    if manual_amax is not None:
        lines.append(("manual", float(manual_amax), "dot"))
    for name, value, dash in lines:
        # lines live on a hidden [0, 1] axis so they span the plot whatever the count scale
        fig.add_trace(go.Scatter(
            x=[value, value], y=[0, 1], yaxis="y2", mode="lines", name=f"{name} {value:.4g}",
            meta=name, line=dict(color=METHOD_COLORS.get(name, "#555555"), dash=dash, width=2),
            hovertemplate=f"{name}: amax {value:.5g}<extra></extra>"))
    clipped = clipped_fraction(hist, bin_width, chosen_amax) if chosen_amax is not None else 0.0
    head = title or "|x| histogram"
    if chosen_amax is not None:
        head += f" — clipped {100 * clipped:.4g}% of values above {chosen_amax:.4g}"
    fig.update_layout(
        title=dict(text=head, font=dict(size=13)), barmode="overlay", bargap=0,
        # autorange: a FigureWidget otherwise keeps the previous tensor's axis range
        xaxis=dict(title="|x|", autorange=True),
        yaxis=dict(title="count", type="log" if log_y else "linear", autorange=True),
        yaxis2=dict(overlaying="y", range=[0, 1], visible=False, fixedrange=True),
        legend=dict(orientation="h", y=-0.2), margin=dict(l=50, r=10, t=40, b=40), height=340,
    )
    return fig


def layer_error_figure(
    nodes: Sequence[str],
    values: Sequence[float],
    *,
    precisions: Sequence[str] | None = None,
    selected: str | None = None,
    metric: str = "sqnr_db",
    title: str | None = None,
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
        title: figure title (default "Per-layer error").
    """
    nodes = list(nodes)
    values = np.asarray(values, dtype=np.float64)
    precisions = list(precisions) if precisions is not None else ["INT8"] * len(nodes)
    colors = [PRECISION_COLORS.get(str(p).upper(), "#7f7f7f") for p in precisions]
    outline = [3 if n == selected else 0 for n in nodes]
    fig = go.Figure(go.Bar(
        x=list(range(len(nodes))), y=values, customdata=nodes, name=metric, meta="layers",
        text=[str(p) for p in precisions], marker=dict(color=colors, line=dict(width=outline, color="black")),
        hovertemplate="%{customdata}<br>" + metric + " %{y:.3g}<br>%{text}<extra></extra>",
        textposition="none"))
    fig.update_layout(
        title=dict(text=title or "Per-layer error (click a bar to select the layer)", font=dict(size=13)),
        xaxis=dict(title="layer (graph order)", autorange=True), yaxis=dict(title=metric, autorange=True),
        margin=dict(l=50, r=10, t=40, b=40), height=300, clickmode="event",
    )
    return fig


def tradeoff_figure(
    table,
    *,
    x: str = "latency_ms",
    y: str = "top1_agreement",
    label: str | None = "build",
    highlight: object | None = None,
    title: str | None = None,
) -> "go.Figure":
    """Scatter of accuracy against cost, one point per row (a build or a search step).

    Args:
        table: pandas DataFrame with columns ``x`` and ``y`` (and ``label`` if given).
        x: cost column, e.g. "latency_ms" or "n_int8" (default "latency_ms"); rows where it
            is missing are left out.
        y: accuracy column (default "top1_agreement").
        label: column whose value each point carries in ``customdata`` so a click can
            restore it (default "build"; the row position when the column is absent).
        highlight: the label of the point drawn larger (default: none).
        title: figure title (default "<y> vs <x>").
    """
    df = table
    if x not in df.columns or y not in df.columns:
        raise KeyError(f"tradeoff_figure needs columns '{x}' and '{y}', got {list(df.columns)}")
    df = df[df[x].notna() & df[y].notna()]
    labels = list(df[label]) if label and label in df.columns else list(range(len(df)))
    sizes = [16 if highlight is not None and lab == highlight else 10 for lab in labels]
    fig = go.Figure(go.Scatter(
        x=df[x].astype(float).tolist(), y=df[y].astype(float).tolist(), customdata=labels,
        mode="lines+markers", name=y, meta="points", marker=dict(size=sizes),
        hovertemplate=f"{label or 'row'} %{{customdata}}<br>{x} %{{x:.4g}}<br>{y} %{{y:.4g}}<extra></extra>"))
    fig.update_layout(
        title=dict(text=title or f"{y} vs {x} (click a point to restore it)", font=dict(size=13)),
        xaxis=dict(title=x, autorange=True), yaxis=dict(title=y, autorange=True),
        margin=dict(l=50, r=10, t=40, b=40), height=300,
    )
    return fig


def method_comparison_figure(
    table,
    *,
    methods: Sequence[str] | None = None,
    reference: str = "minmax",
    title: str | None = None,
) -> "go.Figure":
    """Threshold of each method per tensor, as a share of the reference method's (min-max).

    A value below 1 means that method clips that tensor; the further below, the more.

    Args:
        table: DataFrame with a ``tensor`` column and one column per method (amax values).
        methods: method columns to draw (default: every column except ``tensor`` and the
            reference).
        reference: column that the others are divided by (default "minmax").
        title: figure title.
    """
    if "tensor" not in table.columns or reference not in table.columns:
        raise KeyError(f"method_comparison_figure needs 'tensor' and '{reference}' columns")
    methods = list(methods) if methods is not None else [
        c for c in table.columns if c not in ("tensor", reference) and np.issubdtype(table[c].dtype, np.number)]
    ref = table[reference].astype(float).to_numpy()
    fig = go.Figure()
    for m in methods:
        ratio = np.divide(table[m].astype(float).to_numpy(), ref, out=np.full(len(ref), np.nan), where=ref > 0)
        fig.add_trace(go.Scatter(
            x=list(range(len(ratio))), y=ratio, customdata=list(table["tensor"]), mode="markers",
            name=m, meta=m, marker=dict(color=METHOD_COLORS.get(m), size=7),
            hovertemplate="%{customdata}<br>" + m + " / " + reference + " = %{y:.3g}<extra></extra>"))
    fig.update_layout(
        title=dict(text=title or f"amax of each method / {reference} amax (below 1 = clipping)",
                   font=dict(size=13)),
        xaxis=dict(title="tensor (graph order)"), yaxis=dict(title=f"amax / {reference}"),
        margin=dict(l=50, r=10, t=40, b=40), height=320,
    )
    return fig


def quantization_figure(
    x: np.ndarray,
    dequantized: Mapping[str, np.ndarray],
    *,
    title: str | None = None,
) -> "go.Figure":
    """Original values against their quantize-dequantize round trips (teaching plot).

    Args:
        x: original values (1-D).
        dequantized: label -> values after quantize + dequantize, same length as ``x``.
        title: figure title.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    fig = go.Figure(go.Scatter(x=list(range(len(x))), y=x, mode="markers", name="original",
                               meta="original", marker=dict(size=12, symbol="circle-open")))
    for label, values in dequantized.items():
        fig.add_trace(go.Scatter(x=list(range(len(x))), y=np.asarray(values, dtype=np.float64).ravel(),
                                 mode="markers", name=label, meta=label, marker=dict(size=8)))
    fig.update_layout(title=dict(text=title or "original vs quantized", font=dict(size=13)),
                      xaxis=dict(title="element"), yaxis=dict(title="value"), height=300,
                      margin=dict(l=50, r=10, t=40, b=40))
    return fig


def distributions_figure(
    edges: np.ndarray,
    series: Mapping[str, np.ndarray],
    *,
    title: str | None = None,
    log_y: bool = False,
) -> "go.Figure":
    """Several distributions over the same bins as step lines (e.g. P and Q of the KL search).

    Args:
        edges: bin edges (length = len(each series) + 1).
        series: label -> per-bin values.
        title: figure title.
        log_y: logarithmic y axis (default False).
    """
    edges = np.asarray(edges, dtype=np.float64)
    fig = go.Figure()
    for label, values in series.items():
        fig.add_trace(go.Scatter(x=edges[:-1], y=np.asarray(values, dtype=np.float64), mode="lines",
                                 line=dict(shape="hv"), name=label, meta=label))
    fig.update_layout(title=dict(text=title or "", font=dict(size=13)), height=300,
                      yaxis=dict(type="log" if log_y else "linear"), margin=dict(l=50, r=10, t=40, b=40))
    return fig


def curve_figure(x: Sequence[float], y: Sequence[float], *, marker_x: float | None = None,
                 x_title: str = "", y_title: str = "", title: str | None = None) -> "go.Figure":
    """A line ``y(x)`` with an optional vertical marker (e.g. KL divergence per candidate).

    Args:
        x, y: the curve.
        marker_x: position of a vertical marker line (default: none).
        x_title, y_title, title: labels.
    """
    fig = go.Figure(go.Scatter(x=list(map(float, x)), y=list(map(float, y)), mode="lines",
                               name=y_title or "y", meta="curve"))
    if marker_x is not None:
        fig.add_trace(go.Scatter(x=[marker_x, marker_x], y=[0, 1], yaxis="y2", mode="lines",
                                 name=f"{marker_x:.4g}", meta="marker",
                                 line=dict(color="black", dash="dash")))
    fig.update_layout(title=dict(text=title or "", font=dict(size=13)), height=280,
                      xaxis=dict(title=x_title), yaxis=dict(title=y_title),
                      yaxis2=dict(overlaying="y", range=[0, 1], visible=False),
                      margin=dict(l=50, r=10, t=40, b=40))
    return fig


def traces_by_meta(fig, meta: str) -> list:
    """The traces of ``fig`` whose ``meta`` equals ``meta`` (used by the app and the tests)."""
    return [t for t in fig.data if t.meta == meta]


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
