"""Cross-layer equalization (depthwise-separable blocks) and SmoothQuant-style smoothing.

Both rescale channels between a producer and its consumers (:mod:`workbench.improve.scaling`)
with ``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` (X: the tensor between them, W_j: the
consumers' weights of input channel j), so that after scaling the per-tensor INT8 range of X
fits all its channels.

* Equalization: Conv -> [Relu] -> Conv. The workbench quantizes weights per output channel, so
  a depthwise consumer's weights lose nothing by any s (each output channel has one input
  channel): alpha = 1 there, i.e. every channel of X gets the same range. For a dense
  consumer, alpha = 1/2 balances X against the consumer's input-channel weights (classic CLE
  balances weights only; with per-channel weights, X's per-tensor range is what hurts).
  Without data, X's range is stood in for by the producer's weight rows (classic CLE).
* Smoothing: LayerNormalization / MatMul(+bias Add) / Gemm -> MatMul/Gemm, alpha given
  (chosen on held-out data by the driver).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from .scaling import apply_scales, channel_ranges, consumer_ranges, find_pairs, producer_ranges

#: Scale factors are kept within [1/CLAMP, CLAMP] (guards dead or constant channels).
CLAMP = 1e4


@dataclass
class ScalingResult:
    """``model``: the rescaled FP32 model; ``pairs``: producer -> consumers touched;
    ``changed``: tensors whose values changed (recalibrate them); ``skipped``: producer ->
    reason; ``changes_fp32``: pairs scaled through a Clip (FP32 function changed)."""

    model: onnx.ModelProto
    pairs: dict = field(default_factory=dict)
    changed: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)
    changes_fp32: list = field(default_factory=list)


def smoothing_factors(x_range: np.ndarray, w_range: np.ndarray, alpha: float) -> np.ndarray:
    """SmoothQuant's ``s = max|X|^alpha / max|W|^(1-alpha)`` per channel, 1 where either range is
    0, normalised to geometric mean 1 and clamped to [1/CLAMP, CLAMP]."""
    x = np.asarray(x_range, np.float64)
    w = np.asarray(w_range, np.float64)
    ok = (x > 0) & (w > 0)
    s = np.ones_like(x)
    s[ok] = x[ok] ** alpha / w[ok] ** (1.0 - alpha)
    if ok.any():
        s[ok] /= np.exp(np.mean(np.log(s[ok])))
    return np.clip(s, 1.0 / CLAMP, CLAMP)


def _scale_pairs(model, pairs, skipped, batches, alpha_of) -> ScalingResult:
    ranges = channel_ranges(model, pairs, batches) if batches else {}
    todo = []
    for p in pairs:
        x = ranges.get(p.tensor)
        if x is None:
            if p.kind == "LayerNormalization":
                skipped[p.producer] = "needs calibration data (its output range is not in its weights)"
                continue
            x = producer_ranges(model, p)
        todo.append((p, smoothing_factors(x, consumer_ranges(model, p), alpha_of(model, p))))
    out = ScalingResult(apply_scales(model, todo) if todo else model, skipped=skipped)
    for p, _ in todo:
        out.pairs[p.producer] = list(p.consumers)
        out.changed += [t for t in p.changed if t not in out.changed]
        if p.changes_fp32:
            out.changes_fp32.append(p.producer)
    return out


def equalize(model: onnx.ModelProto, batches: list | None = None, *, clip: str = "skip") -> ScalingResult:
    """Cross-layer equalization of Conv -> [Relu] -> Conv pairs (dense or depthwise consumers).

    Args:
        model: the FP32 model (not modified).
        batches: calibration batches for X's per-channel ranges (None: the producer's weight
            ranges stand in, as in classic CLE).
        clip: "skip" (default): pairs with a Clip/Relu6 between are left alone, with a reason;
            "apply": scale through it too (the FP32 function changes where data reach the
            clip; the pair is listed in ``changes_fp32`` and the caller must measure it).
    """
    pairs, skipped = find_pairs(model, ("Conv",), ("Conv",), clip=clip)

    def alpha(m, p):
        dw = all(_is_depthwise(m, c) for c in p.consumers)
        return 1.0 if dw else 0.5

    return _scale_pairs(model, pairs, skipped, batches, alpha)


def smooth(model: onnx.ModelProto, batches: list, alpha: float = 0.5) -> ScalingResult:
    """SmoothQuant-style smoothing of MatMul/Gemm inputs produced by LayerNormalization,
    MatMul (+ bias Add) or Gemm: ``1/s`` folded into the producer, ``s`` into the weight rows.

    Args:
        model: the FP32 model (not modified). batches: calibration batches (X's ranges).
        alpha: migration strength in [0, 1] (0.5 is SmoothQuant's default).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    pairs, skipped = find_pairs(model, ("LayerNormalization", "MatMul", "Gemm"), ("MatMul", "Gemm"))
    return _scale_pairs(model, pairs, skipped, batches, lambda m, p: alpha)


def _is_depthwise(model, name) -> bool:
    from .graphops import attr

    node = next(n for n in model.graph.node if n.name == name)
    return node.op_type == "Conv" and int(attr(node, "group", 1)) > 1
