"""Small seeded random-weight ONNX models of the kinds the workbench is judged on, with data.

Built in code with ``onnx.helper`` (no downloads, no torch), each in well under a second:

* :func:`classifier_relu6`: a MobileNet/EfficientNet-Lite-like image classifier (ReLU6 as Clip,
  depthwise convs, an inverted-residual Add, GAP, Gemm). Published entropy collapses on the
  spike of exact zeros of its ReLU6 tensors.
* :func:`detector_dbnet`: a DBNet-like text detector (stride-2 convs, ConvTranspose upsampling,
  a sigmoid probability map). Its "text" channel is large on a few pixels only: that sparse
  tail IS the output (percentile, mse and entropy clip it and the map goes blank).
* :func:`recognizer_ctc`: a CRNN/CTC-like text recognizer at opset 12 with Constant-node weights
  (convs collapse the height, a per-column MatMul gives class logits [N, T, C]).
* :func:`transformer_block`: a sentence-embedding-like encoder block: int64 token ids -> Gather
  embedding (+ positions), decomposed LayerNorm (opset 13) or LayerNormalization (opset 17),
  single-head attention (MatMul, Softmax), ReLU FFN, mean pooling. Two kinds of outliers:
  a few LayerNorm channels with a large gain carry the signal into the Q/K/V MatMuls
  (rare massive values: clipping them fails), and a few FFN hidden channels fire rarely and
  hugely but are read with near-zero weights (clipping them is right: min-max fails there).
* :func:`orientation_classifier`: a small 4-way image-orientation classifier (Conv-BN-ReLU,
  MaxPool, Softmax output).

Measured when they were designed (32 calibration / 64 evaluation samples of the generators,
default plan, exact ONNX semantics), output SQNR vs FP32 in dB (task metric):

    method            classifier     detector      recognizer    transformer
    entropy            1.7 (0.00)     0.5 (0.00)   10.2 (0.02)    1.6 (0.61)
    entropy_zero_fix  37.9 (1.00)     0.5 (0.00)   35.0 (0.58)   16.0 (0.985)
    minmax            38.2 (1.00)    30.8 (1.00)   34.9 (0.69)   20.3 (0.994)
    percentile        38.5 (1.00)     1.9 (0.14)   34.3 (0.59)   16.7 (0.985)
    mse               38.2 (1.00)    18.6 (1.00)   34.3 (0.67)   19.8 (0.993)

On the transformer min-max is best overall but loses on the FFN hidden tensor (amax 53 vs 4),
so no single method is best on every tensor.

``MODELS`` maps a short name to a :class:`Spec` (builder, data generator, task metric).
:class:`ArrayData` feeds generated samples to the workbench without files; :func:`write_npz`
writes them as an array folder for the CLI.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import hashlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from realistic_eval import (ArrayData, ctc_exact_match, ctc_greedy, mask_iou, mean_cosine,  # noqa: F401
                             top1_agreement, write_npz)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


class _Graph:
    """A tiny builder: params as initializers (or Constant nodes), nodes named after their output."""

    def __init__(self, constants: bool = False):
        self.nodes, self.inits, self.constants = [], [], constants

    def param(self, name: str, value) -> str:
        value = np.asarray(value)
        if self.constants:
            self.nodes.append(helper.make_node("Constant", [], [name], name=f"const_{name}",
                                               value=numpy_helper.from_array(value, name)))
        else:
            self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op: str, inputs: list, out: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def model(self, name: str, inputs: list, outputs: list, opset: int) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = min(model.ir_version, 7 if opset <= 12 else (8 if opset <= 17 else 9))
        onnx.checker.check_model(model)
        return model


def _conv_w(rng, cout, cin, k, gain=1.0):
    return _f32(rng.standard_normal((cout, cin, k, k)) * gain / np.sqrt(cin * k * k))


# -- (a) ReLU6 classifier ----------------------------------------------------------------------
def classifier_relu6(*, seed: int = 0, opset: int = 13, size: int = 32, classes: int = 10) -> onnx.ModelProto:
    """Stem conv (stride 2) -> [depthwise 3x3 -> pointwise 1x1] x 2 with ReLU6, an inverted-residual
    block (expand, depthwise, project, Add), GAP, Gemm. Input ``image`` [N, 3, size, size], output
    ``logits`` [N, classes]."""
    rng = _rng(seed)
    g = _Graph()
    lo, hi = g.param("zero", _f32(0.0)), g.param("six", _f32(6.0))

    def conv(x, out, cin, cout, k=3, stride=1, group=1, gain=2.5, bias=0.3, relu6=True):
        w = g.param(out + ".w", _conv_w(rng, cout, cin // group, k, gain))
        b = g.param(out + ".b", _f32(rng.standard_normal(cout) * bias))
        y = g.op("Conv", [x, w, b], out + "_conv" if relu6 else out, pads=[k // 2] * 4,
                 strides=[stride, stride], group=group)
        return g.op("Clip", [y, lo, hi], out) if relu6 else y

    x = conv("image", "stem", 3, 16, stride=2, gain=3.0)
    x = conv(x, "dw1", 16, 16, group=16, gain=3.0)
    x = conv(x, "pw1", 16, 24, k=1)
    x = conv(x, "dw2", 24, 24, stride=2, group=24, gain=3.0)
    x = conv(x, "pw2", 24, 32, k=1)
    e = conv(x, "expand", 32, 64, k=1)
    e = conv(e, "dw3", 64, 64, group=64, gain=3.0)
    p = conv(e, "project", 64, 32, k=1, relu6=False, gain=1.0)
    x = g.op("Add", [p, x], "block_out")
    x = g.op("GlobalAveragePool", [x], "gap")
    x = g.op("Flatten", [x], "flat", axis=1)
    wf = g.param("fc.w", _f32(rng.standard_normal((classes, 32)) * 0.5))
    bf = g.param("fc.b", _f32(rng.standard_normal(classes) * 0.1))
    g.op("Gemm", [x, wf, bf], "logits", transB=1)
    return g.model("classifier_relu6",
                   [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
                   [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])], opset)


def image_data(n: int, *, seed: int = 0, size: int = 32) -> list:
    """Smooth random "photos": low-frequency noise plus a few bright blobs, normalised like ImageNet."""
    rng = _rng(seed)
    out = []
    yy, xx = np.mgrid[0:size, 0:size] / size
    for _ in range(n):
        base = rng.standard_normal((3, 4, 4))
        img = np.kron(base, np.ones((size // 4, size // 4)))
        for _ in range(rng.integers(1, 4)):
            cy, cx, r = rng.random(), rng.random(), 0.05 + 0.2 * rng.random()
            img += rng.standard_normal((3, 1, 1)) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / r ** 2)
        img += 0.2 * rng.standard_normal((3, size, size))
        out.append({"image": _f32(img)})
    return out


# -- (b) DBNet-like detector -------------------------------------------------------------------
def detector_dbnet(*, seed: int = 0, opset: int = 13, size: int = 64, channels: int = 32) -> onnx.ModelProto:
    """conv(s2) -> conv(s2) -> ConvTranspose(x2) -> ConvTranspose(x2) -> 1x1 conv -> Sigmoid.

    Channel 0 of every stage is a "text" detector: a strong positive response on bright strokes
    (few pixels), zero elsewhere after ReLU; the other channels respond densely to the background
    texture with small values. The probability map reads the text channel with a high threshold,
    so clipping the rare large values blanks it. Input ``image`` [N, 3, size, size], output
    ``prob`` [N, 1, size, size]."""
    rng = _rng(seed)
    g = _Graph()
    c = channels

    def stage(x, out, op, cin, cout, k, text_gain, text_bias, **attrs):
        shape = (cin, cout, k, k) if op == "ConvTranspose" else (cout, cin, k, k)
        w = _f32(rng.standard_normal(shape) * 0.6 / np.sqrt(cin * k * k))
        b = _f32(rng.standard_normal(cout) * 0.05)
        # channel 0 is the text channel: a box filter of the previous text channel (of the image's
        # mean for the first stage) with a large gain; other channels barely read it
        if op == "ConvTranspose":  # weight [cin, cout, k, k]
            w[0, :] *= 0.02
            w[:, 0] *= 0.02
            w[0, 0] = text_gain
        elif cin == 3:
            w[0] = text_gain / (3 * k * k)
        else:
            w[:, 0] *= 0.02
            w[0] *= 0.02
            w[0, 0] = text_gain / (k * k)
        b[0] = text_bias
        y = g.op(op, [x, g.param(out + ".w", w), g.param(out + ".b", b)], out + "_pre", **attrs)
        return g.op("Relu", [y], out)

    x = stage("image", "enc1", "Conv", 3, c, 3, 20.0, -30.0, pads=[1] * 4, strides=[2, 2])
    x = stage(x, "enc2", "Conv", c, c, 3, 2.5, -4.0, pads=[1] * 4, strides=[2, 2])
    x = stage(x, "up1", "ConvTranspose", c, c, 2, 1.0, -1.0, strides=[2, 2])
    x = stage(x, "up2", "ConvTranspose", c, c, 2, 1.0, -1.0, strides=[2, 2])
    wh = _f32(rng.standard_normal((1, c, 1, 1)) * 0.05)
    wh[0, 0] = 0.5
    logit = g.op("Conv", [x, g.param("head.w", wh), g.param("head.b", _f32([-4.0]))], "head")
    g.op("Sigmoid", [logit], "prob")
    return g.model("detector_dbnet",
                   [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
                   [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 1, size, size])], opset)


def detector_data(n: int, *, seed: int = 0, size: int = 64) -> list:
    """Textured background (dense, small) with 0-2 thin bright "text" strokes per image."""
    rng = _rng(seed)
    out = []
    for _ in range(n):
        img = 0.6 * rng.standard_normal((3, size, size))
        for _ in range(rng.integers(0, 3)):
            h, w = rng.integers(2, 4), rng.integers(6, 14)
            y, x = rng.integers(0, size - h), rng.integers(0, size - w)
            # ink level 2..4 on a faint texture (strokes may overlap but never add up)
            img[:, y:y + h, x:x + w] = 2.0 + 2.0 * rng.random() + 0.1 * rng.standard_normal((3, h, w))
        out.append({"image": _f32(img)})
    return out


# -- (c) CTC recognizer (opset 12, Constant weights) -------------------------------------------
def recognizer_ctc(*, seed: int = 0, opset: int = 12, height: int = 16, width: int = 64,
                   classes: int = 12) -> onnx.ModelProto:
    """Conv-ReLU-MaxPool(2x2) -> Conv-ReLU-MaxPool(2x1) -> Conv-ReLU -> ReduceMean over height ->
    Squeeze (axes attribute, opset 12) -> Transpose -> MatMul + Add -> logits [N, T, classes]
    (T = width / 2, class 0 = CTC blank). All weights are Constant nodes.
    Input ``image`` [N, 1, height, width]."""
    rng = _rng(seed)
    g = _Graph(constants=True)

    def conv(x, out, cin, cout, gain=2.0):
        w = g.param(out + ".w", _conv_w(rng, cout, cin, 3, gain))
        b = g.param(out + ".b", _f32(rng.standard_normal(cout) * 0.1))
        return g.op("Relu", [g.op("Conv", [x, w, b], out + "_pre", pads=[1] * 4)], out)

    x = conv("image", "c1", 1, 16)
    x = g.op("MaxPool", [x], "p1", kernel_shape=[2, 2], strides=[2, 2])
    x = conv(x, "c2", 16, 32)
    x = g.op("MaxPool", [x], "p2", kernel_shape=[2, 1], strides=[2, 1])
    x = conv(x, "c3", 32, 48)
    x = g.op("ReduceMean", [x], "pool_h", axes=[2], keepdims=1)
    x = g.op("Squeeze", [x], "seq_cf", axes=[2])
    x = g.op("Transpose", [x], "seq", perm=[0, 2, 1])
    w = g.param("fc.w", _f32(rng.standard_normal((48, classes)) * 4.0 / np.sqrt(48)))
    b = _f32(rng.standard_normal(classes) * 0.1)
    b[0] += 1.0  # the blank is the most likely class, as in trained CTC models
    x = g.op("MatMul", [x, w], "fc")
    g.op("Add", [x, g.param("fc.b", b)], "logits")
    return g.model("recognizer_ctc",
                   [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, height, width])],
                   [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", width // 2, classes])],
                   opset)


def text_line_data(n: int, *, seed: int = 0, height: int = 16, width: int = 64) -> list:
    """Grey text lines: a few dark-on-light glyph-like blocks of random widths on a noisy background."""
    rng = _rng(seed)
    out = []
    for _ in range(n):
        img = 0.8 + 0.1 * rng.standard_normal((1, height, width))
        x = int(rng.integers(0, 6))
        while x < width - 4:
            w = int(rng.integers(2, 6))
            pattern = rng.random((height - 4, w)) < 0.6
            img[0, 2:height - 2, x:x + w] -= 0.7 * pattern
            x += w + int(rng.integers(1, 5))
        out.append({"image": _f32(img)})
    return out


# -- (d) transformer block ---------------------------------------------------------------------
def transformer_block(*, seed: int = 0, opset: int = 13, vocab: int = 64, seq: int = 16,
                      dim: int = 32, hidden: int = 64) -> onnx.ModelProto:
    """Token ids (int64 [N, seq]) -> Gather embedding + positions -> LayerNorm -> Q/K/V MatMuls ->
    Softmax(QK^T / sqrt(d)) V -> output MatMul -> residual Add -> LayerNorm -> MatMul-ReLU-MatMul
    -> residual Add -> ReduceMean over tokens -> ``embedding`` [N, dim].

    LayerNorm is decomposed (ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add) below opset 17 and a
    LayerNormalization node from opset 17. Outliers: LayerNorm 1's gain is large on two channels
    for rare tokens (massive values that carry the attention), FFN hidden channels 0-1 fire rarely
    and hugely but are read with near-zero weights."""
    rng = _rng(seed)
    g = _Graph()
    emb = _f32(rng.standard_normal((vocab, dim)))
    emb[:4, 0] += 100.0  # rare "special" tokens 0-3 carry a massive value on channel 0
    pos = _f32(rng.standard_normal((1, seq, dim)) * 0.3)
    x = g.op("Gather", [g.param("tok_emb", emb), "input_ids"], "tok", axis=0)
    x = g.op("Add", [x, g.param("pos_emb", pos)], "x0")

    def layer_norm(x, out, gain):
        gamma = g.param(out + ".g", _f32(gain))
        beta = g.param(out + ".b", _f32(rng.standard_normal(dim) * 0.05))
        if opset >= 17:
            return g.op("LayerNormalization", [x, gamma, beta], out, axis=-1, epsilon=1e-5)
        mu = g.op("ReduceMean", [x], out + "_mu", axes=[-1], keepdims=1)
        d = g.op("Sub", [x, mu], out + "_d")
        var = g.op("ReduceMean", [g.op("Pow", [d, g.param(out + ".two", _f32(2.0))], out + "_sq")],
                   out + "_var", axes=[-1], keepdims=1)
        std = g.op("Sqrt", [g.op("Add", [var, g.param(out + ".eps", _f32(1e-5))], out + "_ve")], out + "_std")
        n = g.op("Div", [d, std], out + "_n")
        return g.op("Add", [g.op("Mul", [n, gamma], out + "_s"), beta], out)

    def matmul(x, out, cin, cout, gain=1.0):
        return g.op("MatMul", [x, g.param(out + ".w", _f32(rng.standard_normal((cin, cout)) * gain / np.sqrt(cin)))], out)

    gain1 = 1.0 + 0.1 * rng.standard_normal(dim)
    gain1[[5, 17]] = 12.0  # outlier channels of the LayerNorm gain, read by the Q/K/V MatMuls
    h = layer_norm(x, "ln1", gain1)
    q, k, v = (matmul(h, n, dim, dim) for n in ("q", "k", "v"))
    kt = g.op("Transpose", [k], "kt", perm=[0, 2, 1])
    s = g.op("MatMul", [q, kt], "scores")
    s = g.op("Mul", [s, g.param("inv_sqrt_d", _f32(1.0 / np.sqrt(dim)))], "scores_scaled")
    p = g.op("Softmax", [s], "attn", axis=-1)
    a = g.op("MatMul", [p, v], "ctx")
    a = matmul(a, "attn_out", dim, dim)
    x = g.op("Add", [x, a], "x1")
    h = layer_norm(x, "ln2", 1.0 + 0.1 * rng.standard_normal(dim))
    w1 = _f32(rng.standard_normal((dim, hidden)) / np.sqrt(dim))
    b1 = _f32(np.zeros(hidden))
    w1[:, :2] *= 100.0  # channels 0-1: rare, huge, and (see w2) irrelevant
    b1[:2] = -270.0
    f = g.op("Relu", [g.op("Add", [g.op("MatMul", [h, g.param("ffn1.w", w1)], "ffn1"),
                                   g.param("ffn1.b", b1)], "ffn1_b")], "ffn_h")
    w2 = _f32(rng.standard_normal((hidden, dim)) / np.sqrt(hidden))
    w2[:2] *= 1e-3
    f = g.op("MatMul", [f, g.param("ffn2.w", w2)], "ffn2")
    x = g.op("Add", [x, f], "x2")
    g.op("ReduceMean", [x], "embedding", axes=[1], keepdims=0)
    return g.model("transformer_block",
                   [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", seq])],
                   [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])], opset)


def token_data(n: int, *, seed: int = 0, vocab: int = 64, seq: int = 16) -> list:
    """Random token ids; special tokens 0-3 are rare: one sequence in 32 (the 8th, the 40th, ...)
    has one, so every set of 32 samples holds exactly one, whose massive value is then about
    1/16000 of a tensor's values (percentile 99.99 cuts it)."""
    rng = _rng(seed)
    out = []
    for i in range(n):
        ids = rng.integers(4, vocab, size=seq)
        if i % 32 == 7:
            ids[rng.integers(0, seq)] = rng.integers(0, 4)
        out.append({"input_ids": ids.astype(np.int64)})
    return out


