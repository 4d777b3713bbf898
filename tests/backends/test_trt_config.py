"""TensorRT build settings without TensorRT: shapes and profiles, build configs, modes per version,
the timing cache, cache headers and the printed commands."""
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



# -- shapes and profiles -------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("input:1x3x224x224", {"input": (1, 3, 224, 224)}),
    ("input:[1,3,224,224]", {"input": (1, 3, 224, 224)}),
    ("ids:2x128,mask:2X128", {"ids": (2, 128), "mask": (2, 128)}),
    ("a:[1, 2] b:[3,4]", {"a": (1, 2), "b": (3, 4)}),
    ("serving_default:input:0:1x8", {"serving_default:input:0": (1, 8)}),
    (["x:4", "y:[5,6]"], {"x": (4,), "y": (5, 6)}),
    ("", {}),
    (None, {}),
])
def test_parse_shapes(text, expected):
    assert wtrt.parse_shapes(text) == expected


@pytest.mark.parametrize("bad", ["input", "input:", "input:1x0x3", "input:1xax3", ":1x2", "x:1,x:2"])
def test_parse_shapes_errors_name_the_item(bad):
    with pytest.raises(WorkbenchError) as err:
        wtrt.parse_shapes(bad)
    assert "input:1x3x224x224" in str(err.value) or "given twice" in str(err.value)


def test_format_shapes_round_trips():
    shapes = {"ids": (2, 128), "mask": (2, 128)}
    for style in ("trtexec", "polygraphy"):
        assert wtrt.parse_shapes(wtrt.format_shapes(shapes, style)) == shapes


def test_profile_from_model_dynamic_batch():
    model = tiny_models.small_cnn(batch="N")
    prof = wtrt.profile_from_model(model, batch=4, max_batch=16)
    assert prof == {"input": ((1, 3, 16, 16), (4, 3, 16, 16), (16, 3, 16, 16))}
    static = wtrt.profile_from_model(tiny_models.small_cnn(batch=2), batch=8)
    assert static["input"] == ((2, 3, 16, 16),) * 3  # a static batch wins over the request


def test_profile_from_model_refuses_to_guess_spatial_dims():
    specs = [TensorSpec("images", np.dtype(np.float32), ("N", 3, "H", "W"))]
    with pytest.raises(WorkbenchError) as err:
        wtrt.profile_from_model(specs)
    assert "'images'" in str(err.value) and "dimension 2" in str(err.value)
    assert "--shapes images:1x3x224x224" in str(err.value)


def test_profile_from_model_two_inputs(tmp_path):
    path = tiny_models.save(tiny_models.two_input_matmul(), tmp_path / "two.onnx")
    with pytest.raises(WorkbenchError, match="'input_ids'.*dimension 1"):
        wtrt.profile_from_model(path)
    config = wtrt.BuildConfig(shapes=wtrt.parse_shapes("input_ids:2x16,attention_mask:2x16"),
                              max_shapes=wtrt.parse_shapes("input_ids:8x64,attention_mask:8x64"))
    prof = wtrt.resolve_profile(path, config)
    assert prof["input_ids"] == ((2, 16), (2, 16), (8, 64))
    assert prof["attention_mask"] == ((2, 16), (2, 16), (8, 64))


def test_resolve_profile_mixes_derived_and_user_shapes():
    specs = [TensorSpec("a", np.dtype(np.float32), ("N", 3)),
             TensorSpec("b", np.dtype(np.float32), ("N", "T"))]
    config = wtrt.BuildConfig(min_shapes={"b": (1, 1)}, opt_shapes={"b": (4, 32)}, max_shapes={"b": (8, 64)},
                              batch=4, max_batch=8)
    prof = wtrt.resolve_profile(specs, config)
    assert prof == {"a": ((1, 3), (4, 3), (8, 3)), "b": ((1, 1), (4, 32), (8, 64))}


@pytest.mark.parametrize("config, message", [
    (dict(shapes={"images": (1, 3, 16, 16)}), "requested input 'images', the model has: 'input'"),
    (dict(shapes={"input": (1, 3, 16)}), "expected rank 4"),
    (dict(shapes={"input": (1, 4, 16, 16)}), "dimension 1 is fixed to 3"),
    (dict(min_shapes={"input": (4, 3, 16, 16)}, opt_shapes={"input": (2, 3, 16, 16)}), "min <= opt <= max"),
])
def test_resolve_profile_errors(config, message):
    with pytest.raises(WorkbenchError) as err:
        wtrt.resolve_profile(tiny_models.small_cnn(), wtrt.BuildConfig(**config))
    assert message in str(err.value)


