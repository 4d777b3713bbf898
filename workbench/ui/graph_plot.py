"""The model graph as a plotly figure, from a :class:`~workbench.ui.graph_layout.GraphLayout`.

Traces (by ``meta``): ``"edges"`` (one line trace, gaps between edges), ``"qdq"`` (a diamond
on each edge whose tensor gets a Q/DQ pair, next to the node that reads it), ``"nodes"``
(one marker per visible node; ``customdata`` is the node name, so a click can select it) and
``"selected"`` (a ring around the selected node). Layers run left to right; a range slider
under the plot gives the overview of long graphs.
"""
from __future__ import annotations

import html
import math
from typing import Mapping

from .._optional import require
from .style import PRECISION_COLORS, fmt_num

go = require("plotly.graph_objects", "plots", "ui", package="plotly")

WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
HEIGHT = 270
#: colour modes of the graph view: label -> (title of the colour bar, higher is better)
COLOR_MODES = {
    "precision": ("precision", None),
    "sqnr": ("per-layer SQNR of the last build [dB]", True),
    "sensitivity": ("output SQNR with only this node INT8 [dB]", True),
    "range": ("output dB its input's threshold costs", False),
}


def qdq_marks(layout, qdq_inputs: Mapping[str, list], producer: Mapping[str, str]) -> list:
    """``(x, y, text)`` of a Q/DQ mark per quantized input: on the drawn edge from the tensor's
    producer to the node that reads it (just left of the node when the
    producer is a graph input or hidden): half-way along the last stretch of the edge."""
    last_leg = {}
    for u, v, pts in layout.edges:
        last_leg[(u, v)] = (pts[-2], pts[-1])
    marks = []
    for node, tensors in qdq_inputs.items():
        if node not in layout.x:
            continue
        for t in tensors:
            leg = last_leg.get((producer.get(t), node))
            if leg is None:
                (x0, y0), (x1, y1) = (layout.x[node] - 0.4, layout.y[node]), (layout.x[node], layout.y[node])
            else:
                (x0, y0), (x1, y1) = leg
            marks.append((x0 + 0.5 * (x1 - x0), y0 + 0.5 * (y1 - y0), f"Q/DQ on {t} → {node}"))
    return marks


