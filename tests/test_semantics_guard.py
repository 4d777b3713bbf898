"""The exact-semantics guard of conftest.py: a quantized model opened with ONNX Runtime's
optimizations (fused, CPU-dependent kernels) fails the test, unless on the deployed path."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import tiny_models as tm
from workbench.graph.semantics import deployed_path


def _qdq_bytes():
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, np.int8), "z")
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])], "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], initializer=[scale, zero])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_optimized_session_on_a_qdq_model_fails_the_test():
    with pytest.raises(AssertionError, match="exact semantics"):
        ort.InferenceSession(_qdq_bytes(), providers=["CPUExecutionProvider"])
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    with pytest.raises(AssertionError, match="QuantizeLinear"):
        ort.InferenceSession(_qdq_bytes(), so, providers=["CPUExecutionProvider"])


def test_exact_and_deployed_sessions_pass():
    data = _qdq_bytes()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    y = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"]).run(
        None, {"x": np.array([0.04, 0.06, 20.0, -20.0], np.float32)})[0]
    np.testing.assert_allclose(y, [0.0, 0.1, 12.7, -12.8], rtol=1e-6)  # round half to even, saturation
    with deployed_path():
        ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def test_fp32_models_may_use_the_fast_path():
    ort.InferenceSession(tm.small_cnn().SerializeToString(), providers=["CPUExecutionProvider"])
