"""Models and image folders for the input-preparation tests (tests/data, tests/ui).

* :func:`dynamic_detector`: a dynamic-H/W detector, stride-2 convolutions down to 1/32, then
  Resize(x2) + skip Add back up (a size off 32 breaks the Adds), a 1x1 head and a Sigmoid;
* :func:`nhwc_cnn`: an NHWC input (Transpose inside), static 16x16;
* :func:`bgr_cnn`: the small NCHW CNN with ONNX metadata saying it takes BGR 0..255 pixels;
* :func:`pages`: a folder of page-like images of several sizes.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

import tiny_models


def _model(nodes, inits, name, inputs, outputs, opset=17):
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def dynamic_detector(depth: int = 5, channels: int = 4, seed: int = 0) -> onnx.ModelProto:
    """Input ``image`` [N, 3, H, W] (H, W dynamic) -> ``prob`` [N, 1, H, W]; stride 2**depth."""
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def p(name, a):
        inits.append(numpy_helper.from_array(np.asarray(a, np.float32), name))
        return name

    x, skips, cin = "image", [], 3
    for i in range(depth):
        w = p(f"e{i}.w", rng.standard_normal((channels, cin, 3, 3)) * 0.4)
        b = p(f"e{i}.b", rng.standard_normal(channels) * 0.1)
        nodes.append(helper.make_node("Conv", [x, w, b], [f"e{i}c"], name=f"enc{i}", pads=[1] * 4, strides=[2, 2]))
        nodes.append(helper.make_node("Relu", [f"e{i}c"], [f"e{i}"], name=f"relu{i}"))
        skips.append(f"e{i}")
        x, cin = f"e{i}", channels
    scales = p("scales", [1, 1, 2, 2])
    for i in range(depth - 1, 0, -1):
        nodes.append(helper.make_node("Resize", [x, "", scales], [f"u{i}"], name=f"up{i}", mode="nearest"))
        nodes.append(helper.make_node("Add", [f"u{i}", skips[i - 1]], [f"s{i}"], name=f"add{i}"))
        x = f"s{i}"
    nodes.append(helper.make_node("Resize", [x, "", scales], ["u0"], name="up0", mode="nearest"))
    head = p("h.w", rng.standard_normal((1, channels, 1, 1)) * 0.5)
    nodes.append(helper.make_node("Conv", ["u0", head, p("h.b", [-0.5])], ["logit"], name="head"))
    nodes.append(helper.make_node("Sigmoid", ["logit"], ["prob"], name="sigmoid"))
    return _model(nodes, inits, "dynamic_detector",
                  [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                  [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 1, "H", "W"])])


def nhwc_cnn(size: int = 16, seed: int = 0) -> onnx.ModelProto:
    """Input ``image`` [N, size, size, 3] (NHWC) -> Transpose -> Conv -> Relu -> GAP -> Gemm."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3, "w"),
             numpy_helper.from_array(np.zeros(8, np.float32), "b"),
             numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), "fc")]
    nodes = [helper.make_node("Transpose", ["image"], ["nchw"], name="to_nchw", perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["nchw", "w", "b"], ["c"], name="conv", pads=[1] * 4),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fc"], ["logits"], name="fc", transB=1)]
    return _model(nodes, inits, "nhwc_cnn",
                  [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", size, size, 3])],
                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])])


def bgr_cnn(size: int = 16) -> onnx.ModelProto:
    """tiny_models.small_cnn with Windows-ML metadata: BGR, raw 0..255 pixels."""
    m = tiny_models.small_cnn(size=size)
    for key, value in (("Image.BitmapPixelFormat", "Bgr8"), ("Image.NominalPixelRange", "NominalRange_0_255")):
        m.metadata_props.add(key=key, value=value)
    return m


def pages(folder, sizes=((64, 96), (96, 128), (80, 150)), per: int = 3, seed: int = 0):
    """``per`` page images of each (H, W) in ``sizes``, interleaved by name; a dark "text" bar on
    light paper. 80x150 is not a multiple of 32."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    k = 0
    for _ in range(per):
        for h, w in sizes:
            a = (230 + rng.integers(0, 20, (h, w, 3))).astype(np.uint8)
            y, x = rng.integers(0, h - 8), rng.integers(0, w - 30)
            a[y:y + 6, x:x + 28] = 20
            Image.fromarray(a).save(folder / f"page{k:02d}.png")
            k += 1
    return folder