# -- (e) orientation classifier ----------------------------------------------------------------
def orientation_classifier(*, seed: int = 0, opset: int = 13, size: int = 32) -> onnx.ModelProto:
    """Conv-BatchNormalization-ReLU, MaxPool, Conv-ReLU, GAP, Gemm, Softmax -> ``probs`` [N, 4]."""
    rng = _rng(seed)
    g = _Graph()
    x = g.op("Conv", ["image", g.param("c1.w", _conv_w(rng, 16, 3, 3, 2.0)), g.param("c1.b", _f32(np.zeros(16)))],
             "c1", pads=[1] * 4, strides=[2, 2])
    bn = [g.param("bn.scale", _f32(1 + 0.2 * rng.standard_normal(16))),
          g.param("bn.bias", _f32(0.1 * rng.standard_normal(16))),
          g.param("bn.mean", _f32(0.1 * rng.standard_normal(16))),
          g.param("bn.var", _f32(0.5 + rng.random(16)))]
    x = g.op("Relu", [g.op("BatchNormalization", [x] + bn, "bn1")], "r1")
    x = g.op("MaxPool", [x], "p1", kernel_shape=[2, 2], strides=[2, 2])
    x = g.op("Relu", [g.op("Conv", [x, g.param("c2.w", _conv_w(rng, 32, 16, 3, 2.0)),
                                    g.param("c2.b", _f32(rng.standard_normal(32) * 0.1))], "c2", pads=[1] * 4)], "r2")
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x], "gap")], "flat", axis=1)
    x = g.op("Gemm", [x, g.param("fc.w", _f32(rng.standard_normal((4, 32)))), g.param("fc.b", _f32(np.zeros(4)))],
             "fc", transB=1)
    g.op("Softmax", [x], "probs", axis=1)
    return g.model("orientation_classifier",
                   [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
                   [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 4])], opset)


