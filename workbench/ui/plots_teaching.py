"""Teaching plots (notebook 04 and the debugging notebook): data in, plotly figure out.

Non-finite values (an infinite KL divergence, say) are never handed to plotly: they would
make the widget's JSON invalid. They are left out of the line and counted in the title.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .._optional import require

go = require("plotly.graph_objects", "plots", "ui", package="plotly")

_MARGIN = dict(l=55, r=15, t=40, b=40)


def finite_or_none(values) -> tuple[list, int]:
    """``values`` as floats with NaN/inf replaced by None (a gap in a plotly line), and how
    many were replaced."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    bad = ~np.isfinite(arr)
    return [None if b else float(v) for v, b in zip(arr, bad)], int(bad.sum())


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
                      xaxis=dict(title="element"), yaxis=dict(title="value"), height=300, margin=_MARGIN)
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
        series: label -> per-bin values (zeros are gaps on a log axis).
        title: figure title.
        log_y: logarithmic y axis (default False).
    """
    edges = np.asarray(edges, dtype=np.float64)
    fig = go.Figure()
    for label, values in series.items():
        v = np.asarray(values, dtype=np.float64)
        if log_y:
            v = np.where(v > 0, v, np.nan)
        ys, _ = finite_or_none(v)
        fig.add_trace(go.Scatter(x=edges[:-1].tolist(), y=ys, mode="lines", line=dict(shape="hv"),
                                 name=label, meta=label))
    fig.update_layout(title=dict(text=title or "", font=dict(size=13)), height=300,
                      yaxis=dict(type="log" if log_y else "linear"), margin=_MARGIN)
    return fig


def curve_figure(x: Sequence[float], y: Sequence[float], *, marker_x: float | None = None,
                 x_title: str = "", y_title: str = "", title: str | None = None,
                 log_y: bool = False) -> "go.Figure":
    """A line ``y(x)`` with an optional vertical marker (e.g. KL divergence per candidate).

    Points where ``y`` is infinite or NaN are left out (a gap) and counted in the title, so
    a curve of KL divergences with infinite candidates still draws, with valid JSON.

    Args:
        x, y: the curve.
        marker_x: position of a vertical marker line (default: none).
        x_title, y_title, title: labels.
        log_y: logarithmic y axis (default False).
    """
    xs = [float(v) for v in np.asarray(x, dtype=np.float64).ravel()]
    ys, n_bad = finite_or_none(y)
    head = title or ""
    if n_bad:
        head += f" ({n_bad} of {len(ys)} points are infinite or undefined and not drawn)"
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines", name=y_title or "y", meta="curve", connectgaps=False))
    if marker_x is not None:
        fig.add_trace(go.Scatter(x=[marker_x, marker_x], y=[0, 1], yaxis="y2", mode="lines",
                                 name=f"{marker_x:.4g}", meta="marker",
                                 line=dict(color="black", dash="dash")))
    good = [v for v in ys if v is not None]
    yaxis = dict(title=y_title, type="log" if log_y else "linear")
    if good and not log_y:
        lo, hi = min(good), max(good)
        m = 0.05 * (hi - lo) if hi > lo else (abs(hi) * 0.1 or 1.0)
        yaxis.update(range=[lo - m, hi + m])
    fig.update_layout(title=dict(text=head, font=dict(size=13)), height=280,
                      xaxis=dict(title=x_title), yaxis=yaxis,
                      yaxis2=dict(overlaying="y", range=[0, 1], visible=False), margin=_MARGIN)
    return fig


def divergence_figure(x: Sequence[float], curves: Mapping[str, Sequence[float]], *,
                      infinite_x: Sequence[float] = (), marker_x: float | None = None,
                      marker_label: str = "chosen", x_title: str = "threshold",
                      y_title: str = "KL(P||Q)", title: str | None = None) -> "go.Figure":
    """Divergence of every candidate threshold: one line per curve (log y), the candidates whose
    divergence is infinite as ticks along the top, and the chosen threshold as a dashed line.

    Args:
        x: candidate thresholds.
        curves: label -> divergence per candidate (non-finite points are left out).
        infinite_x: thresholds whose divergence is infinite (drawn as ticks at the top, trace
            meta "infinite").
        marker_x: the chosen threshold (trace meta "marker"; restyle its ``x`` and ``name`` to
            move it, so the legend follows).
        marker_label: legend text of the marker.
    """
    xs = [float(v) for v in np.asarray(x, dtype=np.float64).ravel()]
    fig = go.Figure()
    for n, (label, values) in enumerate(curves.items()):
        ys, _ = finite_or_none(values)
        style = dict(mode="lines") if n == 0 else dict(mode="markers", marker=dict(size=3))
        fig.add_trace(go.Scatter(x=xs, y=ys, name=label, meta=label, connectgaps=False, **style))
    inf_x = [float(v) for v in np.asarray(infinite_x, dtype=np.float64).ravel()]
    if inf_x:
        fig.add_trace(go.Scatter(x=inf_x, y=[0.97] * len(inf_x), yaxis="y2", mode="markers",
                                 marker=dict(symbol="line-ns-open", size=8, color="crimson"),
                                 name=f"∞ ({len(inf_x)} candidates)", meta="infinite"))
    if marker_x is not None:
        fig.add_trace(go.Scatter(x=[marker_x, marker_x], y=[0, 1], yaxis="y2", mode="lines",
                                 name=marker_label, meta="marker", line=dict(color="black", dash="dash")))
    fig.update_layout(title=dict(text=title or "", font=dict(size=13)), height=300,
                      xaxis=dict(title=x_title), yaxis=dict(title=y_title, type="log"),
                      yaxis2=dict(overlaying="y", range=[0, 1], visible=False), margin=_MARGIN,
                      legend=dict(orientation="h", y=-0.25))
    return fig
