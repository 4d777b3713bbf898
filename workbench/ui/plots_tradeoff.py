"""Trade-off and comparison plots: data in, plotly figure out (re-exported by :mod:`.plots`).

Curves are sorted by x, every point stays inside the axes (fitted with a margin), fractions get
a 0-1 axis or a zoom that says where it starts.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .._optional import require
from .style import method_color

go = require("plotly.graph_objects", "plots", "ui", package="plotly")

_MARGIN = dict(l=55, r=15, t=40, b=40)
#: metrics that are fractions in [0, 1]
FRACTION_METRICS = ("top1_agreement", "top1_in_ref_top5", "cosine", "meets_target")
#: axis titles for people
AXIS_LABELS = {"n_int8": "INT8 nodes", "latency_ms": "latency [ms]", "top1_agreement": "top-1 agreement",
               "top1_in_ref_top5": "FP32 top-1 in top-5", "sqnr_db": "output SQNR [dB]", "cosine": "cosine",
               "n_fallback": "nodes out of INT8", "latency_ms_b1": "latency [ms]"}


def _finite(values) -> list:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def fitted_range(values: Sequence[float], *, fraction: bool = False, pad: float = 0.08) -> tuple:
    """An axis range showing every value with a margin: ``(lo, hi, zoomed)``.

    Fractions (``fraction=True``) stay within [0, 1] plus the margin; when all values sit in
    the upper part, the axis starts above 0 and ``zoomed`` is True (say so on the plot).
    """
    v = _finite(values)
    if not v:
        return (0.0, 1.0, False) if fraction else (0.0, 1.0, False)
    lo, hi = min(v), max(v)
    span = hi - lo
    if fraction:
        if 0 < span < 0.45 and lo >= 0.5:
            m = max(pad * span, 0.004)
            return lo - m, min(1.0, hi) + m, True
        return -0.03, 1.03, False
    m = pad * span if span > 0 else (abs(hi) * 0.05 or 0.5)
    return lo - m, hi + m, False


def tradeoff_figure(
    table,
    *,
    x: str = "latency_ms",
    y: str = "top1_agreement",
    label: str | None = "build",
    highlight: object | None = None,
    chosen: str | None = None,
    connect: bool = True,
    title: str | None = None,
    interactive: bool = True,
    height: int = 280,
) -> "go.Figure":
    """Accuracy against cost, one point per row (a build or a search step), sorted by x.

    Args:
        table: pandas DataFrame with columns ``x`` and ``y`` (and ``label`` if given).
        x: cost column, e.g. "latency_ms" or "n_int8" (default "latency_ms"); rows where it
            is missing are left out.
        y: accuracy column (default "top1_agreement"); fractions get a 0-1 axis (zoomed with
            a note when every point is near 1).
        label: column whose value each point carries in ``customdata`` so a click can
            restore it (default "build"; the row position when the column is absent).
        highlight: the label of the point drawn larger (default: none).
        chosen: a boolean column marking the chosen row(s), drawn as a star outside the line
            (e.g. the automatic search's refined plan; default: none).
        connect: join the points in x order (default True; False: markers only).
        title: figure title.
        interactive: False for static reports (no click hint).
    """
    df = table
    if x not in df.columns or y not in df.columns:
        from ..errors import InternalError

        raise InternalError(f"tradeoff_figure needs columns '{x}' and '{y}', got {list(df.columns)}")
    df = df[df[x].notna() & df[y].notna()].copy()
    df["_label"] = list(df[label]) if label and label in df.columns else list(range(len(df)))
    df = df.sort_values(x, kind="stable")
    star = df[chosen].fillna(False).astype(bool) if chosen and chosen in df.columns else None
    main = df[~star] if star is not None else df
    labels = list(main["_label"])
    sizes = [15 if highlight is not None and lab == highlight else 9 for lab in labels]
    hover = f"{label or 'row'} %{{customdata}}<br>{x} %{{x:.4g}}<br>{y} %{{y:.4g}}<extra></extra>"
    traces = [dict(
        type="scatter", x=main[x].astype(float).tolist(), y=main[y].astype(float).tolist(), customdata=labels,
        mode="lines+markers" if connect else "markers+text", name=y, meta="points",
        text=None if connect else [f"{label or '#'} {lab}" if label == "build" else f"{lab}" for lab in labels],
        textposition="top center", textfont=dict(size=10), cliponaxis=False,
        marker=dict(size=sizes), hovertemplate=hover)]
    if star is not None and star.any():
        sel = df[star]
        traces.append(dict(type="scatter", x=sel[x].astype(float).tolist(), y=sel[y].astype(float).tolist(),
                                 customdata=list(sel["_label"]), mode="markers", name="chosen plan", meta="chosen",
                                 marker=dict(symbol="star", size=16, color="#d62728"), hovertemplate=hover))
    xlo, xhi, _ = fitted_range(df[x].astype(float))
    frac = y in FRACTION_METRICS
    ylo, yhi, zoomed = fitted_range(df[y].astype(float), fraction=frac)
    # a zoomed fraction axis says where it starts, in its title (nothing drawn over the points)
    y_title = AXIS_LABELS.get(y, y) + (f" (zoomed: from {ylo:.3g}, not 0)" if zoomed else " (0–1)" if frac else "")
    hint = " (click a point to pick it)" if interactive else ""
    layout = dict(
        title=dict(text=title or f"{AXIS_LABELS.get(y, y)} vs {AXIS_LABELS.get(x, x)}{hint}", font=dict(size=13)),
        xaxis=dict(title=AXIS_LABELS.get(x, x), range=[xlo, xhi], autorange=False),
        yaxis=dict(title=dict(text=y_title, font=dict(size=11)), range=[ylo, yhi], autorange=False),
        showlegend=False, margin=_MARGIN, height=height, autosize=True,
    )
    fig = go.Figure(data=traces, layout=layout)
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
        methods: method columns to draw (default: every numeric column except ``tensor`` and
            the reference).
        reference: column that the others are divided by (default "minmax").
        title: figure title.
    """
    if "tensor" not in table.columns or reference not in table.columns:
        from ..errors import InternalError

        raise InternalError(f"method_comparison_figure needs 'tensor' and '{reference}' columns")
    methods = list(methods) if methods is not None else [
        c for c in table.columns if c not in ("tensor", reference) and np.issubdtype(table[c].dtype, np.number)]
    ref = table[reference].astype(float).to_numpy()
    fig = go.Figure()
    for m in methods:
        ratio = np.divide(table[m].astype(float).to_numpy(), ref, out=np.full(len(ref), np.nan), where=ref > 0)
        fig.add_trace(go.Scatter(
            x=list(range(len(ratio))), y=ratio, customdata=list(table["tensor"]), mode="markers",
            name=m, meta=m, marker=dict(color=method_color(m), size=7),
            hovertemplate="%{customdata}<br>" + m + " / " + reference + " = %{y:.3g}<extra></extra>"))
    fig.update_layout(
        title=dict(text=title or f"amax of each method / {reference} amax (below 1 = clipping)",
                   font=dict(size=13)),
        xaxis=dict(title="tensor (graph order)"), yaxis=dict(title=f"amax / {reference}"),
        margin=_MARGIN, height=320,
    )
    return fig
