"""Weight rounding: per layer, choose floor or ceil of ``w / scale`` for every INT8 weight so
that the layer's output on calibration inputs moves least (docs/IMPROVE.md says why this and
not AdaRound).

For one layer with quantized input rows ``Xq`` (what the Q/DQ model feeds it, with the layers
before it already rounded) and FP32 input rows ``Xf``, the error of the weight matrix
``Wq = Q * s`` is ``||Xq Wq - Xf W||^2 + lam ||Wq - W||^2``, a quadratic in ``Q`` whose
Hessian ``Xq^T Xq`` is shared by every output channel of a group. Starting from
round-to-nearest, coordinate descent flips single weights between floor and ceil while that
lowers the error (exact change per flip from the kept gradient), a few sweeps. Scales are
never touched and each channel's largest weight stays at +-127, so the exporter recomputes the
very same scales from the written weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx

from . import adapter
from .graphops import copy_model, feed_slot, get_const, node_by_name, set_const, topo_levels
from .layers import patches, quantized_layers, sample_positions, supported, weight_from_matrix, weight_matrix
from .segments import SegmentRunner

#: Default CPU budget knobs: rows of each layer's input matrix kept, coordinate-descent sweeps.
MAX_ROWS = 1024
SWEEPS = 3


@dataclass
class LayerRounding:
    """One layer's result: weight SQNR (dB, FP32 weight vs dequantized) and the layer's output
    SQNR on the sampled calibration rows, both for round-to-nearest and the chosen rounding,
    and how many weights were flipped."""

    node: str
    weight_sqnr_nearest: float
    weight_sqnr: float
    output_sqnr_nearest: float
    output_sqnr: float
    flipped: int


@dataclass
class RoundingResult:
    """``model``: the FP32 model whose weights are the chosen INT8 grid values (export it with the
    same ranges and plan); ``layers``: per-layer results; ``skipped``: node -> reason."""

    model: onnx.ModelProto
    layers: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)


#: Weights visited together: flips inside a block update only the block's gradient rows, the
#: rest of the gradient follows with one matrix product per block (same result, BLAS speed).
BLOCK = 64


def solve_rounding(xq: np.ndarray, xf: np.ndarray, w: np.ndarray, s: np.ndarray, q0: np.ndarray,
                   *, sweeps: int = SWEEPS, damping: float = 0.01, block: int = BLOCK) -> np.ndarray:
    """Choose Q in {floor, ceil}(w/s) per weight (clipped to [-127, 127]) minimising the output error.

    Args:
        xq, xf: (G, R, K) quantized and FP32 input rows per group; the solve runs in their dtype
            (float32 from :func:`round_weights`: the flips are decided on changes far above its
            rounding error; float64 for exact checks).
        w: (G, K, C) FP32 weights; s: (G, 1, C) per-channel scales; q0: (G, K, C) nearest rounding.
        sweeps: coordinate-descent passes over K (stops early when nothing flips).
        damping: ``lam`` as a fraction of the mean diagonal of ``Xq^T Xq`` (keeps the search
            from fitting noise when there are few rows).
        block: weights per block (see :data:`BLOCK`); the visiting order and the decisions are
            those of plain coordinate descent over K.
    Returns Q (G, K, C) int64; the weight with the largest |q| of each channel keeps q0.
    """
    dt = np.float32 if xq.dtype == np.float32 else np.float64
    qmax = adapter.QMAX
    w, s = np.asarray(w, dt), np.asarray(s, dt)
    ratio = w / s
    lo = np.clip(np.floor(ratio), -qmax, qmax)
    hi = np.clip(np.ceil(ratio), -qmax, qmax)
    q = q0.astype(dt).copy()
    fixed = np.zeros(q.shape, dtype=bool)
    peak = np.abs(q0).reshape(q.shape[0], -1, q.shape[2]).argmax(axis=1)  # (G, C)
    gi, ci = np.meshgrid(np.arange(q.shape[0]), np.arange(q.shape[2]), indexing="ij")
    fixed[gi, peak, ci] = True
    xq, xf = np.asarray(xq, dt), np.asarray(xf, dt)
    xq_t = xq.transpose(0, 2, 1)
    hess = xq_t @ xq  # batched BLAS (einsum would not use it)
    g, k, c = w.shape
    lam = damping * np.einsum("gkk->g", hess)[:, None, None] / max(k, 1)
    hess = hess + lam * np.eye(k, dtype=dt)[None]
    target = (xq_t @ (xf @ w) if c < k else (xq_t @ xf) @ w) + lam * w
    grad = hess @ (q * s) - target  # half the gradient of the error w.r.t. Wq
    diag = np.einsum("gkk->gk", hess)[:, :, None]
    rel = 1e-12 if dt == np.float64 else 1e-5
    tol = rel * float(np.abs(target).max() or 1.0) * float(np.abs(s).max())
    for _ in range(sweeps):
        flips = 0
        for b0 in range(0, k, block):
            b1 = min(k, b0 + block)
            gb = grad[:, b0:b1, :].copy()  # the block's gradient rows, kept exact inside the block
            moved = np.zeros((g, b1 - b0, c), dt)
            j = b0
            while j < b1:  # the next weight (in order) where some channel flips, then on from there
                cur = q[:, j:b1, :]
                alt = np.where(cur == lo[:, j:b1, :], hi[:, j:b1, :], lo[:, j:b1, :])
                delta = (alt - cur) * s
                change = 2.0 * delta * gb[:, j - b0:, :] + delta * delta * diag[:, j:b1]
                flip = (change < -tol) & (alt != cur) & ~fixed[:, j:b1, :]
                rows = flip.any(axis=(0, 2))
                if not rows.any():
                    break
                i = int(np.argmax(rows))
                jj = j + i
                d = np.where(flip[:, i, :], delta[:, i, :], 0.0).astype(dt)  # (G, C)
                q[:, jj, :] = np.where(flip[:, i, :], alt[:, i, :], cur[:, i, :])
                flips += int(flip[:, i, :].sum())
                moved[:, jj - b0, :] = d
                gb += hess[:, b0:b1, jj][:, :, None] * d[:, None, :]
                j = jj + 1
            if moved.any():
                grad += hess[:, :, b0:b1] @ moved
        if not flips:
            break
        grad = hess @ (q * s) - target  # afresh each sweep: no drift from the rank-one updates
    return q.astype(np.int64)


def round_weights(model: onnx.ModelProto, amax: dict, batches: list, plan: dict | None = None, *,
                  reference: onnx.ModelProto | None = None, max_rows: int = MAX_ROWS,
                  sweeps: int = SWEEPS, damping: float = 0.01, seed: int = 0, on_layer=None) -> RoundingResult:
    """Choose the rounding of every INT8 weight of ``model`` layer by layer, in graph order.

    Args:
        model: the FP32 model to export (not modified).
        amax: tensor -> amax of the ranges to export with; plan: node -> "int8"/"fp16"/"fp32"
            (None: the workbench's default plan).
        batches: calibration batches (input name -> array).
        reference: the FP32 model whose layer inputs are the targets (default ``model``).
        max_rows: input-matrix rows kept per layer (sampled over all batches; the CPU budget).
        sweeps, damping: see :func:`solve_rounding`. seed: the row sample.
        on_layer: ``on_layer(node)`` after each layer is solved (progress; it may raise to stop).
    """
    reference = reference or model
    qdq = adapter.build_qdq(model, amax, plan)
    result = RoundingResult(copy_model(model))
    fp_nodes = node_by_name(reference.graph)
    layers = []
    for layer in quantized_layers(qdq, reference):
        w = get_const(reference.graph, layer.weight)
        why = "its weight is shared with another node" if layer.shared else supported(fp_nodes[layer.node], w)
        if why:
            result.skipped[layer.node] = why
        else:
            layers.append((layer, w))
    if not layers:
        return result
    fed = copy_model(qdq)
    feeds = {}
    for layer, _ in layers:
        feeds[layer.node] = feed_slot(fed, layer.dq, 0, layer.q, f"{layer.weight}__rounded")
    qrun = SegmentRunner(fed, batches, changing=[lay.node for lay, _ in layers])
    frun = SegmentRunner(reference, batches)
    current = {layer.node: layer.q.copy() for layer, _ in layers}
    by_name = {layer.node: (layer, w) for layer, w in layers}
    rng = np.random.default_rng(seed)
    previous: list = []
    for level in topo_levels(qdq, [lay.node for lay, _ in layers]):
        feed_values = {feeds[n]: current[n] for n in feeds}
        qrun.invalidate(previous)
        outq = qrun.fetch([by_name[n][0].act for n in level], feed_values)
        outf = frun.fetch([by_name[n][0].act_fp for n in level])
        qrun.settle(previous)
        previous = level
        xq_rows = {n: [] for n in level}
        xf_rows = {n: [] for n in level}
        per_batch = max(1, max_rows // len(batches))
        for bq, bf in zip(outq, outf):
            for n in level:
                layer, w = by_name[n]
                node = fp_nodes[n]
                xq, xf = bq[layer.act], bf[layer.act_fp]
                pos = sample_positions(node, xf.shape, w.shape, per_batch, rng)
                xq_rows[n].append(patches(node, xq, w.shape, pos))
                xf_rows[n].append(patches(node, xf, w.shape, pos))
        for n in level:
            layer, w = by_name[n]
            node = fp_nodes[n]
            xq, xf = np.concatenate(xq_rows[n], axis=1), np.concatenate(xf_rows[n], axis=1)
            del xq_rows[n], xf_rows[n]
            wm = weight_matrix(node, w.astype(np.float64))
            if xq.shape[1] < wm.shape[1]:  # fewer rows than unknowns per channel: it would fit them
                result.skipped[n] = (f"only {xq.shape[1]} input rows for {wm.shape[1]} weights per channel "
                                     "(rounding would fit the calibration rows)")
                if on_layer is not None:
                    on_layer(n)
                continue
            sm = _scale_matrix(layer.scale, wm.shape)
            q0 = weight_matrix(node, layer.q.astype(np.float64))
            q = solve_rounding(xq, xf, wm, sm, q0, sweeps=sweeps, damping=damping)
            current[n] = weight_from_matrix(node, q, w.shape).astype(np.int8)
            out_nearest, out_rounded = _output_db(xq, xf, wm, sm, q0, q)
            result.layers.append(LayerRounding(n, _db(wm, q0 * sm), _db(wm, q * sm), out_nearest, out_rounded,
                                               int(np.sum(q != q0))))
            set_const(result.model.graph, layer.weight,
                      grid_weight(current[n], layer.scale, layer.axis, w.shape))
            if on_layer is not None:
                on_layer(n)
    return result


def _scale_matrix(scale: np.ndarray, wshape: tuple) -> np.ndarray:
    """Per-channel scales as (G, 1, C) for a (G, K, C) weight matrix."""
    g, _, c = wshape
    return np.broadcast_to(np.asarray(scale, np.float64).reshape(-1), (g * c,)).reshape(g, 1, c)


def grid_weight(q: np.ndarray, scale: np.ndarray, axis: int | None, shape: tuple) -> np.ndarray:
    """FP32 weights equal to ``q * scale`` from which the exporter's rule (max|w| / 127 per
    channel) gives back exactly ``scale`` and, by rounding to nearest, exactly ``q``."""
    s = np.asarray(scale, dtype=np.float32)
    per_channel = axis is not None and s.ndim > 0
    bshape = [1] * len(shape)
    if per_channel:
        bshape[axis] = -1
    sb = s.reshape(bshape) if per_channel else s.reshape(())
    w = (q.astype(np.float32) * sb).astype(np.float32)
    # the +-127 entries: the float32 next to 127*s whose (float64) /127 rounds back to s
    peak = (sb * np.float32(adapter.QMAX)).astype(np.float32)
    for _ in range(8):
        back = (peak.astype(np.float64) / adapter.QMAX).astype(np.float32)
        if np.array_equal(back, sb):
            break
        peak = np.where(back == sb, peak, np.nextafter(peak, np.where(back < sb, np.inf, 0).astype(np.float32)))
    top = np.abs(q) == adapter.QMAX
    w = np.where(top, np.sign(q).astype(np.float32) * peak, w).astype(np.float32)
    check = adapter.weight_scales(w, axis if per_channel else None)
    if not np.array_equal(check, s):
        raise adapter.InternalError("rounded weights do not reproduce their INT8 scales")
    return w


def _db(ref: np.ndarray, test: np.ndarray) -> float:
    noise = float(np.sum((ref - test) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(float(np.sum(ref ** 2)) / noise)


def _output_db(xq, xf, w, s, q0, q) -> tuple:
    """The layer-output SQNR (dB) on the rows for round-to-nearest ``q0`` and the chosen ``q``, in
    the rows' dtype; the flips' change is its own product added to the nearest error in float64,
    so the two figures differ by the flips only."""
    dt = xq.dtype
    target = xf @ w.astype(dt)
    err = (xq @ (q0 * s).astype(dt) - target).astype(np.float64)
    signal = float(np.sum(np.square(target, dtype=np.float64)))
    nearest = _ratio_db(signal, float(np.sum(err ** 2)))
    if np.array_equal(q, q0):
        return nearest, nearest
    err += xq @ ((q - q0) * s).astype(dt)
    return nearest, _ratio_db(signal, float(np.sum(err ** 2)))


def _ratio_db(signal: float, noise: float) -> float:
    return math.inf if noise == 0 else 10 * math.log10(signal / noise)