def orientation_data(n: int, *, seed: int = 0, size: int = 32) -> list:
    """Images of :func:`image_data` rotated by a random multiple of 90 degrees."""
    rng = _rng(seed + 1000)
    return [{"image": np.ascontiguousarray(np.rot90(s["image"], int(rng.integers(0, 4)), axes=(1, 2)))}
            for s in image_data(n, seed=seed, size=size)]


# -- task metrics (quantized vs FP32 outputs) --------------------------------------------------

@dataclass(frozen=True)
class Spec:
    """One judged model kind: ``build()`` -> ModelProto, ``data(n, seed=)`` -> list of feeds,
    ``metric(ref, test)`` on the first output (higher is better), named ``metric_name``."""

    build: Callable
    data: Callable
    metric: Callable
    metric_name: str


MODELS = {
    "classifier": Spec(classifier_relu6, image_data, top1_agreement, "top-1 agreement"),
    "detector": Spec(detector_dbnet, detector_data, mask_iou, "mask IoU"),
    "recognizer": Spec(recognizer_ctc, text_line_data, ctc_exact_match, "exact match"),
    "transformer": Spec(transformer_block, token_data, mean_cosine, "cosine"),
    "orientation": Spec(orientation_classifier, orientation_data, top1_agreement, "top-1 agreement"),
}
