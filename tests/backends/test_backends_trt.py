"""TensorRT backend: everything that does not need TensorRT runs everywhere; the tests
marked ``needs_gpu`` need TensorRT (or TensorRT-RTX) and a GPU it supports, and build and run
real engines (tests/test_trt_build.py builds with the real builder without a GPU). No test
here fakes a TensorRT result."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
from enum import Enum
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import tiny_models
from trt_marks import needs_gpu
from workbench.backends import get_runner, trt_inspect
from workbench.backends import trt as wtrt
from workbench.backends.base import TensorSpec
from workbench.cli.trt import register
from workbench.errors import WorkbenchError

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "trt_inspector"
TRT10 = DATA / "trt10_detailed_qdq_small_cnn.json"
TRT11 = DATA / "trt11_detailed_qdq_small_cnn.json"
OLD = DATA / "trt85_no_metadata_fused_names.json"
NAMES_ONLY = DATA / "trt10_layer_names_only.json"



def _ranges(model, x):
    """amax per float tensor from one ONNX Runtime run (enough for a test engine)."""
    from workbench.backends import OrtRunner
    from workbench.graph.model import ModelInfo

    names = sorted(ModelInfo(model).float_tensors())
    outs = OrtRunner(model, output_names=names, threads=1).infer({"input": x})
    return {n: SimpleNamespace(amax=float(np.abs(v).max()) or 1.0, min=float(v.min()), max=float(v.max()))
            for n, v in outs.items()}


def _qdq_small_cnn(x):
    from workbench.export import build_quantized
    from workbench.graph.model import ModelInfo
    from workbench.precision.plan import PrecisionPlan

    model = tiny_models.small_cnn()
    info = ModelInfo(model)
    return build_quantized(info, _ranges(model, x), PrecisionPlan.default(info), variant="trt")


@pytest.fixture
def calib_x():
    return np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)


@needs_gpu
def test_trt_fp32_engine_matches_onnx_runtime(tmp_path, calib_x):
    model = tiny_models.save(tiny_models.small_cnn(), tmp_path / "cnn.onnx")
    engine = tmp_path / "cnn.engine"
    report = wtrt.build_engine(model, engine, wtrt.BuildConfig(
        batch=4, max_batch=8, timing_cache=str(tmp_path / "t.cache")))
    assert engine.stat().st_size == report.engine_bytes > 0
    sidecar = json.loads(wtrt.sidecar_path(engine).read_text())
    assert sidecar["tensorrt_version"] == wtrt.trt_version() and sidecar["mode"] == "strongly_typed"
    assert sidecar["onnx_sha256"] == wtrt.file_sha256(model)
    assert sidecar["profile"]["input"] == {"min": [1, 3, 16, 16], "opt": [4, 3, 16, 16], "max": [8, 3, 16, 16]}
    ref = get_runner(model, backend="ort").infer({"input": calib_x})["logits"]
    with get_runner(engine, backend="trt") as runner:
        out = runner.infer({"input": calib_x})["logits"]
        with pytest.raises(WorkbenchError, match="outside the engine's optimization profile"):
            runner.infer({"input": np.zeros((9, 3, 16, 16), np.float32)})
        stats = runner.measure_latency({"input": calib_x}, warmup=3, repeat=10)
    np.testing.assert_allclose(out, ref, rtol=1e-2, atol=1e-3)  # TF32 is off by default in Polygraphy
    assert stats.backend == "trt" and stats.runs == 10 and stats.median_ms > 0


@needs_gpu
def test_trt_qdq_engine_runs_int8_layers(tmp_path, calib_x):
    import onnx

    qdq = _qdq_small_cnn(calib_x)
    path = tmp_path / "cnn_qdq.onnx"
    onnx.save(qdq, str(path))
    engine = tmp_path / "cnn_qdq.engine"
    wtrt.build_engine(path, engine, wtrt.BuildConfig(batch=4, timing_cache=str(tmp_path / "t.cache")))
    df = trt_inspect.layers_dataframe(wtrt.inspect_engine(engine))
    int8 = df[(df["precision"] == "INT8") & df["is_compute"]]
    assert len(int8) > 0, df[["name", "precision"]]
    assert trt_inspect.node_precisions(df).get("conv1") == "INT8"
    ref = get_runner(path, backend="ort").infer({"input": calib_x})["logits"]
    out = get_runner(engine, backend="trt").infer({"input": calib_x})["logits"]
    assert np.corrcoef(out.ravel(), ref.ravel())[0, 1] > 0.99  # same quantized graph, other kernels


@needs_gpu
def test_trt_timing_cache_is_reused(tmp_path):
    model = tiny_models.save(tiny_models.small_cnn(channels=3, size=32), tmp_path / "cnn.onnx")
    cache = tmp_path / "timing.cache"
    first = wtrt.build_engine(model, tmp_path / "a.engine", wtrt.BuildConfig(timing_cache=str(cache)))
    assert cache.is_file() and not first.timing_cache_existed
    second = wtrt.build_engine(model, tmp_path / "b.engine", wtrt.BuildConfig(timing_cache=str(cache)))
    assert second.timing_cache_existed
    assert second.build_seconds < first.build_seconds


@needs_gpu
def test_trt_legacy_path_per_version(tmp_path, calib_x):
    model = tiny_models.small_cnn()
    path = tiny_models.save(model, tmp_path / "cnn.onnx")
    lines = ["TRT-8600-EntropyCalibration2"]
    for name, r in _ranges(model, calib_x).items():
        lines.append(f"{name}: {struct.pack('>f', r.amax / 127.0).hex()}")
    cache = tmp_path / "calib.cache"
    cache.write_text("\n".join(lines) + "\n")
    config = wtrt.BuildConfig(legacy_int8_cache=str(cache), batch=4)
    if wtrt.version_major(wtrt.trt_version()) >= 11:
        with pytest.raises(WorkbenchError, match="does not exist in TensorRT"):
            wtrt.build_engine(path, tmp_path / "legacy.engine", config)
        return
    wtrt.build_engine(path, tmp_path / "legacy.engine", config)
    df = trt_inspect.layers_dataframe(wtrt.inspect_engine(tmp_path / "legacy.engine"))
    assert (df["precision"] == "INT8").any()


@needs_gpu
@pytest.mark.slow
def test_trt_sample_model_matches_onnx_runtime(tmp_path, sample_model_path):
    engine = tmp_path / "sample.engine"
    wtrt.build_engine(sample_model_path, engine, wtrt.BuildConfig(timing_cache=str(tmp_path / "t.cache")))
    ort_runner = get_runner(sample_model_path, backend="ort")
    spec = ort_runner.input_specs[0]
    x = np.random.default_rng(1).standard_normal(
        tuple(d if isinstance(d, int) else 1 for d in spec.shape)).astype(np.float32)
    ref = next(iter(ort_runner.infer({spec.name: x}).values()))
    out = next(iter(get_runner(engine, backend="trt").infer({spec.name: x}).values()))
    assert np.argmax(out, -1).tolist() == np.argmax(ref, -1).tolist()
    np.testing.assert_allclose(out, ref, rtol=2e-2, atol=2e-2)
