"""Per-channel scaling between a producer and its consumers, the FP32 function kept.

A tensor X whose channel j is produced by a row of a producer's parameters (a Conv's output
channel, a Gemm/MatMul output column plus its bias, LayerNormalization's scale and bias) and
read only by weighted consumers (Conv, MatMul, Gemm) can be divided by s_j at the producer and
multiplied by s_j into the consumers' input-channel weights: ``f(X / s) (s W) = f(X) W``. A Relu
between them is positive-homogeneous, so it commutes with any s > 0; a Clip(0, 6) does not
(relu6(x / s) * s clips at 6 s), so it is skipped unless the caller accepts a changed FP32
model. Cross-layer equalization and SmoothQuant are this one transformation with different s.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from .graphops import attr, consumers, copy_model, get_const, opset, set_const
from .runner import ExactRunner, channel_reduce

#: Ops between producer and consumers that commute with a positive per-channel scale.
HOMOGENEOUS = ("Relu",)


@dataclass
class Pair:
    """``producer`` node name and kind, ``bias_add`` (MatMul's bias Add, if any), ``act`` (the
    Relu/Clip between, if any), ``tensor``: X, ``axis``: its channel axis, ``consumers``: node
    names reading X, ``changed``: tensors whose values the scaling changes, ``changes_fp32``."""

    producer: str
    kind: str
    tensor: str
    axis: int
    consumers: list
    bias_add: str | None = None
    act: str | None = None
    changed: list = field(default_factory=list)
    changes_fp32: bool = False


def _clip_bounds(g, node, version: int):
    """Clip's (min, max) as floats or None (attributes before opset 11, inputs from 11)."""
    if version < 11:
        return attr(node, "min", None), attr(node, "max", None)
    lo = get_const(g, node.input[1]) if len(node.input) > 1 and node.input[1] else None
    hi = get_const(g, node.input[2]) if len(node.input) > 2 and node.input[2] else None
    return (None if lo is None else float(lo)), (None if hi is None else float(hi))


def _weight(g, node, cons) -> np.ndarray | None:
    """A constant weight on input 1 read only by ``node``."""
    if len(node.input) < 2 or len(cons.get(node.input[1], [])) != 1:
        return None
    return get_const(g, node.input[1])


def _consumer_ok(g, node, x, channels, cons) -> str | None:
    w = _weight(g, node, cons)
    if node.op_type not in ("Conv", "MatMul", "Gemm") or w is None or node.input[0] != x:
        return f"'{node.name}' ({node.op_type}) reads it but is not a weighted layer taking it as data input"
    if node.op_type == "Conv":
        group = int(attr(node, "group", 1))
        if not (group == 1 and w.shape[1] == channels) and not (group == channels and w.shape[1] == 1):
            return f"'{node.name}' is a grouped Conv (only dense and depthwise are handled)"
    elif node.op_type == "Gemm" and attr(node, "transA", 0):
        return f"'{node.name}' is a Gemm with transA"
    elif node.op_type == "MatMul" and w.ndim != 2:
        return f"'{node.name}' has a weight of rank {w.ndim}"
    return None


def find_pairs(model: onnx.ModelProto, producer_ops, consumer_ops, *, clip: str = "skip"):
    """(pairs, skipped) for producers of ``producer_ops`` whose output (through a Relu, or a
    Clip when ``clip="apply"``) is read only by consumers of ``consumer_ops``.
    ``skipped`` maps a producer name to the reason it was not paired."""
    g = model.graph
    version = opset(model)
    cons = consumers(g)
    graph_out = {o.name for o in g.output}
    pairs, skipped = [], {}
    for node in g.node:
        if node.op_type not in producer_ops:
            continue
        pair = _pair_of(g, node, cons, graph_out, consumer_ops, clip, version)
        if isinstance(pair, Pair):
            pairs.append(pair)
        elif pair:
            skipped[node.name] = pair
    return pairs, skipped


def _pair_of(g, node, cons, graph_out, consumer_ops, clip, version):
    kind, chain, bias_add = node.op_type, [node.output[0]], None
    if kind == "LayerNormalization":
        scale = get_const(g, node.input[1]) if len(node.input) > 1 else None
        if scale is None or scale.ndim != 1 or int(attr(node, "axis", -1)) != -1:
            return "LayerNormalization without a constant 1-D scale over the last axis"
        channels, axis = scale.shape[0], -1
    else:
        w = _weight(g, node, cons)
        if w is None:
            return None  # not a weighted producer: nothing to say
        if kind == "Conv":
            channels, axis = w.shape[0], 1
        elif kind == "Gemm":
            channels, axis = (w.shape[0] if attr(node, "transB", 0) else w.shape[1]), -1
        else:
            if w.ndim != 2:
                return None
            channels, axis = w.shape[1], -1
    readers = cons.get(chain[-1], [])
    if kind == "MatMul" and len(readers) == 1 and readers[0][0].op_type == "Add":
        add, i = readers[0]
        b = get_const(g, add.input[1 - i])
        if b is not None and int(np.prod(b.shape)) == channels and b.shape[-1] == channels:
            bias_add = add.name
            chain.append(add.output[0])
            readers = cons.get(chain[-1], [])
    act, changes = None, False
    if len(readers) == 1 and readers[0][0].op_type in ("Relu", "Clip"):
        a = readers[0][0]
        if a.op_type == "Clip":
            lo, hi = _clip_bounds(g, a, version)
            if lo != 0.0 or hi is not None:
                if clip != "apply":
                    return (f"'{a.name}' Clip({lo}, {hi}) follows it: scaling through it changes the FP32 "
                            "function (relu6(x/s)*s clips at 6s); skipped")
                changes = True
        act = a.name
        chain.append(a.output[0])
        readers = cons.get(chain[-1], [])
    x = chain[-1]
    if not readers or any(t in graph_out for t in chain):
        return None
    if any(r.op_type not in consumer_ops for r, _ in readers):
        other = next(r for r, _ in readers if r.op_type not in consumer_ops)
        return f"its output is read by '{other.name}' ({other.op_type}), not only by weighted layers"
    for r, _ in readers:
        why = _consumer_ok(g, r, x, channels, cons)
        if why:
            return why
    return Pair(node.name, kind, x, axis, [r.name for r, _ in readers], bias_add, act, chain, changes)


