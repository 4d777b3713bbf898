"""The exact-semantics guard of conftest.py: a quantized model opened with ONNX Runtime's
optimizations (fused, CPU-dependent kernels) fails the test, unless on the deployed path."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import tiny_models as tm
from workbench.backends.ort import OrtSessionLoader
from workbench.errors import WorkbenchError
from workbench.graph.semantics import deployed_path

GUARD = pytest.fail.Exception  # a BaseException: code under test cannot swallow it


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
    with pytest.raises(GUARD, match="exact semantics"):
        ort.InferenceSession(_qdq_bytes(), providers=["CPUExecutionProvider"])
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    with pytest.raises(GUARD, match="QuantizeLinear"):
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


def _qlinear_add_bytes():
    """x (uint8) + x through com.microsoft QLinearAdd."""
    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(128, np.uint8), "z")]
    node = helper.make_node("QLinearAdd", ["x", "s", "z", "x", "s", "z", "s", "z"], ["y"], domain="com.microsoft")
    graph = helper.make_graph([node], "qadd", [helper.make_tensor_value_info("x", TensorProto.UINT8, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [4])], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("com.microsoft", 1)]).SerializeToString()


def test_com_microsoft_quantized_op_is_guarded():
    data = _qlinear_add_bytes()
    with pytest.raises(GUARD, match="QLinearAdd"):
        ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    y = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"]).run(
        None, {"x": np.array([128, 138, 148, 118], np.uint8)})[0]
    np.testing.assert_array_equal(y, [128, 148, 168, 108])  # (q - 128) * 0.1 twice, requantized


def test_qdq_inside_an_if_branch_is_guarded():
    """The switchable emulation keeps its Q/DQ inside If branches: the guard looks there too."""
    branch = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["b"])], "then", [],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [4])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["c"])], "else", [],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [4])])
    graph = helper.make_graph(
        [helper.make_node("If", ["flag"], ["y"], then_branch=branch, else_branch=other)], "if_qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]),
         helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        initializer=[numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                     numpy_helper.from_array(np.array(0, np.int8), "z")])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    with pytest.raises(GUARD, match="DequantizeLinear, QuantizeLinear"):
        ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def test_the_ort_loader_does_not_mark_optimized_sessions_deployed():
    """Only a caller that means the deployed path opens it: the loader asked for optimizations on
    a Q/DQ model outside deployed_path() is caught (not turned into a WorkbenchError)."""
    with pytest.raises(GUARD, match="deployed_path"):
        OrtSessionLoader(_qdq_bytes(), optimization="all")()
    OrtSessionLoader(_qdq_bytes())()  # exact semantics by default
    with deployed_path():
        OrtSessionLoader(_qdq_bytes(), optimization="all")()
    with pytest.raises(WorkbenchError, match="optimization level"):
        OrtSessionLoader(_qdq_bytes(), optimization="fast")
