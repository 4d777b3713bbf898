"""Helpers of the export tests: exact-semantics sessions, observed ranges, Q/DQ readers."""
from __future__ import annotations

import struct
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import tiny_models as tm
from workbench.errors import WorkbenchError
from workbench.export import build, build_quantized, engine_build_commands, export_model
from workbench.graph.model import ModelInfo
from workbench.graph.semantics import deployed_path
from workbench.precision.plan import Precision, PrecisionPlan

RNG = np.random.default_rng(1)


# ----------------------------------------------------------------------------- helpers
def session(model, optimized_path=None):
    """Exact ONNX semantics (no fused kernels); ``optimized_path``: write what ONNX Runtime's
    deployed path makes of the graph (all optimizations) there instead, to inspect its fusions."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    if optimized_path:
        so.optimized_model_filepath = str(optimized_path)
        with deployed_path():
            return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run(model, feed):
    return session(model).run(None, feed)[0]


def observed_ranges(model, feed):
    """min/max/amax of every float activation, from one ONNX Runtime run (minmax calibration)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    names = ModelInfo(m).float_tensors()
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.ValueInfoProto(name=t) for t in names if t not in have)
    values = session(m).run(names, feed)
    return {n: SimpleNamespace(amax=float(np.abs(v).max()), min=float(v.min()), max=float(v.max()))
            for n, v in zip(names, values)}


def cnn_case(**kw):
    model = tm.small_cnn(**kw)
    feed = {"input": RNG.standard_normal((2, 3, 16, 16)).astype(np.float32)}
    return ModelInfo(model), feed, observed_ranges(model, feed)


def nodes_of(model, op):
    return [n for n in model.graph.node if n.op_type == op]


def inits(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def qdq_by_tensor(model):
    """quantized tensor -> (scale, zero point, DQ output) for every activation Q."""
    values = inits(model)
    dq_of = {n.input[0]: n for n in nodes_of(model, "DequantizeLinear")}
    out = {}
    for q in nodes_of(model, "QuantizeLinear"):
        dq = dq_of[q.output[0]]
        assert list(dq.input[1:]) == list(q.input[1:])  # DQ uses the Q's scale and zero point
        out[q.input[0]] = (values[q.input[1]], values[q.input[2]], dq.output[0])
    return out


def weight_dq(model, node_name):
    """(int8 weight, scale, zero point, axis) of the DQ feeding ``node_name``'s input 1."""
    node = next(n for n in model.graph.node if n.name == node_name)
    dq = next(n for n in nodes_of(model, "DequantizeLinear") if n.output[0] == node.input[1])
    values = inits(model)
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    return values[dq.input[0]], values[dq.input[1]], values[dq.input[2]], axis


def single_node_model(op, x_shape, w, out_shape, opset=17, **attrs):
    g = helper.make_graph(
        [helper.make_node(op, ["x", "W"], ["y"], name="layer", **attrs)], "one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(w, "W")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def expected_weight_scale(w, axis):
    others = tuple(i for i in range(w.ndim) if i != axis)
    return (np.abs(w).max(axis=others).astype(np.float64) / 127).astype(np.float32)


def _residual_model():
    """x -> conv_a -> relu -> conv_b -> Add(conv_b out, relu out): a ResNet-style residual."""
    wa = (RNG.standard_normal((4, 4, 3, 3)) * 0.3).astype(np.float32)
    wb = (RNG.standard_normal((4, 4, 3, 3)) * 0.3).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "wa"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["a"], ["ra"], name="relu"),
         helper.make_node("Conv", ["ra", "wb"], ["b"], name="conv_b", pads=[1, 1, 1, 1]),
         helper.make_node("Add", ["b", "ra"], ["y"], name="residual")],
        "res", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])],
        initializer=[numpy_helper.from_array(wa, "wa"), numpy_helper.from_array(wb, "wb")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model
