"""Export: Q/DQ placement and scales, FP16 typing, variants, refusals, files and commands."""
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


# ----------------------------------------------------------------------------- variants
def test_all_fp32_plan_reproduces_the_original():
    info, feed, ranges = cnn_case()
    plan = PrecisionPlan.default(info)
    for n in plan.int8_nodes():
        plan.set_node(n, "fp32")
    for variant in ("trt", "ort", "cpu_uint8"):
        model = build_quantized(info, ranges, plan, variant=variant)
        assert len(model.graph.node) == len(info.nodes)
        np.testing.assert_array_equal(run(model, feed), run(info.model, feed))


@pytest.mark.parametrize("opset", [11, 13, 17, 20])
@pytest.mark.parametrize("variant", ["trt", "ort", "cpu_uint8"])
def test_every_variant_checks_and_runs(opset, variant):
    info, feed, ranges = cnn_case(opset=opset, weights_as_constants=(opset % 2 == 1))
    res = build(info, ranges, PrecisionPlan.default(info, base="fp16"), variant=variant)
    onnx.checker.check_model(res.model)
    got_opset = next(o.version for o in res.model.opset_import if o.domain in ("", "ai.onnx"))
    assert got_opset == max(opset, 13)
    assert any("upgraded" in n for n in res.notes) == (opset < 13)
    ref = run(info.model, feed)
    got = run(res.model, feed)
    cos = float(np.sum(got * ref) / np.linalg.norm(got) / np.linalg.norm(ref))
    assert cos > 0.995, cos
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max()
    assert not np.array_equal(got, ref)  # it really is quantized


def test_two_input_matmul_model():
    model = tm.two_input_matmul()
    info = ModelInfo(model)
    feed = {"input_ids": RNG.integers(0, 32, (2, 5)).astype(np.int64),
            "attention_mask": np.ones((2, 5), np.float32)}
    ranges = observed_ranges(model, feed)
    for variant in ("trt", "ort", "cpu_uint8"):
        out = build_quantized(info, ranges, PrecisionPlan.default(info, base="fp16"), variant=variant)
        onnx.checker.check_model(out)
        np.testing.assert_allclose(run(out, feed), run(model, feed), atol=0.05)
    assert set(qdq_by_tensor(build_quantized(info, ranges, PrecisionPlan.default(info)))) == {"masked"}


def test_cpu_uint8_params_and_fusion(tmp_path):
    info, feed, ranges = cnn_case()
    model = build_quantized(info, ranges, PrecisionPlan.default(info), variant="cpu_uint8")
    q = qdq_by_tensor(model)
    for t, (scale, zp, _) in q.items():
        r = ranges[t]
        lo, hi = min(max(r.min, -r.amax), 0.0), max(min(r.max, r.amax), 0.0)
        assert zp.dtype == np.uint8
        assert scale == np.float32((hi - lo) / 255)
        assert zp == np.clip(np.rint(-lo / scale), 0, 255)
    assert q["r1"][1] == 0  # a ReLU output starts at 0: zero point 0
    assert "c2" not in q  # conv2 -> relu2: no Q between a conv and its only ReLU
    session(model, tmp_path / "opt.onnx")
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert ops.count("QLinearConv") == 2, ops
    # the TensorRT-style file does not fuse like that in ONNX Runtime
    session(build_quantized(info, ranges, PrecisionPlan.default(info)), tmp_path / "opt_trt.onnx")
    assert "QLinearConv" not in [n.op_type for n in onnx.load(str(tmp_path / "opt_trt.onnx")).graph.node]


# ----------------------------------------------------------------------------- refusals
def test_existing_qdq_refused_or_respected():
    info, feed, ranges = cnn_case()
    quantized = ModelInfo(build_quantized(info, ranges, PrecisionPlan.default(info)))
    plan = PrecisionPlan.default(quantized)
    with pytest.raises(WorkbenchError, match="already contains quantization nodes"):
        build_quantized(quantized, ranges, plan)
    res = build(quantized, ranges, plan, allow_existing_qdq=True)
    assert len(nodes_of(res.model, "QuantizeLinear")) == len(nodes_of(quantized.model, "QuantizeLinear"))
    assert len(nodes_of(res.model, "DequantizeLinear")) == len(nodes_of(quantized.model, "DequantizeLinear"))
    assert any("existing Q/DQ" in n for n in res.notes)
    np.testing.assert_allclose(run(res.model, feed), run(quantized.model, feed), atol=1e-6)


