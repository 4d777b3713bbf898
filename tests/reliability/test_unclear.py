"""Clear messages: each names the file, tensor or flag and says what was expected.

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


def test_sixteen_bit_pngs_are_scaled_like_their_eight_bit_twins(ws, capsys):
    rng = np.random.default_rng(3)
    d8, d16 = ws.root / "g8", ws.root / "g16"
    d8.mkdir()
    d16.mkdir()
    for i in range(3):
        g = rng.integers(0, 256, (20, 24), dtype=np.uint8)
        Image.fromarray(g).save(d8 / f"{i}.png")
        Image.fromarray(g.astype(np.uint16) * 257).save(d16 / f"{i}.png")  # 16-bit grey, same picture
    assert Image.open(d16 / "0.png").mode.startswith("I;16")
    common = ["--crop", "16", "--resize", "0", "--method", "minmax", "-q", "--preset", "unit"]
    assert main(["calibrate", str(ws.model), "--data", str(d8), "-o", str(ws.root / "c8"), *common]) == 0
    assert main(["calibrate", str(ws.model), "--data", str(d16), "-o", str(ws.root / "c16"), *common]) == 0
    r8 = json.loads((ws.root / "c8" / "ranges.json").read_text())["tensors"]
    r16 = json.loads((ws.root / "c16" / "ranges.json").read_text())["tensors"]
    assert r8["input"]["max"] <= 1.0 and r16["input"]["max"] == pytest.approx(r8["input"]["max"], abs=1e-6)
    assert r16["logits"]["amax"] == pytest.approx(r8["logits"]["amax"], rel=1e-5)


def test_object_and_corrupt_npy_are_named(ws, capsys):
    bad = ws.root / "bad"
    bad.mkdir()
    np.save(bad / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    ws.snap()
    assert main(["calibrate", str(ws.model), "--data", str(bad), "-q", "-o", str(ws.root / "c")]) == 2
    err = err_of(capsys)
    assert "obj.npy" in err and "dtype=object" in err
    (bad / "obj.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    ws.snap()
    assert main(["calibrate", str(ws.model), "--data", str(bad), "-q", "-o", str(ws.root / "c")]) == 2
    err = err_of(capsys)
    assert "obj.npy" in err and "corrupt" in err
    ws.unchanged()


def test_all_nan_inputs_are_refused_unless_asked(ws, capsys):
    nan = ws.root / "nan"
    nan.mkdir()
    np.save(nan / "a.npy", np.full((2, 3, 16, 16), np.nan, np.float32))
    ws.snap()
    assert main(["calibrate", str(ws.model), "--data", str(nan), "-q", "-o", str(ws.root / "c")]) == 2
    assert "a.npy[0]: input 'input' is all NaN" in err_of(capsys)
    ws.unchanged()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["calibrate", str(ws.model), "--data", str(nan), "-q", "-o", str(ws.root / "c"),
                     "--allow-nonfinite"]) == 0


def test_percentile_with_saved_ranges_is_refused(ws, capsys):
    assert ws.calibrate("--method", "percentile") == 0
    ranges = str(ws.root / "cal" / "ranges.json")
    ws.snap()
    code = main(["quantize", str(ws.model), "--data", str(ws.data), "--ranges", ranges, "--method", "percentile", "--percentile", "50",
                 "-o", str(ws.root / "q.onnx")])
    assert code == 2 and "--percentile 50 cannot be applied to --ranges" in err_of(capsys)
    ws.unchanged()


def test_plan_and_ranges_of_another_model_are_refused_with_an_override(ws, capsys):
    other = Path(tiny_models.save(tiny_models.small_cnn(size=16, seed=9), ws.root / "other.onnx"))
    assert main(["calibrate", str(other), "--data", str(ws.data), "-q", "-o", str(ws.root / "oc")]) == 0
    assert main(["quantize", str(other), "--data", str(ws.data), "--ranges", str(ws.root / "oc" / "ranges.json"),
                 "-o", str(ws.root / "o.onnx")]) == 0
    capsys.readouterr()
    ws.snap()
    base = ["quantize", str(ws.model), "--data", str(ws.data), "-q", "-o", str(ws.root / "q.onnx")]
    assert main([*base, "--plan", str(ws.root / "o.plan.json")]) == 2
    assert "was made for another model" in err_of(capsys)
    assert main(["quantize", str(ws.model), "--data", str(ws.data), "--ranges", str(ws.root / "oc" / "ranges.json"),
                 "-o", str(ws.root / "q.onnx")]) == 2
    assert "calibrated for another model" in err_of(capsys)
    ws.unchanged()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main([*base, "--plan", str(ws.root / "o.plan.json"), "--allow-other-model"]) == 0
    assert any("used anyway" in str(w.message) for w in seen)


def test_evaluate_against_the_wrong_fp32_model(ws, capsys):
    assert ws.calibrate() == 0
    assert main(["quantize", str(ws.model), "--data", str(ws.data), "--ranges", str(ws.root / "cal" / "ranges.json"),
                 "-o", str(ws.root / "q.onnx")]) == 0
    # same architecture, other weights: the exported model names its source
    other = Path(tiny_models.save(tiny_models.small_cnn(size=16, seed=9), ws.root / "other.onnx"))
    capsys.readouterr()
    assert main(["evaluate", str(other), str(ws.root / "q.onnx"), "--data", str(ws.data),
                 "--json", str(ws.root / "e.json")]) == 0
    err = capsys.readouterr().err
    assert "q.onnx' was exported from another model ('m.onnx'" in err and "other.onnx" in err
    assert json.loads((ws.root / "e.json").read_text())["warnings"]
    # a model whose output is named differently: a message, not KeyError: 'logits'
    renamed = onnx.load(str(ws.root / "q.onnx"))
    for node in renamed.graph.node:
        node.output[:] = ["scores" if o == "logits" else o for o in node.output]
    renamed.graph.output[0].name = "scores"
    onnx.save(renamed, str(ws.root / "renamed.onnx"))
    ws.snap()
    assert main(["evaluate", str(ws.model), str(ws.root / "renamed.onnx"), "--data", str(ws.data)]) == 2
    err = err_of(capsys)
    assert "different outputs: 'scores' vs 'logits'" in err and "m.onnx" in err
    ws.unchanged()


def test_evaluate_warns_on_very_low_agreement(ws, capsys):
    """A model of the same interface from elsewhere (no workbench metadata) agreeing poorly."""
    stranger = tiny_models.small_cnn(size=16, seed=5)
    onnx.save(stranger, str(ws.root / "stranger.onnx"))
    assert main(["evaluate", str(ws.model), str(ws.root / "stranger.onnx"), "--data", str(ws.data)]) == 0
    err = capsys.readouterr().err
    assert "agrees very little with the FP32 model" in err and "stranger.onnx" in err


def test_check_cache_without_provenance_cannot_vouch_for_the_weights(ws, capsys):
    assert ws.calibrate() == 0
    cache = ws.root / "cal" / "calibration.cache"
    (ws.root / "cal" / "calibration.cache.json").unlink()
    other = Path(tiny_models.save(tiny_models.small_cnn(size=16, seed=9), ws.root / "other.onnx"))
    capsys.readouterr()
    assert main(["check-cache", str(cache), str(other)]) == 1
    assert "cannot be checked" in capsys.readouterr().out


def test_huge_images_and_batches_are_bounded_with_a_hint(ws, capsys, monkeypatch):
    wide = ws.root / "wide"
    wide.mkdir()
    Image.fromarray(np.zeros((1, 6000, 3), np.uint8)).save(wide / "line.png")
    ws.snap()
    assert main(["calibrate", str(ws.model), "--data", str(wide), "--crop", "16", "--short-side", "256", "-q",
                 "-o", str(ws.root / "c")]) == 2
    err = err_of(capsys)
    assert "line.png' is 6000x1 pixels" in err and "--resize stretch" in err
    from workbench.data import base

    monkeypatch.setattr(base, "available_memory", lambda: 20_000)  # a machine with 20 kB to spare
    assert ws.calibrate("--batch-size", "1000000") == 2
    err = err_of(capsys)
    assert "A batch of 6 samples (--batch-size 1000000) needs about" in err and "Use --batch-size 1" in err
    ws.unchanged()


def test_existing_qdq_refusal_names_the_cli_flag(ws, capsys):
    assert ws.calibrate() == 0
    assert main(["quantize", str(ws.model), "--data", str(ws.data), "--ranges", str(ws.root / "cal" / "ranges.json"),
                 "-o", str(ws.root / "q.onnx")]) == 0
    from workbench.export.build import build
    from workbench.graph.model import ModelInfo
    from workbench.precision.plan import PrecisionPlan
    from workbench.calib.ranges import Ranges

    q = ModelInfo.from_path(ws.root / "q.onnx")
    with pytest.raises(WorkbenchError, match="--allow-existing-qdq"):
        build(q, Ranges.load(ws.root / "cal" / "ranges.json"), PrecisionPlan.default(q))


def test_session_load_of_a_broken_project_names_the_file(ws):
    from workbench.session import Session

    proj = ws.root / "proj"
    proj.mkdir()
    (proj / "session.json").write_text("[1, 2]")
    with pytest.raises(WorkbenchError, match="session.json' holds a JSON list"):
        Session.load(proj)
    (proj / "session.json").write_text(json.dumps({"format": 1, "calibration": {}}))
    with pytest.raises(WorkbenchError, match="no 'data' settings"):
        Session.load(proj)
    (proj / "session.json").write_text(json.dumps({"format": 1, "data": {"sourse": "x"}, "calibration": {}}))
    with pytest.raises(WorkbenchError, match="unknown 'data' setting"):
        Session.load(proj)
    (proj / "session.json").write_text(json.dumps({"format": 1, "data": {}, "calibration": {"percentile": 150}}))
    with pytest.raises(WorkbenchError, match="session.json': The percentile"):
        Session.load(proj)


def test_disk_full_names_the_users_file_not_the_staging_path(ws, capsys, monkeypatch):
    from workbench.calib import ranges as ranges_mod

    def full(self, path, **kw):  # ``path`` is the staged file
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(ranges_mod.Ranges, "write_csv", full)
    assert ws.calibrate("--method", "minmax") == 2
    err = err_of(capsys)
    assert f"'{ws.root / 'cal' / 'ranges.csv'}'" in err and ".wb-tmp-" not in err and "no space left" in err
    ws.unchanged()


def test_output_that_is_an_existing_folder_is_refused(ws, capsys):
    (ws.root / "outdir").mkdir()
    ws.snap()
    for cmd in ("quantize", "autoprec"):
        assert main([cmd, str(ws.model), "--data", str(ws.data), "--method", "minmax", "-q",
                     "-o", str(ws.root / "outdir")]) == 2
        err = err_of(capsys)
        assert "'outdir' is an existing folder" in err or f"'{ws.root / 'outdir'}' is an existing folder" in err
        assert "outdir/m.quant.onnx" in err
    ws.unchanged()  # no outdir.onnx beside it, nothing inside


def test_new_opsets_and_custom_ops_are_named(ws, capsys):
    m = onnx.load(str(ws.model))
    m.opset_import[0].version = 30
    onnx.save(m, str(ws.root / "op30.onnx"))
    m = tiny_models.small_cnn(size=16)
    m.graph.node[1].op_type, m.graph.node[1].domain = "FancyRelu", "com.acme"
    m.opset_import.append(onnx.helper.make_opsetid("com.acme", 1))
    onnx.save(m, str(ws.root / "custom.onnx"))
    ws.snap()
    assert main(["calibrate", str(ws.root / "op30.onnx"), "--data", str(ws.data), "-q", "-o", str(ws.root / "c")]) == 2
    err = err_of(capsys)
    assert "op30.onnx' uses opset 30 of domain 'ai.onnx'" in err and "onnxruntime_src" not in err
    assert main(["calibrate", str(ws.root / "custom.onnx"), "--data", str(ws.data), "-q", "-o", str(ws.root / "c")]) == 2
    err = err_of(capsys)
    assert "custom.onnx' uses the op 'FancyRelu' of the custom domain 'com.acme' (node 'relu1')" in err
    ws.unchanged()


def test_ort_load_failures_are_translated():
    from workbench.backends.ort_errors import load_failure

    raw = ("[ONNXRuntimeError] : 1 : FAIL : /onnxruntime_src/x.h:46 void f() Opset 29 is under development and "
           "support for this is limited. Current official support for domain ai.onnx is till opset 28.")
    assert "uses opset 29 of domain 'ai.onnx'" in load_failure("'m.onnx'", RuntimeError(raw))
    raw = "[ONNXRuntimeError] : 1 : FAIL : Fatal error: com.acme:Foo(-1) is not a registered function/op"
    assert "the op 'Foo' of the custom domain 'com.acme'" in load_failure("'m.onnx'", RuntimeError(raw))


def test_corrupt_statistics_are_named_in_the_cli_and_the_session(ws, capsys):
    from workbench.session import Session

    (ws.root / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    ws.snap()
    assert ws.calibrate("--statistics", str(ws.root / "bad.npz")) == 2
    assert "bad.npz' is not a workbench statistics file" in err_of(capsys)
    ws.unchanged()
    s = Session(ws.model, ws.data, batch_size=2, method="minmax", project=ws.root / "proj")
    s.calibrate()
    np.savez(ws.root / "proj" / "statistics.npz", __header__=np.frombuffer(json.dumps(
        {"format": 1, "tensors": ["input"], "model_fingerprint": "", "data_fingerprint": ""}).encode(), np.uint8))
    s.stats = None
    with pytest.raises(WorkbenchError, match="statistics.npz"):
        s.calibrate()


@pytest.mark.parametrize("body, words", [("return float('nan')", "returned nan"),
                                         ("return 'good'", "returned str 'good'")])
def test_a_metric_returning_nan_or_text_is_named(ws, capsys, body, words):
    script = ws.root / "metric.py"
    script.write_text(f"def metric(outputs, labels=None):\n    {body}\n")
    ws.snap()
    assert main(["evaluate", str(ws.model), str(ws.model), "--data", str(ws.data), "--metric-script", str(script)]) == 2
    err = err_of(capsys)
    assert words in err and "metric.py" in err and "number" in err
    ws.unchanged()


def test_overlapping_precision_patterns_say_which_wins(ws, capsys):
    assert main(["quantize", str(ws.model), "--data", str(ws.data), "--method", "minmax", "--no-eval", "-q",
                 "--fp16", ".*", "--fp32", ".*", "-o", str(ws.root / "q.onnx")]) == 0
    err = capsys.readouterr().err
    assert err.count("match patterns of more than one precision") == 1
    assert "--fp16 '.*' and --fp32 '.*'" in err and "so they are FP32" in err
    plan = json.loads((ws.root / "q.plan.json").read_text())
    assert {r["precision"] for r in plan["nodes"]} == {"fp32"}


def test_swapped_models_get_a_note(ws, capsys):
    assert main(["quantize", str(ws.model), "--data", str(ws.data), "--method", "minmax", "--no-eval", "-q",
                 "-o", str(ws.root / "q.onnx")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(ws.root / "q.onnx"), str(ws.model), "--data", str(ws.data)]) == 0
    assert "The models look swapped: the FP32 model 'q.onnx' has Q/DQ nodes" in capsys.readouterr().err


def test_a_loader_path_that_is_a_folder_and_nhwc_data(ws, capsys):
    (ws.root / "loaders").mkdir()
    photos = _photos(ws.root / "photos")
    ws.snap()
    assert main(["calibrate", str(ws.model), "--data-loader-script", str(ws.root / "loaders"), "-q",
                 "-o", str(ws.root / "c")]) == 2
    err = err_of(capsys)
    assert "loaders' is a folder; give a Python file" in err and "does not exist" not in err
    assert main(["calibrate", str(ws.model), "--data", str(photos), "--layout", "NHWC", "--mean", "0.5", "0.5",
                 "0.5", "-q", "-o", str(ws.root / "c")]) == 2
    err = err_of(capsys)
    assert "--layout" in err and "--mean" not in err  # the layout is named, not the mean
    ws.unchanged()
