"""TensorRT flavors, the GPU probe, availability messages, the backend registry, the builder-log
parser and the printed commands: all without a GPU (a GPU is only *described* to the probe)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from workbench.backends import registry, trt_buildlog, trt_inspect
from workbench.backends.gpu import GpuInfo, parse_cc, probe_gpu, rtx_runtime_check
from workbench.backends.trt_import import FLAVORS, import_trt, installed, version_major
from workbench.backends.trt_status import trt_status
from workbench.errors import WorkbenchError
from workbench.backends.commands import engine_build_commands

H200 = GpuInfo("NVIDIA H200", (9, 0))
RTX4090 = GpuInfo("NVIDIA GeForce RTX 4090", (8, 9))
T4 = GpuInfo("Tesla T4", (7, 5))
RTX5090 = GpuInfo("NVIDIA GeForce RTX 5090", (12, 0))


@pytest.fixture
def only_rtx(monkeypatch):
    """tensorrt missing; tensorrt_rtx as installed (skip when it is not)."""
    pytest.importorskip("tensorrt_rtx", reason="needs the TensorRT-RTX package (tensorrt_rtx)")
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.delenv("WORKBENCH_TRT_FLAVOR", raising=False)


def test_probe_never_raises_and_names_what_is_missing():
    info, reason = probe_gpu()
    assert (info is None) == bool(reason)
    if info is None:
        assert "driver" in reason or "GPU" in reason or "device" in reason


@pytest.mark.parametrize("text, cc", [("8.6", (8, 6)), ("12.0", (12, 0)), ("sm120", (12, 0)), ("SM_75", (7, 5)),
                                      ("86", (8, 6))])
def test_parse_cc(text, cc):
    assert parse_cc(text) == cc


def test_rtx_runtime_check_per_gpu():
    assert rtx_runtime_check(RTX4090) == "" and rtx_runtime_check(RTX5090) == ""
    hopper = rtx_runtime_check(H200)
    assert "compute capability 9.0" in hopper and "8.0, 8.6, 8.9, 12.0" in hopper and "Hopper" in hopper
    assert "--trt-flavor trt" in hopper
    assert "7.5" in rtx_runtime_check(T4) and rtx_runtime_check(T4, [(7, 5)]) == ""
    assert "rebuild for 8.9" in rtx_runtime_check(RTX4090, [(8, 6)])
    assert "8.0, 8.6, 8.9, 12.0" in rtx_runtime_check(None)


def test_status_of_rtx_per_gpu(only_rtx):
    version = installed("rtx").version
    gpu = trt_status(gpu=RTX4090)
    assert (gpu.flavor, gpu.can_build, gpu.can_run) == ("rtx", True, True)
    assert gpu.reason == f"TensorRT-RTX {version} on NVIDIA GeForce RTX 4090 (compute capability 8.9)"
    hopper = trt_status(gpu=H200)
    assert hopper.can_build and not hopper.can_run and hopper.build_only
    assert f"TensorRT-RTX {version}, build only here" in hopper.reason and "9.0" in hopper.reason
    none = trt_status(gpu_reason="no NVIDIA driver (libcuda.so.1 cannot be loaded)")
    assert none.build_only and "libcuda.so.1" in none.reason and "running, timing and layer inspection" in none.reason


def test_explicit_flavor_that_is_not_installed(only_rtx):
    with pytest.raises(WorkbenchError) as err:
        import_trt("trt")
    assert "pip install 'workbench[trt]'" in str(err.value) and err.value.__cause__ is None
    status = trt_status("trt")
    assert not status.can_build and "'tensorrt'" in status.reason
    assert import_trt().flavor.key == "rtx" and import_trt("auto").flavor.key == "rtx"
    with pytest.raises(WorkbenchError, match="Unknown TensorRT flavor 'tensorrt'"):
        import_trt("tensorrt")


def test_flavor_from_environment(only_rtx, monkeypatch):
    monkeypatch.setenv("WORKBENCH_TRT_FLAVOR", "trt")
    with pytest.raises(WorkbenchError, match="'tensorrt'"):
        import_trt()
    assert import_trt("rtx").describe().startswith("TensorRT-RTX ")


def test_standard_tensorrt_without_gpu_is_not_a_builder(monkeypatch):
    """TensorRT 10/11 needs a GPU to build: with no GPU the status says so and points to RTX."""
    if installed("trt") is None:
        pytest.skip("needs the 'tensorrt' package to describe its status")
    status = trt_status("trt", gpu_reason="no NVIDIA driver")
    assert not status.can_build and "tensorrt-rtx" in status.reason.lower()


def test_registry_lists_backends_and_refuses_unknown_ones():
    assert registry.backend_names()[:2] == ["ort", "trt"]
    ok, reason = registry.get_backend("ort").available()
    assert ok and "ONNX Runtime" in reason
    with pytest.raises(WorkbenchError, match="Unknown backend 'tvm'; choose one of: ort, trt"):
        registry.get_runner("m.onnx", backend="tvm")
    with pytest.raises(WorkbenchError, match="already registered"):
        registry.register_backend(registry.get_backend("ort"))


def test_data_and_feeds_load_no_backend():
    code = ("import sys, workbench.data, workbench.graph.feeds\n"
            "print(sorted(m for m in sys.modules if m.startswith('workbench.backends') or 'tensorrt' in m))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    from workbench.backends.base import check_feed
    from workbench.graph.feeds import check_feed as feeds_check_feed
    assert check_feed is feeds_check_feed


def test_no_backend_module_imports_a_subclass_from_base():
    import workbench.backends.base as base

    source = open(base.__file__).read()
    assert "from .ort" not in source and "from .trt" not in source and "registry" not in source.split('"""')[2]