def test_model_without_quantizable_nodes():
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "plain",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    info = ModelInfo(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    with pytest.raises(WorkbenchError, match="no node that can run in INT8"):
        build_quantized(info, {}, PrecisionPlan.default(info))
    # an FP16 plan of the same model is still a valid export
    onnx.checker.check_model(build_quantized(info, {}, PrecisionPlan.default(info, base="fp16")))


def test_missing_range_and_foreign_plan_and_bad_variant():
    info, feed, ranges = cnn_case()
    partial = {k: v for k, v in ranges.items() if k != "r2"}
    with pytest.raises(WorkbenchError, match="No calibrated range.*'r2' \\(read by add\\)"):
        build_quantized(info, partial, PrecisionPlan.default(info))
    bad = dict(ranges)
    bad["r2"] = SimpleNamespace(amax=0.0, min=0.0, max=0.0)
    with pytest.raises(WorkbenchError, match="'r2'.*must be finite and > 0"):
        build_quantized(info, bad, PrecisionPlan.default(info))
    other = ModelInfo(tm.small_cnn(seed=3))
    with pytest.raises(WorkbenchError, match="another model"):
        build_quantized(other, ranges, PrecisionPlan.default(info))
    with pytest.raises(WorkbenchError, match="variant"):
        build_quantized(info, ranges, PrecisionPlan.default(info), variant="tensorrt")


def test_source_model_not_modified():
    info, feed, ranges = cnn_case()
    before = info.model.SerializeToString()
    for variant in ("trt", "ort", "cpu_uint8"):
        build_quantized(info, ranges, PrecisionPlan.default(info, base="fp16"), variant=variant)
    assert info.model.SerializeToString() == before


# ------------------------------------------------------------------------- files, commands
def test_export_model_writes_files_and_commands(tmp_path):
    src = tm.save(tm.small_cnn(), tmp_path / "model.onnx")
    info = ModelInfo.from_path(src)
    feed = {"input": RNG.standard_normal((2, 3, 16, 16)).astype(np.float32)}
    ranges = observed_ranges(info.model, feed)
    plan = PrecisionPlan.default(info)
    res = export_model(info, ranges, plan, tmp_path / "out" / "model.trt.onnx")
    assert res.onnx_path.exists() and "TensorRT" in res.role
    onnx.checker.check_model(str(res.onnx_path))
    assert PrecisionPlan.load(res.plan_path, info) == plan
    cache = res.cache_path.read_text().splitlines()
    assert cache[0] == "TRT-8600-EntropyCalibration2"
    scale_hex = dict(line.rsplit(": ", 1) for line in cache[1:])
    assert scale_hex["r1"] == struct.pack(">f", ranges["r1"].amax / 127).hex()
    assert set(scale_hex) == set(ranges)
    cmds = res.commands
    assert "--stronglyTyped" in cmds["trtexec (TensorRT 10)"]
    assert str(res.onnx_path) in cmds["trtexec (TensorRT 11)"]
    assert "--strongly-typed" in cmds["polygraphy (TensorRT 10)"]
    ev = export_model(info, ranges, plan, tmp_path / "model.ort.onnx", variant="ort",
                      calibration_cache=False)
    assert ev.cache_path is None and ev.commands == {} and "evaluation" in ev.role
    assert any("not for TensorRT" in n for n in ev.notes)


def test_export_refuses_to_overwrite_the_input(tmp_path):
    src = tm.save(tm.small_cnn(), tmp_path / "model.onnx")
    before = open(src, "rb").read()
    info = ModelInfo.from_path(src)
    feed = {"input": RNG.standard_normal((1, 3, 16, 16)).astype(np.float32)}
    ranges = observed_ranges(info.model, feed)
    with pytest.raises(WorkbenchError, match="input file"):
        export_model(info, ranges, PrecisionPlan.default(info), src)
    with pytest.raises(WorkbenchError, match=r"\.onnx"):
        export_model(info, ranges, PrecisionPlan.default(info), tmp_path / "model.txt")
    assert open(src, "rb").read() == before


def test_engine_build_commands_quote_paths():
    cmds = engine_build_commands("/tmp/my model.onnx")
    assert cmds["trtexec (TensorRT 10)"] == (
        "trtexec --onnx='/tmp/my model.onnx' --stronglyTyped --saveEngine='/tmp/my model.engine'")
    assert "--int8" not in " ".join(cmds.values())


# --------------------------------------------------------------------------- sample model
@pytest.mark.slow
def test_sample_model_builds_every_variant(sample_model_path):
    """(Build time is measured by benchmarks/ui_responsiveness.py, not asserted here.)"""
    info = ModelInfo.from_path(sample_model_path)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)
    ranges = observed_ranges(info.model, {"input": x})
    for base in ("fp32", "fp16"):
        plan = PrecisionPlan.default(info, base)
        for variant in ("trt", "ort", "cpu_uint8"):
            onnx.checker.check_model(build_quantized(info, ranges, plan, variant=variant))
    plan = PrecisionPlan.default(info)
    assert len(plan.int8_nodes()) == 59  # 49 Conv + 9 residual Add + 1 Gemm
    model = build_quantized(info, ranges, plan, variant="ort")
    out = run(model, {"input": x})
    assert out.shape == (1, 1000) and np.isfinite(out).all()


def test_qdq_placement_matches_the_built_model():
    from workbench.export import qdq_placement

    model = _residual_model()
    info = ModelInfo(model)
    plan = PrecisionPlan.default(info)
    assert qdq_placement(info, plan) == {"conv_a": ["x"], "conv_b": ["ra"], "residual": ["ra"]}
    plan.set_node("conv_b", "fp16")
    assert qdq_placement(info, plan)["residual"] == ["b", "ra"]


def test_fp16_output_read_inside_a_subgraph_keeps_fp32_name():
    def branch(name, op):
        return helper.make_graph([helper.make_node(op, ["r"], [f"{name}_out"], name=f"{name}_n")],
                                 name, [], [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [2])])
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu"),
         helper.make_node("If", ["c"], ["y"], name="if", then_branch=branch("then", "Neg"),
                          else_branch=branch("else", "Abs"))],
        "sub", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
                helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    info = ModelInfo(model)
    plan = PrecisionPlan.default(info, base="fp16")
    assert plan.fp16_nodes() == ["relu"]  # If (control flow) is never converted
    out = build_quantized(info, {}, plan)
    onnx.checker.check_model(out)
    feed = {"x": np.array([-1.5, 2.25], np.float32), "c": np.array(True)}
    np.testing.assert_array_equal(run(out, feed), [-0.0, -2.25])
