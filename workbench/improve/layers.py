"""The INT8 weighted layers of an exported Q/DQ model, and their inputs as matrices.

A layer is a Conv/ConvTranspose/Gemm/MatMul whose weight input is a DequantizeLinear of an int8
initializer (that is the exporter's output, so it is the plan's truth about which layers are
INT8). ``patches`` turns a layer's input into rows of the matrix its weight multiplies (im2col
for Conv), per group, for a sample of output positions, so a layer's output error is
``X @ W`` algebra in numpy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from .graphops import attr, consumers, node_by_name, producers

WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass
class Layer:
    """An INT8 weighted layer: ``node`` (name, the same in the FP32 and the Q/DQ model),
    ``act``/``act_fp``: its data input in the Q/DQ / FP32 model, ``weight``: the FP32 weight
    tensor, ``q``/``scale``: int8 values and scales, ``axis``: the scales' axis,
    ``dq``: the weight's DequantizeLinear node, ``shared``: the weight feeds other nodes too."""

    node: str
    op_type: str
    act: str
    act_fp: str
    weight: str
    q: np.ndarray
    scale: np.ndarray
    axis: int | None
    dq: str
    shared: bool


def quantized_layers(qdq: onnx.ModelProto, fp32: onnx.ModelProto) -> list:
    """Every INT8 weighted layer of ``qdq`` (built from ``fp32``) in graph order."""
    g = qdq.graph
    prod = producers(g)
    inits = {i.name: i for i in g.initializer}
    fp_nodes = node_by_name(fp32.graph)
    fp_cons = consumers(fp32.graph)
    dq_users: dict[str, int] = {}
    for n in g.node:
        for t in n.input:
            dq_users[t] = dq_users.get(t, 0) + 1
    out = []
    for n in g.node:
        if n.op_type not in WEIGHTED or len(n.input) < 2 or n.name not in fp_nodes:
            continue
        dq = prod.get(n.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
            continue
        qinit = inits[dq.input[0]]
        if qinit.data_type != onnx.TensorProto.INT8 or dq.input[1] not in inits:
            continue
        fp = fp_nodes[n.name]
        shared = len(fp_cons.get(fp.input[1], [])) > 1 or dq_users.get(n.input[1], 0) > 1
        out.append(Layer(n.name, n.op_type, n.input[0], fp.input[0], fp.input[1],
                         numpy_helper.to_array(qinit), numpy_helper.to_array(inits[dq.input[1]]),
                         attr(dq, "axis", 1), dq.name, shared))
    return out


# ------------------------------------------------------------------ weight <-> (G, K, C) matrices
def weight_matrix(node: onnx.NodeProto, w: np.ndarray) -> np.ndarray:
    """The weight as (groups, K, C_out per group): the layer computes ``rows @ W`` per group."""
    if node.op_type == "Conv":
        g = int(attr(node, "group", 1))
        cout = w.shape[0]
        return w.reshape(g, cout // g, -1).transpose(0, 2, 1)
    if node.op_type == "Gemm" and attr(node, "transB", 0):
        return w.T[None]
    return w[None]


def weight_from_matrix(node: onnx.NodeProto, m: np.ndarray, shape: tuple) -> np.ndarray:
    """Inverse of :func:`weight_matrix`."""
    if node.op_type == "Conv":
        return m.transpose(0, 2, 1).reshape(shape)
    if node.op_type == "Gemm" and attr(node, "transB", 0):
        return m[0].T
    return m[0]


def supported(node: onnx.NodeProto, w: np.ndarray) -> str | None:
    """Why the matrix view cannot handle ``node`` (None when it can)."""
    if node.op_type == "ConvTranspose":
        return "ConvTranspose is not handled"
    if node.op_type == "Conv" and w.ndim not in (3, 4):
        return f"{w.ndim - 2}-D convolution is not handled"
    if node.op_type == "MatMul" and w.ndim != 2:
        return f"MatMul weight of rank {w.ndim} is not handled"
    if node.op_type == "Gemm" and attr(node, "transA", 0):
        return "Gemm with transA is not handled"
    return None


# ------------------------------------------------------------------------------ input rows
def _conv2d_attrs(node: onnx.NodeProto, nd: int):
    """strides, dilations, pads (t, l, b, r) and auto_pad of a 1-D or 2-D Conv, as 2-D."""
    strides = list(attr(node, "strides", [1] * nd))
    dil = list(attr(node, "dilations", [1] * nd))
    pads = list(attr(node, "pads", [0] * 2 * nd))
    auto = attr(node, "auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if nd == 1:
        strides, dil, pads = [1] + strides, [1] + dil, [0, pads[0], 0, pads[1]]
    return strides, dil, pads, auto


def _conv_geometry(node, x_spatial, k_spatial):
    """strides, dilations, pads and output size of a Conv over a 2-D (or lifted 1-D) input."""
    strides, dil, pads, auto = _conv2d_attrs(node, len(k_spatial))
    xs, ks = tuple(x_spatial), tuple(k_spatial)
    if len(ks) == 1:
        xs, ks = (1,) + xs, (1,) + ks
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        for i in range(2):
            out = -(-xs[i] // strides[i])
            total = max((out - 1) * strides[i] + dil[i] * (ks[i] - 1) + 1 - xs[i], 0)
            small, big = total // 2, total - total // 2
            pads[i], pads[i + 2] = (small, big) if auto == "SAME_UPPER" else (big, small)
    elif auto == "VALID":
        pads = [0, 0, 0, 0]
    outs = [(xs[i] + pads[i] + pads[i + 2] - dil[i] * (ks[i] - 1) - 1) // strides[i] + 1 for i in range(2)]
    return strides, dil, pads, outs


def sample_positions(node: onnx.NodeProto, x_shape: tuple, w_shape: tuple, rows: int, rng) -> np.ndarray:
    """Which rows of the layer's input matrix to use (at most ``rows``), sorted indices."""
    if node.op_type == "Conv":
        _, _, _, outs = _conv_geometry(node, x_shape[2:], w_shape[2:])
        total = x_shape[0] * outs[0] * outs[1]
    else:
        total = int(np.prod(x_shape[:-1])) if node.op_type == "MatMul" else x_shape[0]
    if total <= rows:
        return np.arange(total)
    return np.sort(rng.choice(total, size=rows, replace=False))


def patches(node: onnx.NodeProto, x: np.ndarray, w_shape: tuple, positions: np.ndarray,
            dtype=np.float32) -> np.ndarray:
    """The rows the weight multiplies, for ``positions``: (groups, len(positions), K) of ``dtype``.

    For a Conv only the sampled windows are read (no padded copy of the activation): indices
    outside the input are clipped and their values zeroed, which is the zero padding."""
    if node.op_type != "Conv":
        x2 = x.reshape(-1, x.shape[-1]) if node.op_type == "MatMul" else x.reshape(x.shape[0], -1)
        rows = x2[positions].astype(dtype, copy=False)
        if node.op_type == "Gemm":
            rows = rows * dtype(attr(node, "alpha", 1.0))
        return rows[None]
    strides, dil, pads, (oh, ow) = _conv_geometry(node, x.shape[2:], w_shape[2:])
    if len(w_shape) == 3:  # 1-D conv as 2-D with a height-1 kernel
        x = x[:, :, None, :]
    kh, kw = (1, w_shape[2]) if len(w_shape) == 3 else (w_shape[2], w_shape[3])
    n_idx, rest = np.divmod(positions, oh * ow)
    r_idx, c_idx = np.divmod(rest, ow)
    hi = (r_idx * strides[0] - pads[0])[:, None] + (np.arange(kh) * dil[0])[None, :]  # (R, kh)
    wi = (c_idx * strides[1] - pads[1])[:, None] + (np.arange(kw) * dil[1])[None, :]  # (R, kw)
    h_ok, w_ok = (hi >= 0) & (hi < x.shape[2]), (wi >= 0) & (wi < x.shape[3])
    cols = x[n_idx[:, None, None], :, np.clip(hi, 0, x.shape[2] - 1)[:, :, None],
             np.clip(wi, 0, x.shape[3] - 1)[:, None, :]].astype(dtype, copy=False)  # (R, kh, kw, Cin)
    if not (h_ok.all() and w_ok.all()):
        cols *= (h_ok[:, :, None] & w_ok[:, None, :])[:, :, :, None]
    groups = int(attr(node, "group", 1))
    return cols.transpose(0, 3, 1, 2).reshape(len(positions), groups, -1).transpose(1, 0, 2)
