"""No traceback for a user mistake: every public entry point checks its arguments up front and
names the argument, the file and what was expected.

Part of the reliability battery (issues 13 and 22); helpers in ``reliability_helpers``.
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

import tiny_models
from workbench.cli import main
from workbench.errors import WorkbenchError
from reliability_helpers import (LOADER_WAITS, REPO, Workspace, _mount, _no_collection, _photos, entries,  # noqa: F401
                                 err_of, leftovers, read_only_dir, run_cli, sha_tree, small_tmpfs, ws)


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "--batch-size must be a positive whole number"),
    (["--batch-size", "-2"], "--batch-size must be a positive whole number"),
    (["--samples", "0"], "--samples must be a positive whole number"),
    (["--percentile", "0", "--method", "percentile"], "--percentile must be a number in (0, 100]"),
    (["--percentile", "150"], "--percentile must be a number in (0, 100]"),
])
def test_bad_numbers_are_refused_before_any_work(ws, capsys, monkeypatch, args, message):
    _no_collection(monkeypatch)
    assert ws.calibrate(*args) == 2
    assert message in err_of(capsys)
    ws.unchanged()


def test_search_numbers_are_refused_before_calibration(ws, capsys, monkeypatch):
    _no_collection(monkeypatch)
    base = [str(ws.model), "--data", str(ws.data), "-q"]
    assert main(["sensitivity", *base, "--sens-samples", "0", "-o", str(ws.root / "s.csv")]) == 2
    assert "--sens-samples must be a positive whole number" in err_of(capsys)
    assert main(["autoprec", *base, "--target", "top1>>0.9", "-o", str(ws.root / "a.onnx")]) == 2
    assert "top1>>0.9" in err_of(capsys)
    assert main(["autoprec", *base, "--latency-points", "-1", "-o", str(ws.root / "a.onnx")]) == 2
    assert "--latency-points" in err_of(capsys)
    ws.unchanged()


def test_preprocessing_mistakes(ws, capsys, monkeypatch):
    _no_collection(monkeypatch)
    photos = _photos(ws.root / "photos")
    ws.snap()
    base = ["calibrate", str(ws.model), "--data", str(photos), "--crop", "16", "-q", "-o", str(ws.root / "c")]
    assert main([*base, "--mean", "1", "2"]) == 2
    assert "mean (--mean) has 2 values [1.0, 2.0], but the model input has 3 channel(s)" in err_of(capsys)
    assert main([*base, "--std", "0"]) == 2
    assert "--std) must not be 0" in err_of(capsys)
    assert main([*base, "--std", "1", "0", "1"]) == 2
    assert "must not be 0" in err_of(capsys)
    ws.unchanged()


def test_session_rejections_never_stick(ws):
    from workbench.session import Session

    with pytest.raises(WorkbenchError, match="Session\\(model=...\\) must be a file or folder path"):
        Session(123)
    with pytest.raises(WorkbenchError, match="batch size"):
        Session(ws.model, ws.data, batch_size=0)
    s = Session(ws.model, ws.data, batch_size=2, method="minmax")
    with pytest.raises(WorkbenchError, match="num_samples must be a positive whole number"):
        s.calibrate(num_samples=0)
    assert s.data_settings.limit is None
    s.calibrate()  # works: the rejected value did not stick
    with pytest.raises(WorkbenchError, match="percentile"):
        s.set_method("percentile", 150)
    assert (s.calib_settings.method, s.calib_settings.percentile) == ("minmax", 99.99)
    assert s.rebuild().method == "minmax"
    with pytest.raises(WorkbenchError, match="batch size"):
        s.calibrate(batch_size=-1)
    assert s.calib_settings.batch_size == 2


def test_metric_script_exit_and_unhandled_os_errors_are_one_line(ws, capsys, monkeypatch):
    script = ws.root / "metric.py"
    script.write_text("import sys\ndef metric(outputs, labels=None):\n    sys.exit(5)\n")
    ws.snap()
    code = main(["evaluate", str(ws.model), str(ws.model), "--data", str(ws.data), "--metric-script", str(script)])
    assert code == 2 and "metric.py' called sys.exit(5)" in err_of(capsys)
    from workbench.cli import qdq

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(qdq, "read_if_quantized", denied)
    assert main(["info", str(ws.model)]) == 2
    assert f"Cannot access '{ws.model}': permission denied." in err_of(capsys)
    ws.unchanged()


def test_ranges_with_an_empty_tensor_list_and_a_plan_with_nodes_all(ws, capsys, monkeypatch):
    (ws.root / "r.json").write_text(json.dumps({"method": "minmax", "tensors": []}))
    (ws.root / "p.json").write_text(json.dumps({"format": "workbench-precision-plan", "version": 1, "nodes": "all"}))
    ws.snap()
    _no_collection(monkeypatch)
    base = ["quantize", str(ws.model), "--data", str(ws.data), "-q", "-o", str(ws.root / "q.onnx")]
    assert main([*base, "--ranges", str(ws.root / "r.json")]) == 2
    err = err_of(capsys)
    assert "r.json" in err and "'tensors' must be an object" in err
    monkeypatch.undo()
    assert main([*base, "--method", "minmax", "--plan", str(ws.root / "p.json")]) == 2
    err = err_of(capsys)
    assert "p.json" in err and "'nodes' must be a list" in err
    ws.unchanged()


def test_session_load_with_wrong_typed_values_names_the_file_and_the_key(ws):
    from workbench.session import Session

    proj = ws.root / "proj"
    proj.mkdir()
    for data, key in (({"source": 5}, "data.source"), ({"limit": "x"}, "data.limit"),
                      ({"preparation": [1]}, "data.preparation")):
        (proj / "session.json").write_text(json.dumps({"format": 1, "data": data, "calibration": {}}))
        with pytest.raises(WorkbenchError, match=f"session.json': {key} must be"):
            Session.load(proj)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """A calibrated session and the public objects of its model (built once for the table below)."""
    from workbench import Evaluator, ModelInfo, PrecisionPlan, open_data
    from workbench.session import Session

    root = tmp_path_factory.mktemp("api")
    model = Path(tiny_models.save(tiny_models.small_cnn(size=16), root / "m.onnx"))
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        np.save(data / f"{i}.npy", rng.standard_normal((3, 16, 16)).astype(np.float32))
    s = Session(model, data, batch_size=2, method="minmax", project=root / "proj")
    s.calibrate()
    info = ModelInfo.from_path(model)
    return {"s": s, "info": info, "data": data, "model": model, "root": root, "plan": PrecisionPlan.default(info),
            "cd": open_data(data, info), "ev": Evaluator(info, open_data(data, info)), "Evaluator": Evaluator}


def _calls():
    from workbench import ModelInfo, PrecisionPlan, collect_statistics, compute_ranges, open_data
    from workbench.export import export_model, export_result
    from workbench.search.sensitivity import auto_mixed_precision, sensitivity

    return [  # (the call, words the message must hold)
        (lambda a: a["s"].set_amax("input", "big"), "Tensor 'input' has amax 'big'"),
        (lambda a: a["s"].set_amax("input", float("nan")), "must be finite and > 0"),
        (lambda a: a["s"].export("qdq", path=3), "export(path=...)"),
        (lambda a: a["s"].export("qdq", path=a["root"] / "x.onnx", overwrite="yes"), "export(overwrite=...)"),
        (lambda a: a["s"].mixed_precision(5), "mixed_precision(target=...)"),
        (lambda a: a["s"].select(["conv1"]), "select(node=...)"),
        (lambda a: a["s"].set_precision(5, "fp16"), "set_precision(nodes=...)"),
        (lambda a: a["s"].rebuild(backend="gpu"), "rebuild(backend=...) must be one of ort, trt; got 'gpu'"),
        (lambda a: a["s"].run_sensitivity(samples=0), "run_sensitivity(samples=...)"),
        (lambda a: open_data(5, a["info"]), "open_data(source=...)"),
        (lambda a: open_data(a["data"], str(a["model"])), "open_data(model=...) must be a ModelInfo"),
        (lambda a: collect_statistics(str(a["model"]), a["cd"]), "collect_statistics(model=...)"),
        (lambda a: collect_statistics(a["info"], str(a["data"])), "collect_statistics(data=...)"),
        (lambda a: collect_statistics(a["info"], a["cd"], tensors=5), "collect_statistics(tensors=...)"),
        (lambda a: PrecisionPlan.default(str(a["model"])), "PrecisionPlan.default(model_info=...)"),
        (lambda a: a["plan"].set_amax(["input"], 1.0), "set_amax(tensor=...)"),
        (lambda a: compute_ranges("stats"), "compute_ranges(stats=...)"),
        (lambda a: a["Evaluator"](str(a["model"]), a["cd"]), "Evaluator(model=...)"),
        (lambda a: a["Evaluator"](a["info"], a["cd"], metric_fn=3), "Evaluator(metric_fn=...)"),
        (lambda a: export_model(a["info"], a["s"].ranges, "plan", a["root"] / "e.onnx"), "export_model(plan=...)"),
        (lambda a: export_model(a["info"], a["s"].ranges, a["plan"], 7), "export_model's output path"),
        (lambda a: export_result(a["info"], a["s"].ranges, a["plan"], a["root"] / "e", kinds="qdq"),
         "export_result(kinds=...)"),
        (lambda a: sensitivity(a["ev"], a["s"].ranges, a["plan"], samples=0), "sensitivity(samples=...)"),
        (lambda a: auto_mixed_precision(a["ev"], a["s"].ranges, a["plan"], 5), "The target must be text"),
        (lambda a: ModelInfo.from_path(5), "The model path must be a file or folder path"),
        (lambda a: a["s"].ranges.save(5), "The ranges file must be"),
    ]


@pytest.mark.parametrize("index", range(26))
def test_public_entry_points_check_their_arguments_up_front(api, index):
    calls = _calls()
    assert len(calls) == 26
    call, words = calls[index]
    history, plan = len(api["s"].history), api["s"].plan.to_json()
    with pytest.raises(WorkbenchError) as err:
        call(api)
    assert words in str(err.value)
    assert len(api["s"].history) == history and api["s"].plan.to_json() == plan  # nothing stuck
