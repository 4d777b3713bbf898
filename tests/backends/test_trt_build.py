"""Every kind of model the exporter writes, built by a real TensorRT builder.

These tests run where a TensorRT builder is usable (CI installs TensorRT-RTX, whose builder
needs no GPU) and skip with the workbench's own reason otherwise. Where TensorRT-RTX built the
engine, its builder log's layer table (TensorRT's output, not ours) is compared with the plan:
every Conv / Gemm / MatMul must run in the precision the plan asked for."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import onnx
import pytest

import realistic_models as rm
import tiny_models as tm
import trt_models
from trt_models import WEIGHTED, _op, assert_builder_agrees_with_plan, export, feed_cnn, observed_ranges  # noqa: F401
from trt_marks import STATUS, needs_builder, needs_rtx
from workbench.backends import trt_inspect
from workbench.backends.trt_build import build_engine, layers_path, sidecar_path
from workbench.backends.trt_config import BuildConfig
from workbench.errors import WorkbenchError
from workbench.export import build_quantized
from workbench.graph.model import ModelInfo
from workbench.precision.plan import PrecisionPlan

pytestmark = needs_builder
def build(path, **config):
    engine = path.with_suffix(".engine")
    return build_engine(path, engine, BuildConfig(**config)), engine


def assert_record(report, engine):
    assert engine.stat().st_size == report.engine_bytes > 0
    record = json.loads(sidecar_path(engine).read_text())
    assert record["flavor"] == STATUS.flavor and record["tensorrt"] == STATUS.label
    assert record["engine_bytes"] == report.engine_bytes and record["build_seconds"] > 0
    assert record["targets"] and record["runnable_here"] == STATUS.can_run
    if not STATUS.can_run:
        assert "GPU" in record["runtime_note"]


# -- the kinds of files the exporter writes ------------------------------------------
def test_all_int8_qdq(tmp_path):
    path, plan, info = export(tmp_path, tm.small_cnn(), feed_cnn())
    report, engine = build(path)
    assert_record(report, engine)
    assert report.mode == "strongly_typed"
    assert_builder_agrees_with_plan(report, plan, info)
    assert report.profile["input"] == {"min": [1, 3, 16, 16], "opt": [1, 3, 16, 16], "max": [1, 3, 16, 16]}


def test_mixed_int8_fp16_and_fp32_overrides(tmp_path):
    def edit(plan):
        plan.set_node("conv2", "fp16")
        plan.set_node("fc", "fp32")

    path, plan, info = export(tmp_path, tm.small_cnn(), feed_cnn(), edit)
    assert plan.precision("conv1").name == "INT8" and plan.precision("conv2").name == "FP16"
    report, engine = build(path)
    assert_builder_agrees_with_plan(report, plan, info)


def test_fp16_base_plan(tmp_path):
    path, plan, info = export(tmp_path, tm.residual_cnn(), feed_cnn(channels=4, size=8), base="fp16")
    assert plan.fp16_nodes() and plan.int8_nodes()
    report, engine = build(path)
    assert_record(report, engine)
    assert_builder_agrees_with_plan(report, plan, info)


def test_manual_amax_override(tmp_path):
    path, plan, info = export(tmp_path, tm.small_cnn(), feed_cnn(), lambda p: p.set_amax("r1", 0.5))
    scale = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    assert any(np.isclose(v, 0.5 / 127) for k, v in scale.items() if k.startswith("r1") and v.size == 1)
    report, _ = build(path)
    assert_builder_agrees_with_plan(report, plan, info)


def test_opset12_constant_weights_upgraded(tmp_path):
    model = tm.small_cnn(opset=12, weights_as_constants=True)
    path, plan, info = export(tmp_path, model, feed_cnn())
    assert max(o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx")) >= 13
    report, _ = build(path)
    assert_builder_agrees_with_plan(report, plan, info)


def test_ctc_recognizer_opset12_constants(tmp_path):
    model = rm.recognizer_ctc()
    feed = {"image": np.stack([d["image"] for d in rm.text_line_data(4)])}
    path, plan, info = export(tmp_path, model, feed)
    report, _ = build(path, shapes={"image": (1, 1, 16, 64)})
    assert_builder_agrees_with_plan(report, plan, info)


@pytest.mark.parametrize("make", [
    lambda: trt_models.tiny_transformer(opset=17),
    lambda: rm.transformer_block(opset=13),
    lambda: rm.transformer_block(opset=17),
], ids=["layernorm_op17", "decomposed_ln_op13", "realistic_op17"])
def test_transformer_int64_inputs(tmp_path, make):
    model = make()
    seq = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    feed = {"input_ids": np.random.default_rng(0).integers(4, 32, (2, seq)).astype(np.int64)}
    path, plan, info = export(tmp_path, model, feed)
    assert any(_op(info, n) == "MatMul" for n in plan.int8_nodes())
    report, engine = build(path, batch=2, max_batch=4)
    assert report.profile["input_ids"]["max"] == [4, seq]
    assert_builder_agrees_with_plan(report, plan, info)
    if report.builder_layers:  # TensorRT saw the int64 token ids as they are
        io = json.loads(layers_path(engine).read_text())["I/O Tensors"]
        assert {t["Name"]: t["DataType"] for t in io}["input_ids"] == "Int64"


def test_two_inputs_int64_and_float(tmp_path):
    feed = {"input_ids": np.random.default_rng(0).integers(0, 32, (2, 5)).astype(np.int64),
            "attention_mask": np.ones((2, 5), np.float32)}
    path, plan, info = export(tmp_path, tm.two_input_matmul(), feed)
    report, _ = build(path, shapes={"input_ids": (2, 5), "attention_mask": (2, 5)})
    assert_builder_agrees_with_plan(report, plan, info)


def test_dynamic_height_width_needs_and_uses_shapes(tmp_path):
    path, plan, info = export(tmp_path, trt_models.dynamic_hw_cnn(), feed_cnn(1, 32, name="image"))
    with pytest.raises(WorkbenchError, match="'image'.*dimension 2.*--shapes image:1x3x224x224"):
        build(path)
    report, _ = build(path, min_shapes={"image": (1, 3, 32, 32)}, opt_shapes={"image": (1, 3, 64, 64)},
                      max_shapes={"image": (2, 3, 128, 128)})
    assert report.profile["image"] == {"min": [1, 3, 32, 32], "opt": [1, 3, 64, 64], "max": [2, 3, 128, 128]}
    assert_builder_agrees_with_plan(report, plan, info)


@pytest.mark.parametrize("make, data, name", [
    (rm.classifier_relu6, rm.image_data, "image"),
    (rm.detector_dbnet, rm.detector_data, None),
    (rm.orientation_classifier, rm.orientation_data, None),
], ids=["classifier_relu6", "detector_dbnet", "orientation"])
def test_realistic_models(tmp_path, make, data, name):
    model = make()
    samples = data(4)
    key = next(iter(samples[0]))
    feed = {key: np.stack([s[key] for s in samples])}
    path, plan, info = export(tmp_path, model, feed)
    report, _ = build(path)
    assert_builder_agrees_with_plan(report, plan, info)


# -- what the build records ----------------------------------------------------------
def test_fp32_comparison_and_engine_unit(tmp_path):
    fp32 = tm.save(tm.small_cnn(channels=8, size=32), tmp_path / "fp32.onnx")
    path, _, _ = export(tmp_path, onnx.load(fp32), feed_cnn(channels=8, size=32))
    report, engine = build(path, compare_fp32=fp32)
    assert report.fp32["engine_bytes"] > 0 and report.fp32["build_seconds"] > 0
    assert report.fp32["size_ratio"] == pytest.approx(report.engine_bytes / report.fp32["engine_bytes"], rel=1e-3)
    with pytest.raises(WorkbenchError, match="already (exist|has)"):
        build_engine(path, engine, BuildConfig(), overwrite=False)
    with pytest.raises(WorkbenchError, match="input"):
        build_engine(path, tmp_path / "fp32.onnx", BuildConfig(compare_fp32=fp32))
    assert onnx.load(fp32)  # the input is intact


@needs_rtx
def test_rtx_compute_capability_targets(tmp_path):
    path, _, _ = export(tmp_path, tm.small_cnn(), feed_cnn())
    report, _ = build(path, compute_capabilities=["8.6", "12.0"])
    assert report.targets == ["8.6", "12.0"]
    with pytest.raises(WorkbenchError, match="compute capability '8.x'"):
        build(path, compute_capabilities=["8.x"])
    with pytest.raises(WorkbenchError, match="cannot build for compute capability 9.0; it knows: .*8.6"):
        build(path, compute_capabilities=["9.0"])


@needs_rtx
def test_builder_error_names_the_onnx_node(tmp_path):
    """Turing (7.5) has no FP32 GEMM in TensorRT-RTX: the FP32 Gemm 'fc' is refused by name."""
    path = tm.save(tm.small_cnn(), tmp_path / "fp32.onnx")
    with pytest.raises(WorkbenchError) as err:
        build_engine(path, tmp_path / "x.engine", BuildConfig(compute_capabilities=["7.5"]))
    text = str(err.value)
    assert STATUS.label in text and "'fc' (Gemm)" in text and "FP32 GEMM is not supported" in text
    assert "/_src/" not in text and err.value.__cause__ is None
    assert not (tmp_path / "x.engine").exists()


@needs_rtx
def test_a_failed_build_does_not_spoil_the_next_one(tmp_path):
    """TensorRT-RTX 1.7.1 builds the Q/DQ network after a failed build without its INT8 (FP32
    convolutions, a 2.4x larger engine) unless a build happens in between; build_engine does one."""
    path, plan, info = export(tmp_path, tm.small_cnn(channels=8, size=32), feed_cnn(channels=8, size=32))
    before, _ = build(path)
    with pytest.raises(WorkbenchError, match="FP32 GEMM"):
        build_engine(tm.save(tm.small_cnn(), tmp_path / "fp32.onnx"), tmp_path / "x.engine",
                     BuildConfig(compute_capabilities=["7.5"]))
    after = build_engine(path, tmp_path / "after.engine", BuildConfig())
    assert after.builder_layers["weights"] == before.builder_layers["weights"] == {"INT8": 3}
    assert after.engine_bytes == pytest.approx(before.engine_bytes, rel=0.02)
    assert_builder_agrees_with_plan(after, plan, info)


def test_parser_error_names_the_onnx_node(tmp_path):
    model = tm.small_cnn()
    relu = next(n for n in model.graph.node if n.name == "relu1")
    relu.op_type, relu.domain = "MadeUpOp", "example.custom"
    model.opset_import.append(onnx.helper.make_opsetid("example.custom", 1))
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    with pytest.raises(WorkbenchError) as err:
        build_engine(path, tmp_path / "custom.engine", BuildConfig())
    text = str(err.value)
    assert "could not parse" in text and "'relu1'" in text and "MadeUpOp" in text
    assert not (tmp_path / "custom.engine").exists()


@pytest.mark.slow
def test_sample_int8_vs_fp32(tmp_path, sample_model_path):
    """The sample's default Q/DQ export next to the FP32 model, built the same way."""
    info = ModelInfo.from_path(sample_model_path)
    x = np.random.default_rng(0).uniform(-2, 2, (2, 3, 224, 224)).astype(np.float32)
    plan = PrecisionPlan.default(info)
    path = tmp_path / "sample_q.onnx"
    onnx.save(build_quantized(info, observed_ranges(info.model, {"input": x}), plan, variant="trt"), str(path))
    report, engine = build(path, compare_fp32=str(sample_model_path))
    assert_record(report, engine)
    assert report.fp32["engine_bytes"] > 0
    assert_builder_agrees_with_plan(report, plan, info)
    if report.builder_layers:
        assert report.builder_layers["weights"].get("INT8", 0) == sum(
            1 for n in plan.int8_nodes() if _op(info, n) in WEIGHTED)


@needs_rtx
def test_on_hopper_tensorrt_rtx_builds_but_refuses_to_run(tmp_path, monkeypatch):
    """An H200 (compute capability 9.0) is described to the probe: the build works (build-only),
    the record and every attempt to run name 9.0 and the supported list."""
    import workbench.backends.trt_status as status_module
    from workbench.backends import get_runner
    from workbench.backends.gpu import GpuInfo

    monkeypatch.setattr(status_module, "probe_gpu", lambda device=0: (GpuInfo("NVIDIA H200", (9, 0)), ""))
    path, _, _ = export(tmp_path, tm.small_cnn(), feed_cnn())
    report, engine = build(path)
    assert not report.runnable_here and report.gpu == "NVIDIA H200 (compute capability 9.0)"
    for text in (report.runtime_note, report.describe()):
        assert "9.0" in text and "8.0, 8.6, 8.9, 12.0" in text and "Hopper" in text
    for run in (lambda: get_runner(str(engine), backend="trt").activate(),
                lambda: get_runner(str(path), backend="trt")):
        with pytest.raises(WorkbenchError, match=r"Cannot run .*compute capability 9\.0"):
            run()