BUILDER_TABLE = (
    "Layers:\n"
    "Name: __myl_Quant_myl0_0, LayerType: kgen, Inputs: [ { Name: input, Dimensions: [1,3,16,16], "
    "Strides: [768,256,16,1], StrideOrder: [3,2,1,0], Datatype: Float, Format: (Linear) Row major linear format }], "
    "Constants: [], Outputs: [ { Name: q, Dimensions: [1,4,16,16], Datatype: Int8, Format: (NHWC) Channel major "
    "format }], TacticName: __myl_Quant_0x1, StreamId: 0, Metadata: [ONNX Layer: input_q][ONNX Layer: conv1]\n"
    "Name: conv1_myl0_1, LayerType: correlation, Inputs: [ { Name: q, Dimensions: [1,4,16,16], Datatype: Int8, "
    "Format: (NHWC) Channel major format }], Constants: [ { Name: w, Dimensions: [8,4,3,3], Datatype: Int8, "
    "Format: (NHWC) Channel major format }, { Name: b, Dimensions: [1,8,1,1], Datatype: Float, Format: (NHWC) "
    "Channel major format }], Outputs: [ { Name: y, Dimensions: [1,8,16,16], Datatype: Float, Format: (NHWC) "
    "Channel major format }], TacticName: __myelin_CASK_STUB, StreamId: 0, Metadata: [ONNX Layer: conv1]"
    "\x1f[ONNX Layer: w_dq]\n"
    "Name: input, IOMode: Input, DataType: Float, Dimensions: [1,3,16,16], Location: Device, IsShapeInferenceIO: "
    "false, ProfileInfo: [ { MinShape: [1,3,16,16], OptShape: [1,3,16,16], MaxShape: [1,3,16,16] }]\n")


def test_builder_log_layer_table_parses_to_inspector_layout():
    info = trt_buildlog.layers_from_log(["Total Weights Memory: 1234 bytes", BUILDER_TABLE, "done"])
    assert [layer["Name"] for layer in info["Layers"]] == ["__myl_Quant_myl0_0", "conv1_myl0_1"]
    assert info["I/O Tensors"] == [{"Name": "input", "IOMode": "Input", "DataType": "Float",
                                    "Dimensions": [1, 3, 16, 16]}]
    df = trt_inspect.layers_dataframe(info)
    assert list(df["precision"]) == ["FP32", "INT8"]
    assert trt_inspect.node_precisions(df)["conv1"] == "INT8"
    assert trt_buildlog.weight_precisions(info) == {"INT8": 1}
    assert trt_buildlog.memory_from_log(["Total Weights Memory: 1234 bytes"]) == {"weights_bytes": 1234}
    assert trt_buildlog.layers_from_log(["no table here"]) is None


def test_one_command_generator_checks_with_exact_semantics():
    cmds = engine_build_commands("q.onnx", shapes={"input": (1, 3, 224, 224)}, compute_capabilities=["8.6"])
    for label in ("polygraphy check (TensorRT 10/11)", "polygraphy check (TensorRT-RTX, needs its GPU)"):
        assert "--onnxrt --graph-optimization-level ORT_DISABLE_ALL" in cmds[label]
        assert "--input-shapes 'input:[1,3,224,224]'" in cmds[label]
    rtx = cmds["polygraphy (TensorRT-RTX)"]
    assert rtx.startswith("POLYGRAPHY_USE_TENSORRT_RTX=1 polygraphy convert q.onnx -o q.engine")
    assert rtx.endswith("--compute-capabilities 8.6")
    assert all("--int8" not in c and "--fp16" not in c for c in cmds.values())


def test_version_major_and_flavor_table():
    assert version_major("1.7.1.116") == 1 and version_major("10.13.0.35") == 10 and version_major(None) is None
    assert FLAVORS["rtx"].module == "tensorrt_rtx" and FLAVORS["rtx"].extra == "trt-rtx"
