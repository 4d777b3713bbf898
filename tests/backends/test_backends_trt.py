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


@pytest.fixture
def no_tensorrt(monkeypatch):
    """Make ``import tensorrt`` and ``import tensorrt_rtx`` fail even where they are installed."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", None)


def _cli(argv):
    import argparse

    parser = argparse.ArgumentParser(prog="workbench")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


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
def _assert_install_message(text):
    assert "pip install 'workbench[trt]'" in text and "tensorrt" in text and "GPU" in text


def test_missing_tensorrt_gives_one_clear_error(no_tensorrt, tmp_path):
    model = tiny_models.save(tiny_models.small_cnn(), tmp_path / "m.onnx")
    ok, reason = wtrt.trt_available()
    assert ok is False
    _assert_install_message(reason)
    assert wtrt.trt_version() is None
    for call in (lambda: wtrt.build_engine(model, tmp_path / "m.engine"),
                 lambda: get_runner(tmp_path / "m.engine", backend="trt"),
                 lambda: wtrt.TrtRunner(b"plan").infer({}),
                 lambda: wtrt.inspect_engine(tmp_path / "m.engine")):
        with pytest.raises(WorkbenchError) as err:
            call()
        _assert_install_message(str(err.value))
        assert err.value.__cause__ is None  # no chained traceback for a missing package
    assert not (tmp_path / "m.engine").exists()


def test_build_checks_user_files_before_tensorrt(tmp_path):
    with pytest.raises(WorkbenchError, match="ONNX model not found: '.*missing.onnx'"):
        wtrt.build_engine(tmp_path / "missing.onnx", tmp_path / "x.engine")
    model = tiny_models.save(tiny_models.small_cnn(), tmp_path / "m.onnx")
    with pytest.raises(WorkbenchError, match="Refusing to write"):
        wtrt.build_engine(model, model)


def test_modules_import_without_tensorrt():
    code = ("import sys; sys.modules['tensorrt'] = sys.modules['tensorrt_rtx'] = None\n"
            "import workbench, workbench.backends, workbench.backends.trt, workbench.backends.trt_inspect, "
            "workbench.cli.trt, workbench.backends.ort\n"
            "from workbench.backends.trt import trt_available\n"
            "print(trt_available()[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    lazy = subprocess.run([sys.executable, "-c", "import sys, workbench.backends; "
                           "print('tensorrt' in sys.modules, 'tensorrt_rtx' in sys.modules, "
                           "'polygraphy.backend.trt' in sys.modules, "
                           "any(m.startswith('workbench.backends.trt') for m in sys.modules))"],
                          capture_output=True, text=True, timeout=120)
    assert lazy.stdout.split() == ["False"] * 4, lazy.stderr


def test_cli_without_tensorrt_exits_2(no_tensorrt, tmp_path, capsys):
    model = tiny_models.save(tiny_models.small_cnn(), tmp_path / "m.onnx")
    assert _cli(["build", model, "-o", str(tmp_path / "m.engine"), "--shapes", "input:1x3x16x16"]) == 2
    err = capsys.readouterr().err
    assert "no TensorRT builder can be used here" in err and "tensorrt-rtx" in err
    _assert_install_message(err)
    assert _cli(["inspect-engine", str(tmp_path / "m.engine")]) == 2
    err = capsys.readouterr().err
    assert "cannot be inspected here" in err
    _assert_install_message(err)
    assert not (tmp_path / "m.engine").exists()


def test_cli_flag_mistakes_are_reported_even_without_tensorrt(no_tensorrt, tmp_path):
    with pytest.raises(WorkbenchError, match="Cannot read the shape"):
        _cli(["build", "m.onnx", "-o", "m.engine", "--shapes", "input=1x3"])
    with pytest.raises(WorkbenchError, match="NODE:PRECISION"):
        _cli(["build", "m.onnx", "-o", "m.engine", "--layer-precision", "conv1"])


def test_cli_print_commands_and_help(no_tensorrt, capsys):
    assert _cli(["build", "q.onnx", "-o", "q.engine", "--shapes", "input:1x3x16x16", "--print-commands"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("trtexec --onnx=q.onnx --stronglyTyped --saveEngine=q.engine")
    assert lines[1].startswith("polygraphy convert q.onnx --strongly-typed -o q.engine")
    for command in ("build", "inspect-engine"):
        with pytest.raises(SystemExit) as ex:
            _cli([command, "--help"])
        assert ex.value.code == 0
    assert "--timing-cache" in capsys.readouterr().out


def test_cli_inspect_saved_json_needs_no_tensorrt(no_tensorrt, tmp_path, capsys):
    csv = tmp_path / "layers.csv"
    assert _cli(["inspect-engine", str(TRT11), "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "8 layers (trt11 inspector layout)" in out and "INT8 4" in out
    table = pd.read_csv(csv)
    assert list(table["name"])[1] == "conv1 + relu1" and table["precision"][1] == "INT8"
    assert "conv1" in table["onnx_nodes"][1].split(";")


# -- inspector JSON ----------------------------------------------------------------
@pytest.mark.parametrize("text, precision", [
    ("Row major linear FP32", "FP32"),
    ("Row major linear FP16 format", "FP16"),
    ("Channel major FP16 format where channel % 16 == 0", "FP16"),
    ("Thirty-two wide channel vectorized row major Int8 format.", "INT8"),
    ("Row major INT8 format where column stride % 64 == 0", "INT8"),
    ("Row major linear UInt8 format", "UINT8"),
    ("Row major linear BFloat16 format", "BF16"),
    ("Row major linear FP8 format", "FP8"),
    ("Row major linear Int32", "INT32"),
    ("Row major linear BOOL", "BOOL"),
    ("Half", "FP16"), ("Float", "FP32"), ("Int8", "INT8"),
    ("N/A due to dynamic shapes", None),
])
def test_precision_from_documented_format_strings(text, precision):
    assert trt_inspect.precision_from_text(text) == precision


def test_tensor_fields_of_both_layouts():
    assert trt_inspect.tensor_precision_format(
        {"Format/Datatype": "Channel major FP16 format where channel % 8 == 0"})[0] == "FP16"
    assert trt_inspect.tensor_precision_format(
        {"Datatype": "Int8", "Format": "Thirty-two wide channel vectorized row major format (kCHW32)"}) == (
        "INT8", "Thirty-two wide channel vectorized row major format (kCHW32)")
    assert trt_inspect.tensor_precision_format({"DataType": "Half", "Format": "kHWC8"})[0] == "FP16"
    # the data type field wins over a format text naming another type
    assert trt_inspect.tensor_precision_format({"Datatype": "Int8", "Format": "Row major linear FP32"})[0] == "INT8"


def test_onnx_origins_from_metadata_and_names():
    meta = "[ONNX Layer: /conv1/Conv]\x1e[ONNX Layer: /act/Relu]\x1f[ONNX Layer: /conv1/Conv]"
    assert trt_inspect.onnx_nodes_from_metadata(meta) == ["/conv1/Conv", "/act/Relu"]
    assert trt_inspect.onnx_nodes_from_metadata(None) == []
    assert trt_inspect.onnx_nodes_from_name("PWN(PWN(a, b), c) + d") == ["a", "b", "c", "d"]
    assert trt_inspect.onnx_nodes_from_name("Reformatting CopyNode for Input Tensor 0 to conv") == []
    assert trt_inspect.onnx_nodes_from_name("conv1 + relu1 [profile 1]") == ["conv1", "relu1"]


def test_both_layouts_give_the_same_layer_table():
    a, b = trt_inspect.layers_dataframe(TRT10), trt_inspect.layers_dataframe(TRT11)
    assert trt_inspect.detect_layout(trt_inspect.load_engine_info(TRT10)) == "trt10"
    assert trt_inspect.detect_layout(trt_inspect.load_engine_info(TRT11)) == "trt11"
    cols = ["name", "type", "precision", "input_precisions", "output_precisions", "onnx_nodes", "is_compute"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    conv1 = a.set_index("name").loc["conv1 + relu1"]
    assert conv1["precision"] == "INT8" and conv1["type"] == "Convolution"
    assert conv1["layer_type"] == "CaskConvolution"
    assert {"conv1", "relu1", "input_DequantizeLinear"} <= set(conv1["onnx_nodes"])
    assert a.set_index("name").loc["gap", "output_precisions"] == ["FP16"]
    assert not a.set_index("name").loc["Reformatting CopyNode for Input Tensor 0 to flatten + fc", "is_compute"]


def test_precision_summary_counts_compute_layers_only():
    df = trt_inspect.layers_dataframe(TRT10)
    summary = trt_inspect.precision_summary(df)
    expected = df[df["layer_type"] != "Reformat"]["precision"].value_counts()
    assert summary.to_dict() == expected.to_dict() == {"INT8": 4, "FP16": 1, "FP32": 1}
    assert list(summary.index) == ["INT8", "FP16", "FP32"]  # lowest precision first
    everything = trt_inspect.precision_summary(df, compute_only=False)
    assert everything["FP16"] == 3


def test_io_tensors_of_both_layouts():
    t10 = trt_inspect.io_tensors(TRT10)
    assert list(t10["name"]) == ["input", "logits"] and t10["mode"].isna().all()
    t11 = trt_inspect.io_tensors(TRT11)
    assert list(t11["mode"]) == ["Input", "Output"] and list(t11["dtype"]) == ["FP32", "FP32"]
    assert t11["shape"][0] == (-1, 3, 16, 16)


def test_names_only_and_no_metadata_engines():
    names = trt_inspect.layers_dataframe(NAMES_ONLY)
    assert trt_inspect.detect_layout(trt_inspect.load_engine_info(NAMES_ONLY)) == "names_only"
    assert names["precision"].isna().all()
    assert names.set_index("name").loc["conv2 + relu2 + add", "onnx_nodes"] == ["conv2", "relu2", "add"]
    old = trt_inspect.layers_dataframe(OLD)
    assert old.loc[0, "precision"] is None and not old.loc[0, "is_compute"]  # dynamic shapes, NoOp
    assert trt_inspect.node_precisions(old) == {
        "/stem/conv/Conv": "FP16", "/stem/act/Relu": "FP16", "/blk/act/Sigmoid": "FP16",
        "/blk/act/Mul": "FP16", "/blk/Add": "FP16", "/head/Gemm": "FP32"}


def test_node_precision_prefers_lowest_compute_precision():
    info = {"Layers": [
        {"Name": "a", "LayerType": "CaskConvolution", "Metadata": "[ONNX Layer: conv]",
         "Inputs": [{"Name": "x", "Format/Datatype": "Row major linear FP32"}], "Outputs": []},
        {"Name": "b", "LayerType": "CaskConvolution", "Metadata": "[ONNX Layer: conv]",
         "Inputs": [{"Name": "y", "Format/Datatype": "Row major Int8 format"}], "Outputs": []},
        {"Name": "Reformatting CopyNode", "LayerType": "Reformat", "Metadata": "[ONNX Layer: conv]\x1e[ONNX Layer: cast]",
         "Inputs": [{"Name": "z", "Format/Datatype": "Half"}], "Outputs": []},
    ]}
    assert trt_inspect.node_precisions(trt_inspect.layers_dataframe(info)) == {"conv": "INT8", "cast": "FP16"}


class _Precision(Enum):
    INT8 = "int8"
    FP16 = "fp16"
    FP32 = "fp32"


def test_compare_with_plan_reports_mismatches():
    df = trt_inspect.layers_dataframe(TRT11)
    plan = {"conv1": _Precision.INT8, "conv2": "int8", "add": "INT8", "maxpool": "int8", "gap": "INT8",
            "fc": _Precision.INT8, "ghost": "fp16"}
    diff = trt_inspect.compare_with_plan(df, plan)
    assert list(diff["node"]) == ["fc", "ghost"]
    fc = diff.set_index("node").loc["fc"]
    assert (fc["planned"], fc["actual"], fc["status"]) == ("INT8", "FP16", "different")
    assert fc["engine_layers"] == ["flatten + fc"]
    assert diff.set_index("node").loc["ghost", "status"] == "missing"
    assert list(trt_inspect.compare_with_plan(df, plan, include_missing=False)["node"]) == ["fc"]
    agree = {"conv1": "INT8", "fc": "FP16", "input_QuantizeLinear": "fp32"}
    assert trt_inspect.compare_with_plan(df, agree).empty
    unknown = trt_inspect.compare_with_plan(trt_inspect.layers_dataframe(NAMES_ONLY), {"conv1": "INT8"})
    assert list(unknown["status"]) == ["unknown"]


def test_load_engine_info_inputs(tmp_path):
    info = trt_inspect.load_engine_info(TRT10)
    assert trt_inspect.load_engine_info(json.dumps(info))["Bindings"] == ["input", "logits"]
    assert len(trt_inspect.load_engine_info(json.dumps(info["Layers"]))["Layers"]) == 8
    with pytest.raises(WorkbenchError, match="not found"):
        trt_inspect.load_engine_info(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(WorkbenchError, match="bad.json' is not valid JSON"):
        trt_inspect.load_engine_info(tmp_path / "bad.json")
    with pytest.raises(WorkbenchError, match="'Layers' list"):
        trt_inspect.load_engine_info({"Bindings": []})


# -- on a GPU machine with TensorRT --------------------------------------------------
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
