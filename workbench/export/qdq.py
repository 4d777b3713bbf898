"""Quantization parameters and Q/DQ placement (pure functions, no graph editing).

Placement (TensorRT's "Q/DQ layer placement recommendations" and ModelOpt's behaviour):

* Q/DQ goes on the *inputs* of INT8 nodes, never on their outputs: TensorRT fuses
  DQ -> Conv and propagates Q/DQ itself, and an output Q would add a requantization TensorRT
  did not ask for.
* Conv / ConvTranspose / Gemm / MatMul: every float activation input (per-tensor scale) and
  the constant weight (per output channel). The bias stays float; TensorRT quantizes it.
* Add (residual): the *residual* input only, when the other input comes straight from an
  INT8 Conv/ConvTranspose/Gemm/MatMul that feeds nothing else. TensorRT then fuses the add
  into that layer's epilogue (the conv output is never rounded to INT8), as ModelOpt does by
  leaving the non-residual input unquantized. Without such an input, both inputs are
  quantized and TensorRT runs the add in INT8.
* MaxPool / AveragePool / GlobalAveragePool, Clip, Mul, BatchNormalization (when the user
  asks for INT8): their data input.

One Q/DQ pair per tensor, shared by all its INT8 consumers (ModelOpt's ``DedicatedQDQPair``
would give each consumer its own pair). Every consumer would get the same per-tensor scale,
so the numbers are identical; TensorRT's graph optimizer and ONNX Runtime's
``EnsureUniqueDQForNodeUnit`` pass duplicate a shared DQ where a fusion needs it, and the
shared form keeps the graph (and the per-plan rebuild) smaller. Non-INT8 consumers of the
same tensor keep reading the unquantized tensor.

The CPU-deployment variant (``cpu_uint8``) follows ONNX Runtime's QDQ convention instead:
every input of an INT8 Add is quantized and the outputs of INT8 nodes are quantized too
(when a range exists), so ONNX Runtime can fuse DQ -> op -> Q groups into QLinearConv,
QLinearMatMul, QLinearAdd; Relu/Clip between an op and a Q are folded by its Relu/Clip-Quant
fusions because the uint8 zero point sits at the range's lower end (so no Q is put
between an op and a Relu/Clip that is its only reader).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..calib.amax import QMAX
from ..graph.ops import POOL_OPS, WEIGHTED_OPS


def uint8_params(amax: float, lo: float | None, hi: float | None) -> tuple[np.float32, np.uint8]:
    """Asymmetric uint8 scale and zero point for the CPU variant.

    The range is ``[max(min, -amax), min(max, amax)]`` (so a calibration method's clipping
    carries over), widened to contain 0 (zero must be exact for padding and ReLU).
    ``lo``/``hi`` None means the observed min/max is unknown: ``[-amax, amax]``.
    """
    amax = float(amax)
    lo = -amax if lo is None or not math.isfinite(lo) else max(float(lo), -amax)
    hi = amax if hi is None or not math.isfinite(hi) else min(float(hi), amax)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo <= 0:
        hi = lo + amax
    scale = np.float32((hi - lo) / 255.0)
    zp = np.uint8(np.clip(np.rint(-lo / float(scale)), 0, 255))
    return scale, zp


def weight_scales(w: np.ndarray, axis: int | None, qmax: int = QMAX) -> np.ndarray:
    """Per-channel ``max|w| / qmax`` along ``axis`` (a 0-d array when ``axis`` is None),
    computed as ``float32(float64(max|w|) / qmax)``; all-zero channels get scale 1.
    ``qmax`` is 127 (TensorRT), or 63 for CPU kernels that saturate (7-bit weights)."""
    a = np.abs(np.asarray(w, dtype=np.float32))
    if axis is None:
        peak = np.asarray(a.max() if a.size else 0.0, dtype=np.float64)
    else:
        others = tuple(i for i in range(a.ndim) if i != axis)
        peak = a.max(axis=others).astype(np.float64)
    scale = (peak / float(qmax)).astype(np.float32)
    return np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)


def quantize_weight(w: np.ndarray, axis: int | None, qmax: int = QMAX,
                    scale: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric INT8 weights: (int8 values in [-qmax, qmax], float32 scales along ``axis``).
    ``scale``: scales to keep instead of ``max|w| / qmax`` (e.g. a Q/DQ model's own,
    :mod:`workbench.imported`), broadcast along ``axis``."""
    w = np.asarray(w, dtype=np.float32)
    if scale is None:
        scale = weight_scales(w, axis, qmax)
    else:
        shape = () if axis is None else (w.shape[axis],)
        scale = np.broadcast_to(np.asarray(scale, dtype=np.float32), shape).astype(np.float32)
    if axis is None:
        s = scale
    else:
        shape = [1] * w.ndim
        shape[axis] = -1
        s = scale.reshape(shape)
    q = np.clip(np.rint(w / s), -qmax, qmax).astype(np.int8)
    return q, scale


@dataclass
class Placement:
    """Where Q/DQ goes. ``activations``: tensor -> list of (node, input index) to rewire to
    its DQ output. ``weights``: (node, input index) -> (weight tensor, channel axis or None).
    ``skipped_existing``: tensors left alone because they are already quantized."""

    activations: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)
    skipped_existing: list = field(default_factory=list)


def place_qdq(g, int8_nodes: list, variant: str, has_range) -> Placement:
    """Decide the Q/DQ placement for the INT8 nodes of a plan.

    Args:
        g: the graph facts (:class:`workbench.graph.GraphFacts`, possibly of an opset-upgraded copy).
        int8_nodes: names of the nodes the (effective) plan runs in INT8.
        variant: "trt", "ort" or "cpu_uint8" (see the module docstring).
        has_range: callable tensor -> bool, whether an amax exists (for cpu_uint8 outputs).
    """
    int8 = set(int8_nodes)
    out = Placement()
    cpu = variant == "cpu_uint8"

    def want(t: str, node: str, i: int) -> None:
        if g.producers.get(t) in g.dq_nodes:  # already quantized by the model itself
            if t not in out.skipped_existing:
                out.skipped_existing.append(t)
            return
        out.activations.setdefault(t, [])
        if (node, i) not in out.activations[t]:
            out.activations[t].append((node, i))

    for name in int8_nodes:
        target = g.targets.get(name)
        if target is None:
            continue
        node = g.node(name)
        skip = None
        if target.op_type == "Add" and not cpu:
            skip = g.fused_add_input(name, int8)
        for i, t in enumerate(node.input):
            if t and t in target.activation_inputs and i != skip:
                if target.op_type in ("Clip", "BatchNormalization") and i != 0:
                    continue
                want(t, name, i)
        if target.weight_input is not None and len(node.input) > 1 and \
                node.input[1] == target.weight_input:
            out.weights[(name, 1)] = (target.weight_input, target.weight_axis)
    if cpu:  # ONNX Runtime fuses DQ -> op -> Q groups: quantize INT8 outputs as well
        for name in int8_nodes:
            target = g.targets.get(name)
            if target is None or target.op_type not in WEIGHTED_OPS + POOL_OPS + ("Add",):
                continue
            for y in g.node(name).output:
                if not y or y in g.graph_outputs or not has_range(y):
                    continue
                readers = g.consumers.get(y, ())
                if len(readers) == 1 and g.op_types[readers[0]] in ("Relu", "Clip"):
                    # Conv -> Relu/Clip -> Q: ORT folds the activation into the next Q (whose
                    # range is the clipped one); a Q here would round on a coarser grid first.
                    continue
                for consumer, i in g.consumer_slots.get(y, ()):
                    want(y, consumer, i)
    return out
