"""Does ONNX Runtime's fused integer path saturate on this CPU?

On x86 CPUs without VNNI (AVX2 only), ONNX Runtime's optimized CPU path runs Q/DQ Conv and
MatMul as u8s8 kernels built on ``vpmaddubsw``, which adds pairs of uint8 x int8 products into
int16 with saturation: two products of 255 x 127 overflow it. With 7-bit weights (|w| <= 63) a
pair stays below 32767 (ONNX Runtime's own remedy, ``reduce_range``). The probe runs one small
Q/DQ Conv that saturates such kernels with exact ONNX semantics and with ORT's deployed path.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Weights bound for u8s8 kernels that saturate: pairs of 255 x 63 products fit in int16.
REDUCED_WEIGHT_QMAX = 63


def _probe_model(channels: int = 64):
    from onnx import TensorProto, helper, numpy_helper

    w = np.full((8, channels, 1, 1), 127, dtype=np.int8)
    inits = [
        numpy_helper.from_array(np.array(1 / 255, dtype=np.float32), "xs"),
        numpy_helper.from_array(np.array(0, dtype=np.uint8), "xz"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.full(8, 1 / 127, dtype=np.float32), "ws"),
        numpy_helper.from_array(np.zeros(8, dtype=np.int8), "wz"),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "ys"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["c"]),
        # an output Q/DQ makes DQ -> Conv -> Q a node unit that ONNX Runtime fuses to QLinearConv
        helper.make_node("QuantizeLinear", ["c", "ys", "xz"], ["cq"]),
        helper.make_node("DequantizeLinear", ["cq", "ys", "xz"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "u8s8_probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), channels


@lru_cache(maxsize=1)
def u8s8_saturates() -> bool:
    """True when ONNX Runtime's optimized CPU path loses accuracy on saturating u8s8 sums here
    (measured once per process on a probe Conv: more than 1 % relative error vs exact semantics)."""
    from .ort import OrtSessionLoader
    from ..graph.semantics import DEPLOYED, EXACT, deployed_path

    model, channels = _probe_model()
    x = np.ones((1, channels, 4, 4), dtype=np.float32)  # uint8 255 everywhere
    exact = OrtSessionLoader(model, optimization=EXACT, threads=1)().run(None, {"x": x})[0]
    with deployed_path():  # the probe: ONNX Runtime's fused kernels, on purpose
        fused_session = OrtSessionLoader(model, optimization=DEPLOYED, threads=1)()
    fused = fused_session.run(None, {"x": x})[0]
    return bool(np.max(np.abs(fused - exact)) > 0.01 * np.max(np.abs(exact)))
