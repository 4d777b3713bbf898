"""Export: every variant checks and runs, refusals, the files and commands written, the sample."""
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