def channel_ranges(model: onnx.ModelProto, pairs: list, batches: list) -> dict:
    """Tensor -> per-channel max|x| over ``batches`` for every pair's tensor."""
    run = ExactRunner(model, extra=[p.tensor for p in pairs])
    out: dict = {}
    for batch in batches:
        vals = run.run(batch, [p.tensor for p in pairs])
        for p in pairs:
            r = channel_reduce(vals[p.tensor], p.axis)
            out[p.tensor] = np.maximum(out.get(p.tensor, r), r)
    return out


def consumer_ranges(model: onnx.ModelProto, pair: Pair) -> np.ndarray:
    """Per input channel of X, max |w| over all consumers' weights."""
    g = model.graph
    nodes = {n.name: n for n in g.node}
    best = None
    for name in pair.consumers:
        n = nodes[name]
        w = np.abs(get_const(g, n.input[1]).astype(np.float64))
        r = _in_channel(n, w, "max")
        best = r if best is None else np.maximum(best, r)
    return best


def _in_channel(n, w, how="max"):
    if n.op_type == "Conv":
        if int(attr(n, "group", 1)) > 1:  # depthwise: input channel j = output channel j
            return w.reshape(w.shape[0], -1).max(axis=1)
        return w.transpose(1, 0, 2, 3).reshape(w.shape[1], -1).max(axis=1) if w.ndim == 4 \
            else w.transpose(1, 0, 2).reshape(w.shape[1], -1).max(axis=1)
    if n.op_type == "Gemm" and attr(n, "transB", 0):
        return w.max(axis=0)
    return w.max(axis=1)


def producer_ranges(model: onnx.ModelProto, pair: Pair) -> np.ndarray:
    """Per output channel, max |w| of the producer's weights (a data-free stand-in for X's range)."""
    g = model.graph
    n = next(x for x in g.node if x.name == pair.producer)
    if pair.kind == "LayerNormalization":
        return np.abs(get_const(g, n.input[1]).astype(np.float64)).reshape(-1)
    w = np.abs(get_const(g, n.input[1]).astype(np.float64))
    if pair.kind == "Conv":
        return w.reshape(w.shape[0], -1).max(axis=1)
    if pair.kind == "Gemm" and attr(n, "transB", 0):
        return w.max(axis=1)
    return w.max(axis=0)


def apply_scales(model: onnx.ModelProto, scales: dict) -> onnx.ModelProto:
    """A copy of ``model`` with each pair's X divided by s at the producer and s multiplied into
    the consumers. ``scales``: Pair -> s (positive, one per channel), applied in order."""
    out = copy_model(model)
    g = out.graph
    nodes = {n.name: n for n in g.node}
    for pair, s in scales:
        s = np.asarray(s, dtype=np.float64)
        p = nodes[pair.producer]
        _scale_param(g, p.input[1], _out_axis(p, pair.kind), 1.0 / s)
        if pair.kind in ("Conv", "Gemm", "LayerNormalization") and len(p.input) > 2 and p.input[2]:
            _scale_param(g, p.input[2], -1, 1.0 / s)
        if pair.bias_add:
            add = nodes[pair.bias_add]
            i = 0 if get_const(g, add.input[0]) is not None else 1
            _scale_param(g, add.input[i], -1, 1.0 / s)
        for name in pair.consumers:
            c = nodes[name]
            _scale_param(g, c.input[1], _in_axis(c), s)
    return out


def _out_axis(n, kind) -> int:
    if kind == "Conv":
        return 0
    if kind == "Gemm":
        return 0 if attr(n, "transB", 0) else 1
    return -1  # MatMul columns, LayerNormalization scale


def _in_axis(n) -> int:
    if n.op_type == "Conv":
        return 0 if int(attr(n, "group", 1)) > 1 else 1
    if n.op_type == "Gemm" and attr(n, "transB", 0):
        return 1
    return 0  # MatMul / Gemm rows


def _scale_param(g, name, axis, s) -> None:
    """Multiply constant ``name`` by ``s`` along ``axis`` (in place)."""
    v = get_const(g, name)
    shape = [1] * v.ndim
    shape[axis] = -1
    set_const(g, name, (v * s.reshape(shape)).astype(v.dtype))