def graph_figure(
    layout,
    *,
    op_types: Mapping[str, str],
    precisions: Mapping[str, str] | None = None,
    values: Mapping[str, float] | None = None,
    color_by: str = "precision",
    qdq: list | None = None,
    selected: str | None = None,
    details: Mapping[str, str] | None = None,
    window: int = 48,
    labels: bool | None = None,
    height: int = HEIGHT,
    interactive: bool = True,
) -> "go.Figure":
    """Draw a laid-out model graph.

    Args:
        layout: a :class:`~workbench.ui.graph_layout.GraphLayout`.
        op_types: node -> op type (hover text, symbol: squares for weighted ops).
        precisions: node -> "INT8" / "FP16" / "FP32" (colour in "precision" mode, hover).
        values: node -> number for the "sqnr" / "sensitivity" modes (missing: grey).
        color_by: a key of :data:`COLOR_MODES`.
        qdq: ``(x, y, text)`` marks from :func:`qdq_marks` (default: none).
        selected: node drawn with a ring, and the initial view centred on it.
        details: node -> extra hover text (e.g. "3 hidden nodes").
        window: layers shown at first (the range slider pans; default 60).
        labels: print the op type above the landmark nodes, those of rare op types (default True).
        interactive: False for static reports (no click hint).
    """
    nodes = list(layout.nodes)
    precisions = precisions or {}
    xs = [layout.x[n] for n in nodes]
    ys = [layout.y[n] for n in nodes]
    ex, ey = [], []
    for _, _, pts in layout.edges:
        for px, py in pts:
            ex.append(px)
            ey.append(py)
        ex.append(None)
        ey.append(None)
    traces = [dict(type="scatter", x=ex, y=ey, mode="lines", meta="edges", hoverinfo="skip", showlegend=False,
                   line=dict(color="#b8b8b8", width=1))]
    qdq = qdq or []
    traces.append(dict(type="scatter", x=[m[0] for m in qdq], y=[m[1] for m in qdq], text=[m[2] for m in qdq],
                       mode="markers", meta="qdq", name="Q/DQ pair",
                       marker=dict(symbol="diamond", size=6, color="#08306b", line=dict(width=0)),
                       hovertemplate="%{text}<extra></extra>"))
    title, better = COLOR_MODES.get(color_by, COLOR_MODES["precision"])
    hover = []
    for n in nodes:
        parts = [f"<b>{html.escape(n)}</b>", html.escape(op_types.get(n, "?"))]
        if n in precisions:
            parts.append(str(precisions[n]))
        if values is not None and n in values and values[n] is not None:
            parts.append(f"{title}: {fmt_num(values[n], 3)}")
        if details and details.get(n):
            parts.append(html.escape(details[n]))
        hover.append("<br>".join(parts))
    symbols = ["square" if op_types.get(n) in WEIGHTED else "circle" for n in nodes]
    marker = dict(size=11, symbol=symbols, line=dict(width=1, color="#333"))
    if color_by == "precision" or values is None:
        marker["color"] = [PRECISION_COLORS.get(str(precisions.get(n, "FP32")).upper(), "#9a9a9a") for n in nodes]
    else:
        vals = [values.get(n) for n in nodes]
        good = [v for v in vals if v is not None and math.isfinite(v)]
        lo, hi = (min(good), max(good)) if good else (0.0, 1.0)
        scale = "RdYlGn" if better else "RdYlGn_r"
        marker["color"] = [_scale_color(scale, v, lo, hi) for v in vals]
    # labels only for the landmarks (rare op types: Add, pooling, Gemm, ...), so they never overlap
    counts: dict = {}
    for n in nodes:
        counts[op_types.get(n, "")] = counts.get(op_types.get(n, ""), 0) + 1
    show_labels = labels if labels is not None else True
    landmark = {op for op, c in counts.items() if c <= max(2, 0.12 * len(nodes))}
    text = [_short(op_types.get(n, "")) if op_types.get(n, "") in landmark else "" for n in nodes]
    traces.append(dict(
        type="scatter", x=xs, y=ys, customdata=nodes, mode="markers+text" if show_labels else "markers", meta="nodes",
        text=text if show_labels else None,
        # neighbouring layers' labels alternate above and below, so they do not run into each other
        textposition=[("top center" if layout.layer[n] % 2 == 0 else "bottom center") for n in nodes],
        textfont=dict(size=9, color="#555"), marker=marker, showlegend=False,
        hovertext=hover, hovertemplate="%{hovertext}<extra></extra>"))
    sel = [n for n in nodes if n == selected]
    traces.append(dict(type="scatter", x=[layout.x[n] for n in sel], y=[layout.y[n] for n in sel],
                       mode="markers", meta="selected", hoverinfo="skip", showlegend=False,
                       marker=dict(size=22, symbol="circle-open", color="#d62728", line=dict(width=3))))
    if color_by != "precision" and values:
        good = [v for v in values.values() if v is not None and math.isfinite(v)]
        if good:  # the colour bar (the nodes carry plain colours so missing values can be grey)
            traces.append(dict(type="scatter", x=[None], y=[None], mode="markers", meta="colorbar", showlegend=False,
                                     hoverinfo="skip", marker=dict(
                                         colorscale="RdYlGn" if better else "RdYlGn_r", cmin=min(good),
                                         cmax=max(good), color=[min(good)], showscale=True,
                                         colorbar=dict(title=dict(text=title, side="right"), thickness=12, len=0.9))))
    if color_by == "precision" or values is None:
        for p in ("INT8", "FP16", "FP32"):  # legend of the node colours
            traces.append(dict(type="scatter", x=[None], y=[None], mode="markers", name=p, meta="legend",
                               hoverinfo="skip",
                                     marker=dict(size=10, color=PRECISION_COLORS[p], line=dict(width=1, color="#333"))))
    head = "" if not interactive else " (click a node to select it)"
    layout_ = dict(
        title=dict(text=f"{len(nodes)} nodes in {layout.n_layers} layers, colour = {title}{head}", font=dict(size=12),
                   x=0, xanchor="left", xref="paper"),
        # the axis stays "visible" with nothing drawn: plotly's range slider fails on a hidden axis
        xaxis=dict(showticklabels=False, showgrid=False, zeroline=False, showline=False, ticks="",
                   title=dict(text=""), range=list(graph_window(layout, selected, window)), autorange=False,
                   rangeslider=dict(visible=layout.n_layers > window, thickness=0.12)),
        yaxis=dict(visible=False, autorange=True, fixedrange=True),
        dragmode="pan", hovermode="closest", clickmode="event", showlegend=True,
        legend=dict(orientation="h", x=0, xanchor="left", y=1.0, yanchor="bottom", font=dict(size=11)),
        margin=dict(l=10, r=10, t=58, b=10), height=height, autosize=True, plot_bgcolor="white",
    )
    return go.Figure(data=traces, layout=layout_)


def graph_window(layout, selected: str | None, window: int) -> tuple:
    """The x-range showing ``window`` layers, centred on ``selected`` when given."""
    last = max(layout.n_layers - 1, 0)
    if layout.n_layers <= window:
        return -0.8, last + 0.8
    centre = layout.x.get(selected, window / 2) if selected else window / 2
    lo = min(max(centre - window / 2, -0.8), last + 0.8 - window)
    return lo, lo + window


#: colour of a node without a value (no build, not ranked)
MISSING_COLOR = "#d0d0d0"


def _scale_color(scale: str, v, lo: float, hi: float) -> str:
    """The colour of ``v`` on ``scale`` between ``lo`` and ``hi`` (grey when missing)."""
    if v is None or not math.isfinite(v):
        return MISSING_COLOR
    from plotly.colors import sample_colorscale

    t = 0.5 if hi <= lo else (v - lo) / (hi - lo)
    return sample_colorscale(scale, [min(max(t, 0.0), 1.0)])[0]


def _short(op: str) -> str:
    return {"Conv": "Conv", "Clip": "Clip", "GlobalAveragePool": "GAP", "ReduceMean": "Mean",
            "BatchNormalization": "BN", "LayerNormalization": "LN", "MatMul": "MM", "Softmax": "SM",
            "Reshape": "Rsh", "Transpose": "T"}.get(op, op[:5])