def test_build_config_validation(tmp_path):
    with pytest.raises(WorkbenchError, match="legacy"):
        wtrt.BuildConfig(layer_precisions={"conv1": "fp16"}).validate()
    with pytest.raises(WorkbenchError, match="Calibration cache not found"):
        wtrt.BuildConfig(legacy_int8_cache=str(tmp_path / "none.cache")).validate()
    cache = tmp_path / "calib.cache"
    cache.write_text("TRT-8600-EntropyCalibration2\ninput: 3c010a14\n")
    with pytest.raises(WorkbenchError, match="unknown precision 'int4'"):
        wtrt.BuildConfig(legacy_int8_cache=str(cache), layer_precisions={"conv1": "int4"}).validate()
    with pytest.raises(WorkbenchError, match="workspace"):
        wtrt.BuildConfig(workspace_bytes=0).validate()
    wtrt.BuildConfig(legacy_int8_cache=str(cache), layer_precisions={"conv1": "FP16"}).validate()
    assert json.dumps(wtrt.BuildConfig(shapes={"x": (1, 2)}).to_dict())  # serialisable for the sidecar


def test_build_mode_per_tensorrt_version(tmp_path):
    cache = tmp_path / "c.cache"
    cache.write_text("TRT-8600-EntropyCalibration2\n")
    legacy = wtrt.BuildConfig(legacy_int8_cache=str(cache))
    assert wtrt.build_mode(legacy, 10) == "legacy_int8"
    assert wtrt.build_mode(legacy, 8) == "legacy_int8"
    with pytest.raises(WorkbenchError) as err:
        wtrt.build_mode(legacy, 11)
    assert "TensorRT 11" in str(err.value) and "Q/DQ" in str(err.value)
    weak = wtrt.BuildConfig(strongly_typed=False)
    assert wtrt.build_mode(weak, 10) == "weakly_typed"
    assert wtrt.build_mode(weak, 11) == "strongly_typed"  # the only mode there
    assert wtrt.build_mode(wtrt.BuildConfig(), 10) == "strongly_typed"
    assert wtrt.version_major("10.13.0.35") == 10 and wtrt.version_major(None) is None


# -- timing cache and calibration cache ---------------------------------------------
def test_default_timing_cache_path(tmp_path, monkeypatch):
    a = wtrt.default_timing_cache_path("10.13.0", "NVIDIA A100-SXM4-80GB", cache_dir=tmp_path)
    assert a.parent == tmp_path and a.name == "trt-10.13.0-nvidia-a100-sxm4-80gb.timing"
    assert a == wtrt.default_timing_cache_path("10.13.0", "NVIDIA A100-SXM4-80GB", cache_dir=tmp_path)
    assert a != wtrt.default_timing_cache_path("10.13.0", "NVIDIA L4", cache_dir=tmp_path)
    assert a != wtrt.default_timing_cache_path("11.1.0", "NVIDIA A100-SXM4-80GB", cache_dir=tmp_path)
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "env"))
    assert wtrt.default_timing_cache_path("10.0", "g").parent == tmp_path / "env" / "trt"


def test_read_cache_header(tmp_path):
    good = tmp_path / "good.cache"
    good.write_text("TRT-100300-MinMaxCalibration\nx: 3f800000\n")
    assert wtrt.read_cache_header(good) == (100300, "MinMaxCalibration")
    bad = tmp_path / "bad.cache"
    bad.write_text("hello\n")
    with pytest.raises(WorkbenchError, match="not a TensorRT calibration cache"):
        wtrt.read_cache_header(bad)
    legacy = tmp_path / "legacy.cache"
    legacy.write_text("TRT-8600-LegacyCalibration\n")
    with pytest.raises(WorkbenchError, match="LegacyCalibration"):
        wtrt.read_cache_header(legacy)


def test_trt_build_command_versions():
    t10, p10 = wtrt.trt_build_command("m.onnx", "input:1x3x224x224", 10, timing_cache="t.cache")
    t11, p11 = wtrt.trt_build_command("m.onnx", {"input": (1, 3, 224, 224)}, 11)
    assert t10.startswith("trtexec --onnx=m.onnx") and "--stronglyTyped" in t10
    assert "--stronglyTyped" not in t11  # always on (and a no-op) in TensorRT 11
    assert "--optShapes=input:1x3x224x224" in t10 and "--timingCacheFile=t.cache" in t10
    assert "--saveEngine=m.engine" in t11 and "--exportLayerInfo=m.engine.layers.json" in t11
    assert p10.startswith("polygraphy convert m.onnx --strongly-typed -o m.engine")
    assert "--trt-opt-shapes 'input:[1,3,224,224]'" in p10 and "--save-timing-cache t.cache" in p10
    (rtx,) = wtrt.trt_build_command("m.onnx", {"input": (1, 3, 224, 224)}, flavor="rtx",
                                    compute_capabilities=["8.6", "12.0"])
    assert rtx.startswith("POLYGRAPHY_USE_TENSORRT_RTX=1 polygraphy convert m.onnx -o m.engine")
    assert rtx.endswith("--compute-capabilities 8.6 12.0")
    for cmd in (t10, t11, p10, p11, rtx):
        assert "--int8" not in cmd and "--fp16" not in cmd and "--calib" not in cmd
    (unknown, _) = wtrt.trt_build_command("m.onnx")
    assert "--stronglyTyped" in unknown  # required on 10, harmless on 11


# -- without TensorRT ----------------------------------------------------------------
