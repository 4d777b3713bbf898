"""Export: Q/DQ placement and scales, per-channel weights, residual Adds, FP16 typing."""
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

from export_helpers import RNG, _residual_model, cnn_case, expected_weight_scale, inits, nodes_of, observed_ranges, qdq_by_tensor, run, session, single_node_model, weight_dq  # noqa: F401


# ------------------------------------------------------------------- Q/DQ placement, scales
def test_activation_qdq_placement_and_scales():
    info, feed, ranges = cnn_case()
    model = build_quantized(info, ranges, PrecisionPlan.default(info))
    onnx.checker.check_model(model)
    q = qdq_by_tensor(model)
    # inputs of INT8 nodes only: conv1, conv2, add (both: neither comes straight from a conv),
    # maxpool, gap, fc; never the conv/gemm outputs c1, c2, logits
    assert set(q) == {"input", "r1", "r2", "sum", "pool", "flat"}
    for t, (scale, zp, _) in q.items():
        assert scale.dtype == np.float32 and scale.shape == ()
        assert scale == np.float32(ranges[t].amax / 127)
        assert zp.dtype == np.int8 and zp == 0
    by_name = {n.name: n for n in model.graph.node}
    assert by_name["conv2"].input[0] == q["r1"][2]
    assert set(by_name["add"].input) == {q["r1"][2], q["r2"][2]}  # one shared pair for r1
    assert by_name["relu2"].input[0] == "c2"  # FP32 consumers keep the float tensor
    assert len(nodes_of(model, "QuantizeLinear")) == 6


def test_amax_override_wins():
    info, feed, ranges = cnn_case()
    plan = PrecisionPlan.default(info)
    plan.set_amax("r1", 0.75)
    scale = qdq_by_tensor(build_quantized(info, ranges, plan))["r1"][0]
    assert scale == np.float32(0.75 / 127)


@pytest.mark.parametrize("as_constants", [False, True])
def test_conv_and_gemm_weight_scales_per_channel(as_constants):
    info, feed, ranges = cnn_case(weights_as_constants=as_constants)
    model = build_quantized(info, ranges, PrecisionPlan.default(info))
    onnx.checker.check_model(model)
    for node, w_name, axis in (("conv1", "conv1.weight", 0), ("conv2", "conv2.weight", 0),
                               ("fc", "fc.weight", 0)):  # fc is Gemm transB=1: [out, in]
        w = info.constants[w_name]
        q, scale, zp, got_axis = weight_dq(model, node)
        assert got_axis == axis and q.dtype == np.int8 and zp.dtype == np.int8 and not zp.any()
        np.testing.assert_array_equal(scale, expected_weight_scale(w, axis))
        shape = [1] * w.ndim
        shape[axis] = -1
        assert np.abs(q.astype(np.float32) * scale.reshape(shape) - w).max() <= scale.max() / 2 + 1e-7
        assert np.abs(q).max() == 127
    # the float weights are gone (Constant nodes and initializers alike)
    assert not {"conv1.weight", "conv2.weight", "fc.weight"} & set(inits(model))
    assert not [n for n in nodes_of(model, "Constant") if n.output[0].endswith(".weight")]
    np.testing.assert_allclose(run(model, feed), run(info.model, feed), atol=0.2)


@pytest.mark.parametrize("case", ["gemm_transB0", "gemm_transB1", "matmul", "convtranspose"])
def test_weight_axis_per_op(case):
    if case.startswith("gemm"):
        trans_b = int(case[-1])
        w = RNG.standard_normal((5, 4) if trans_b else (4, 5)).astype(np.float32)
        model = single_node_model("Gemm", [2, 4], w, [2, 5], transB=trans_b)
        axis, n_ch = (0 if trans_b else 1), 5
    elif case == "matmul":
        w = RNG.standard_normal((4, 6)).astype(np.float32)
        model = single_node_model("MatMul", [2, 3, 4], w, [2, 3, 6])
        axis, n_ch = 1, 6
    else:  # ConvTranspose weight [in, out, kh, kw]: output channels on axis 1
        w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
        model = single_node_model("ConvTranspose", [1, 4, 5, 5], w, [1, 3, 7, 7])
        axis, n_ch = 1, 3
    w[..., 0] *= 5  # make channels differ so a wrong axis would change the scales
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(w, "W"))
    info = ModelInfo(model)
    x_shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    feed = {"x": RNG.standard_normal(x_shape).astype(np.float32)}
    ranges = observed_ranges(model, feed)
    out = build_quantized(info, ranges, PrecisionPlan.default(info))
    onnx.checker.check_model(out)
    q, scale, zp, got_axis = weight_dq(out, "layer")
    assert got_axis == axis and scale.shape == (n_ch,)
    np.testing.assert_array_equal(scale, expected_weight_scale(w, axis))
    ref = run(model, feed)
    assert np.abs(run(out, feed) - ref).max() < 0.05 * np.abs(ref).max()


