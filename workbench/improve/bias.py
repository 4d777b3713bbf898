"""Bias correction: remove the per-output-channel mean shift that quantization causes.

For every INT8 Conv/ConvTranspose/Gemm (and MatMul followed by an Add of a constant), the mean
of its output per channel in the Q/DQ model is compared with the FP32 model on calibration
data, and the difference is subtracted from the FP32 bias, which the exporter writes as is.
Layers are corrected level by level in graph order: one run of the Q/DQ model (biases fed as
inputs) serves every layer that does not depend on another uncorrected one, so each
correction sees the corrected layers before it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from . import adapter
from .graphops import attr, consumers, copy_model, feed_slot, fresh_name, get_const, node_by_name, set_const, topo_levels
from .layers import quantized_layers
from .runner import channel_reduce
from .segments import SegmentRunner


@dataclass
class BiasSite:
    """Where one layer's bias lives: ``node``/``slot`` (the input holding it), ``out``: the
    tensor whose per-channel mean is corrected, ``axis``: its channel axis, ``gain``: how much
    of the bias reaches ``out`` (Gemm's beta), ``value``: the current bias (per channel)."""

    layer: str
    node: str
    slot: int
    out: str
    axis: int
    gain: float
    value: np.ndarray
    shape: tuple


@dataclass
class BiasResult:
    """``model``: the FP32 model with corrected (or added) biases; ``shifts``: layer -> the
    per-channel shift removed; ``skipped``: layer -> reason."""

    model: onnx.ModelProto
    shifts: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)


def bias_site(model: onnx.ModelProto, node_name: str) -> BiasSite | str:
    """The bias of INT8 layer ``node_name`` in the FP32 ``model``, or why it has none we can use."""
    g = model.graph
    nodes = node_by_name(g)
    n = nodes[node_name]
    w = get_const(g, n.input[1])
    if n.op_type in ("Conv", "ConvTranspose"):
        cout = w.shape[0] if n.op_type == "Conv" else w.shape[1] * int(attr(n, "group", 1))
        return _site(g, node_name, n, 2, n.output[0], 1, 1.0, cout)
    if n.op_type == "Gemm":
        cout = w.shape[0] if attr(n, "transB", 0) else w.shape[1]
        beta = float(attr(n, "beta", 1.0))
        if beta == 0.0 and len(n.input) > 2 and n.input[2]:
            return "Gemm has beta=0 (its bias input is ignored)"
        return _site(g, node_name, n, 2, n.output[0], -1, beta if len(n.input) > 2 and n.input[2] else 1.0, cout)
    if n.op_type == "MatMul":
        readers = consumers(g).get(n.output[0], [])
        if len(readers) == 1 and readers[0][0].op_type == "Add":
            add, i = readers[0]
            other = add.input[1 - i]
            value = get_const(g, other)
            if value is not None and value.ndim >= 1 and value.shape[-1] == w.shape[-1] \
                    and int(np.prod(value.shape)) == w.shape[-1]:
                return BiasSite(node_name, add.name, 1 - i, add.output[0], -1, 1.0,
                                value.reshape(-1).astype(np.float32), value.shape)
            return "the Add after the MatMul has no per-channel constant"
        return "MatMul without a following bias Add (a bias cannot be added without a new node)"
    return f"{n.op_type} has no bias"


def _site(g, layer, n, slot, out, axis, gain, cout) -> BiasSite | str:
    if len(n.input) > slot and n.input[slot]:
        value = get_const(g, n.input[slot])
        if value is None:
            return "its bias is not a constant"
        if int(np.prod(value.shape)) != cout:
            return f"its bias has shape {tuple(value.shape)}, not one value per channel"
        return BiasSite(layer, n.name, slot, out, axis, gain, value.reshape(-1).astype(np.float32), value.shape)
    return BiasSite(layer, n.name, slot, out, axis, gain, np.zeros(cout, np.float32), (cout,))


def correct_bias(model: onnx.ModelProto, amax: dict, batches: list, plan: dict | None = None, *,
                 reference: onnx.ModelProto | None = None, on_layer=None) -> BiasResult:
    """Correct the biases of every INT8 weighted layer of ``model``.

    Args:
        model: the FP32 model to export (not modified; e.g. with rounded weights).
        amax: tensor -> amax to export with; plan: node -> precision (None: default plan).
        batches: calibration batches.
        reference: the FP32 model whose layer outputs are the targets (default ``model``).
        on_layer: ``on_layer(layer)`` after each layer's shift is measured (progress; it may raise
            to stop).
    """
    reference = reference or model
    qdq = adapter.build_qdq(model, amax, plan)
    result = BiasResult(copy_model(model))
    fp_tensors = {t for n in reference.graph.node for t in n.output} | {i.name for i in reference.graph.input}
    sites = []
    for layer in quantized_layers(qdq, model):
        site = bias_site(model, layer.node)
        if isinstance(site, str):
            result.skipped[layer.node] = site
        elif site.out not in fp_tensors:
            result.skipped[layer.node] = f"its output '{site.out}' is not in the FP32 model"
        else:
            sites.append(site)
    if not sites:
        return result
    fed = copy_model(qdq)
    names = {s.layer: feed_slot(fed, s.node, s.slot, s.value, f"{s.layer}__bias") for s in sites}
    values = {s.layer: s.value.copy() for s in sites}
    qrun = SegmentRunner(fed, batches, changing=[s.node for s in sites])
    frun = SegmentRunner(reference, batches)
    previous: list = []
    for level in topo_levels(qdq, [s.node for s in sites]):
        level_sites = [s for s in sites if s.node in level]
        feeds = {names[s.layer]: values[s.layer].reshape(s.shape) for s in sites}
        qrun.invalidate([s.node for s in previous])
        q_means = _means(qrun.fetch([s.out for s in level_sites], feeds), level_sites)
        f_means = _means(frun.fetch([s.out for s in level_sites]), level_sites)
        qrun.settle([s.node for s in previous])
        for s in level_sites:
            shift = q_means[s.out] - f_means[s.out]
            values[s.layer] = (values[s.layer] - shift / s.gain).astype(np.float32)
            result.shifts[s.layer] = shift.astype(np.float32)
            if on_layer is not None:
                on_layer(s.layer)
        previous = level_sites
    for s in sites:
        write_bias(result.model, s.node, s.slot, values[s.layer].reshape(s.shape), f"{s.layer}_bias")
    return result


def _means(runs: list, sites: list) -> dict:
    """Tensor -> per-channel mean over all batches (float64)."""
    sums, counts = {}, {}
    for out in runs:
        for s in sites:
            x = out[s.out]
            sums[s.out] = sums.get(s.out, 0.0) + channel_reduce(x, s.axis, "sum")
            counts[s.out] = counts.get(s.out, 0) + x.size // x.shape[s.axis]
    return {t: sums[t] / counts[t] for t in sums}


def write_bias(model: onnx.ModelProto, node_name: str, slot: int, value: np.ndarray, base: str) -> None:
    """Put ``value`` in input ``slot`` of ``node_name`` (in place): into its constant when only
    this node reads it, else (or when the node has no bias) into a new initializer."""
    g = model.graph
    node = node_by_name(g)[node_name]
    name = node.input[slot] if len(node.input) > slot else ""
    if name and len(consumers(g).get(name, [])) == 1 and get_const(g, name) is not None:
        set_const(g, name, value.astype(np.float32))
        return
    new = fresh_name(g, base)
    set_const(g, new, value.astype(np.float32))
    while len(node.input) <= slot:
        node.input.append("")
    node.input[slot] = new
