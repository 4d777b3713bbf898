"""The engine inspector on saved TensorRT 8.5/10/11 layer JSON (no TensorRT needed)."""
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
