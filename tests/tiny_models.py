"""Tiny ONNX models built in code for the tests (no downloads, no torch).

Every builder returns an ``onnx.ModelProto`` that passes ``onnx.checker`` and runs in
ONNX Runtime on CPU. Weights come from a seeded generator so results are repeatable.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def small_cnn(
    *,
    opset: int = 17,
    batch: int | str = "N",
    channels: int = 3,
    size: int = 16,
    weights_as_constants: bool = False,
    seed: int = 0,
) -> onnx.ModelProto:
    """Conv-Relu-Conv-Relu-Add(residual)-MaxPool-GlobalAveragePool-Flatten-Gemm classifier.

    Input ``input`` [batch, channels, size, size] float32, output ``logits`` [batch, 10].
    ``weights_as_constants`` stores the weights as Constant nodes instead of initializers.
    """
    rng = _rng(seed)
    w1 = (rng.standard_normal((8, channels, 3, 3)) * 0.3).astype(np.float32)
    b1 = (rng.standard_normal(8) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((8, 8, 3, 3)) * 0.2).astype(np.float32)
    b2 = (rng.standard_normal(8) * 0.1).astype(np.float32)
    wf = (rng.standard_normal((10, 8)) * 0.5).astype(np.float32)
    bf = (rng.standard_normal(10) * 0.1).astype(np.float32)
    params = {"conv1.weight": w1, "conv1.bias": b1, "conv2.weight": w2, "conv2.bias": b2,
              "fc.weight": wf, "fc.bias": bf}

    nodes, inits = [], []
    for name, value in params.items():
        if weights_as_constants:
            nodes.append(helper.make_node("Constant", [], [name], name=f"const_{name}",
                                          value=numpy_helper.from_array(value, name)))
        else:
            inits.append(numpy_helper.from_array(value, name))
    nodes += [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["c1"], name="conv1",
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2",
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Add", ["r2", "r1"], ["sum"], name="add"),
        helper.make_node("MaxPool", ["sum"], ["pool"], name="maxpool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["pool"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "small_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, channels, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8 if opset <= 17 else 9)
    onnx.checker.check_model(model)
    return model


def residual_cnn(*, opset: int = 17, seed: int = 0) -> onnx.ModelProto:
    """Conv-Clip(ReLU6)-Conv-Add(residual)-GlobalAveragePool-Flatten-Gemm, the EfficientNet/MobileNet
    block shape: the second Conv's output feeds only the Add, so TensorRT fuses the Add into it.
    Input ``input`` [N, 4, 8, 8], output ``logits`` [N, 5]."""
    rng = _rng(seed)
    params = {
        "c1.w": (rng.standard_normal((4, 4, 3, 3)) * 0.4).astype(np.float32),
        "c1.b": (rng.standard_normal(4) * 0.1).astype(np.float32),
        "c2.w": (rng.standard_normal((4, 4, 1, 1)) * 0.5).astype(np.float32),
        "c2.b": (rng.standard_normal(4) * 0.1).astype(np.float32),
        "fc.w": (rng.standard_normal((5, 4)) * 0.5).astype(np.float32),
        "fc.b": np.zeros(5, np.float32),
        "lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["input", "c1.w", "c1.b"], ["a1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["a1", "lo", "hi"], ["r1"], name="relu6"),
        helper.make_node("Conv", ["r1", "c2.w", "c2.b"], ["a2"], name="conv2"),
        helper.make_node("Add", ["a2", "input"], ["res"], name="residual"),
        helper.make_node("GlobalAveragePool", ["res"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "residual_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])],
        initializer=[numpy_helper.from_array(v, k) for k, v in params.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8 if opset <= 17 else 9)
    onnx.checker.check_model(model)
    return model


def two_input_matmul(*, opset: int = 17, seed: int = 0) -> onnx.ModelProto:
    """A transformer-like toy: int64 ``input_ids`` [N, T] -> Gather embedding, float ``mask`` [N, T]
    multiplies it, then MatMul with a weight and Softmax. Output ``probs`` [N, T, 4]."""
    rng = _rng(seed)
    emb = (rng.standard_normal((32, 6))).astype(np.float32)
    w = (rng.standard_normal((6, 4)) * 0.5).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["embedding", "input_ids"], ["tok"], name="embed", axis=0),
        helper.make_node("Unsqueeze", ["attention_mask", "axes"], ["mask3"], name="unsq"),
        helper.make_node("Mul", ["tok", "mask3"], ["masked"], name="mask_mul"),
        helper.make_node("MatMul", ["masked", "proj"], ["proj_out"], name="proj_matmul"),
        helper.make_node("Softmax", ["proj_out"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "two_input",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "T"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.FLOAT, ["N", "T"])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", "T", 4])],
        initializer=[numpy_helper.from_array(emb, "embedding"), numpy_helper.from_array(w, "proj"),
                     numpy_helper.from_array(np.array([2], dtype=np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8 if opset <= 17 else 9)
    onnx.checker.check_model(model)
    return model


def save(model: onnx.ModelProto, path) -> str:
    """Save ``model`` to ``path`` and return the path as a string."""
    onnx.save(model, str(path))
    return str(path)