def test_residual_add_quantizes_only_the_residual_input():
    model = _residual_model()
    info = ModelInfo(model)
    feed = {"x": RNG.standard_normal((1, 4, 6, 6)).astype(np.float32)}
    ranges = observed_ranges(model, feed)
    plan = PrecisionPlan.default(info)
    out = build_quantized(info, ranges, plan)
    q = qdq_by_tensor(out)
    assert set(q) == {"x", "ra"}  # 'b' is fused into conv_b by TensorRT: no Q/DQ
    add = next(n for n in out.graph.node if n.name == "residual")
    assert list(add.input) == ["b", q["ra"][2]]
    plan.set_node("conv_b", "fp32")  # nothing to fuse into: both inputs quantized
    assert set(qdq_by_tensor(build_quantized(info, ranges, plan))) == {"x", "ra", "b"}
    # the CPU variant follows ONNX Runtime's convention: every Add input quantized
    assert {"x", "ra", "b"} <= set(qdq_by_tensor(build_quantized(
        info, ranges, PrecisionPlan.default(info), variant="cpu_uint8")))


# ------------------------------------------------------------------------------ FP16
def _value_types(model):
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    vis = list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)
    return {v.name: v.type.tensor_type.elem_type for v in vis}


def test_fp16_nodes_carry_fp16_types_in_trt_variant():
    info, feed, ranges = cnn_case()
    plan = PrecisionPlan.default(info, base="fp16")
    model = build_quantized(info, ranges, plan, variant="trt")
    onnx.checker.check_model(model, full_check=True)
    types = _value_types(model)
    by_name = {n.name: n for n in model.graph.node}
    for name in ("relu1", "relu2", "flatten"):
        node = by_name[name]
        assert types[node.input[0]] == TensorProto.FLOAT16, name
        assert types[node.output[0]] == TensorProto.FLOAT16, name
    for name in ("conv1", "conv2", "fc"):  # INT8 nodes stay float32 around their Q/DQ
        assert types[by_name[name].output[0]] == TensorProto.FLOAT
    assert types["logits"] == TensorProto.FLOAT
    out = run(model, feed)  # ONNX Runtime CPU can run the TensorRT file
    np.testing.assert_allclose(out, run(build_quantized(info, ranges, plan, variant="ort"), feed),
                               atol=1e-2)


def test_all_fp16_plan_has_no_cast_ping_pong():
    info, feed, ranges = cnn_case()
    plan = PrecisionPlan.default(info)
    for e in list(plan):
        plan.set_node(e.node, "fp16")
    model = build_quantized(info, ranges, plan, variant="trt")
    onnx.checker.check_model(model)
    casts = nodes_of(model, "Cast")
    assert [c.input[0] for c in casts] == ["input", "logits_fp16"]  # one in, one out
    assert all(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer)
    ref = run(info.model, feed)
    got = run(model, feed)
    assert got.dtype == np.float32
    assert 0 < np.abs(got - ref).max() < 1e-2 * np.abs(ref).max() + 1e-3
    emulated = build_quantized(info, ranges, plan, variant="ort")
    assert all(t.data_type == TensorProto.FLOAT for t in emulated.graph.initializer)
    w16 = inits(emulated)["conv1.weight_fp16r"]
    np.testing.assert_array_equal(w16, info.constants["conv1.weight"].astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(run(emulated, feed), got, atol=2e-3)


def test_unsafe_fp16_node_is_exported_fp32_and_reported():
    info, feed, ranges = cnn_case()
    ranges = dict(ranges)
    ranges["c1"] = SimpleNamespace(amax=ranges["c1"].amax, min=-1.0, max=7e4)
    res = build(info, ranges, PrecisionPlan.default(info, base="fp16"), variant="trt")
    assert res.plan["relu1"].precision is Precision.FP32
    assert res.plan["relu1"].reason == "unsafe-fp16" and "c1" in res.plan["relu1"].detail
    assert any("relu1" in n for n in res.notes)
    types = _value_types(res.model)
    by_name = {n.name: n for n in res.model.graph.node}
    assert by_name["relu1"].output[0] == "r1" and types["r1"] == TensorProto.FLOAT
    assert types[by_name["relu2"].output[0]] == TensorProto.FLOAT16  # relu2 stays FP16
