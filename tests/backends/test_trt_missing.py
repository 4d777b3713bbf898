"""Without TensorRT: one clear error, user files checked first, modules import, the CLI exits 2."""
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
