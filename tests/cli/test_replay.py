"""A result's recipe and `workbench replay`: bit for bit, or it names what differs."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tiny_models
from workbench.cli import main
from workbench.session import Session

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def case(tmp_path):
    model = tiny_models.save(tiny_models.small_cnn(size=16), tmp_path / "m.onnx")
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        np.save(data / f"{i:02d}.npy", rng.standard_normal((3, 16, 16)).astype(np.float32))
    return model, data, tmp_path


def _recipe(path) -> dict:
    return json.loads(Path(path).read_text())


def test_quantize_writes_a_recipe_and_replay_reproduces_it(case, capsys):
    model, data, tmp = case
    assert main(["quantize", model, "--data", str(data), "--fp16", "conv2", "-o", str(tmp / "out" / "q.onnx"), "-q"]) == 0
    recipe = _recipe(tmp / "out" / "q.recipe.json")
    assert recipe["command"] == "quantize" and recipe["argv"][0] == str((tmp / "m.onnx").resolve())
    assert recipe["model"]["path"] == str((tmp / "m.onnx").resolve()) and len(recipe["model"]["fingerprint"]) == 64
    assert set(recipe["versions"]) == {"workbench", "onnx", "onnxruntime", "numpy"}
    assert {"q.onnx", "q.ort.onnx", "q.plan.json", "q.calib.cache"} <= set(recipe["files"])
    # the model's digest is the sha256 of the file as written
    assert recipe["files"]["q.onnx"] == hashlib.sha256((tmp / "out" / "q.onnx").read_bytes()).hexdigest()
    assert recipe["data"]["calibration"]["samples"] == 20 and recipe["data"]["evaluation"] is None
    # every override and who made it: the flag and its pattern
    assert recipe["overrides"]["flags"] == {"--fp16": ["conv2"]}
    (conv2,) = [o for o in recipe["overrides"]["nodes"] if o["node"] == "conv2"]
    assert conv2["precision"] == "fp16" and conv2["reason"] == "user" and conv2["origin"] == "--fp16 conv2"
    cal = recipe["calibration"]
    assert cal["method"] == "auto" and "held out" in cal["judged_on"] and cal["samples"] == 15 and cal["batch_size"] == 8
    assert all(t["chosen"] and t["reason"] for t in recipe["tensors"].values())  # the method per tensor and why
    # the step table as applied: what the plan file records, and at least one step kept here
    plan_steps = json.loads((tmp / "out" / "q.plan.json").read_text())["steps"]
    assert recipe["steps"]["applied"] == plan_steps["applied"] and recipe["steps"]["applied"]
    assert set(recipe["steps"]["applied"]) <= {"equalize", "smooth", "rounding", "bias_correction"}
    capsys.readouterr()
    assert main(["replay", str(tmp / "out" / "q.recipe.json")]) == 0
    assert "Reproduced bit for bit" in capsys.readouterr().out
    assert (tmp / "out" / "q.replay.onnx").read_bytes() == (tmp / "out" / "q.onnx").read_bytes()
    # change one calibration sample: the replay names the data, and the original is untouched
    before = (tmp / "out" / "q.onnx").read_bytes()
    x = np.load(data / "03.npy")
    x[0, 0, 0] += 5
    np.save(data / "03.npy", x)
    assert main(["replay", str(tmp / "out" / "q.recipe.json"), "--overwrite"]) == 1
    out = capsys.readouterr().out
    assert "NOT reproduced" in out and "the calibration data" in out and "fingerprint differs" in out
    assert "model" not in out.split("NOT reproduced")[1].split("\n")[1]  # the first reason is the data, not the model
    assert (tmp / "out" / "q.onnx").read_bytes() == before


def test_replay_names_a_version_or_a_file_that_differs(case, capsys):
    model, data, tmp = case
    assert main(["quantize", model, "--data", str(data), "--no-improve", "-o", str(tmp / "q.onnx"), "-q"]) == 0
    recipe = _recipe(tmp / "q.recipe.json")
    recipe["versions"]["numpy"] = "0.0.1"
    (tmp / "old_numpy.recipe.json").write_text(json.dumps(recipe))
    capsys.readouterr()
    assert main(["replay", str(tmp / "old_numpy.recipe.json"), "-o", str(tmp / "v.onnx")]) == 1
    assert f"version of numpy: 0.0.1 then, {np.__version__} now" in capsys.readouterr().out
    recipe = _recipe(tmp / "q.recipe.json")
    recipe["files"]["q.onnx"] = "0" * 64  # as if the first run had written other bytes
    (tmp / "other.recipe.json").write_text(json.dumps(recipe))
    assert main(["replay", str(tmp / "other.recipe.json"), "-o", str(tmp / "f.onnx")]) == 1
    out = capsys.readouterr().out
    assert "file q.onnx: different bytes (with the same inputs and versions)" in out
    assert "q.plan.json" not in out  # only the file that differs


def test_replay_never_writes_over_the_original(case, capsys):
    model, data, tmp = case
    assert main(["quantize", model, "--data", str(data), "--no-improve", "-o", str(tmp / "q.onnx"), "-q"]) == 0
    before = {p.name: p.read_bytes() for p in tmp.glob("q.*")}
    assert main(["replay", str(tmp / "q.recipe.json"), "-o", str(tmp / "q.onnx"), "--overwrite"]) == 2
    assert "is the original result" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp.glob("q.*")} == before


def test_autoprec_writes_a_recipe_that_replays(case, capsys):
    model, data, tmp = case
    assert main(["autoprec", model, "--data", str(data), "--target", "sqnr>=60", "-o", str(tmp / "a.onnx"), "-q"]) == 0
    recipe = _recipe(tmp / "a.recipe.json")
    assert recipe["command"] == "autoprec" and recipe["target"] == "sqnr>=60" and "a.curve.csv" in recipe["files"]
    assert recipe["files"]["a.curve.csv"].startswith("csv:")  # its measured latencies are not digested
    auto = [o for o in recipe["overrides"]["nodes"] if o["reason"] == "auto"]
    assert auto and all(o["origin"] == "automatic mixed-precision search" for o in auto)
    capsys.readouterr()
    assert main(["replay", str(tmp / "a.recipe.json")]) == 0
    assert "Reproduced bit for bit" in capsys.readouterr().out


def test_replay_refuses_what_is_not_a_recipe(tmp_path, capsys):
    bad = tmp_path / "x.recipe.json"
    bad.write_text("{}")
    assert main(["replay", str(bad)]) == 2
    assert "is not a workbench recipe" in capsys.readouterr().err
    bad.write_text(json.dumps({"command": "session", "argv": [], "replay_note": "the model was not opened from a file"}))
    assert main(["replay", str(bad)]) == 2
    assert "the model was not opened from a file" in capsys.readouterr().err


def test_a_session_export_replays_bit_for_bit(case, capsys):
    model, data, tmp = case
    s = Session(model, data, batch_size=4, project=tmp / "proj")
    s.calibrate()
    s.set_precision("conv2", "fp16")  # from code; the app passes origin="app click"
    s.set_precision_by_op("Gemm", "fp32", origin="app")
    s.set_amax("r1", 1.5)
    path = s.export("qdq")
    recipe_file = path.with_name(path.name.replace(".onnx", ".recipe.json"))
    recipe = _recipe(recipe_file)
    assert recipe["command"] == "quantize" and "--plan" in recipe["argv"] and "--ranges" in recipe["argv"]
    assert recipe["overrides"]["amax"] == {"r1": {"amax": 1.5, "origin": "Session.set_amax"}}
    origins = {o["node"]: o["origin"] for o in recipe["overrides"]["nodes"]}
    assert origins == {"conv2": "Session.set_precision", "fc": "app: all Gemm"}
    assert recipe["history"] == ["conv2 -> fp16", "all Gemm -> fp32", "amax r1 = 1.5"]
    assert recipe["data"]["calibration"]["fingerprint"] and recipe["calibration"]["samples"] == 15
    capsys.readouterr()
    assert main(["replay", str(recipe_file)]) == 0, capsys.readouterr()
    assert "Reproduced bit for bit" in capsys.readouterr().out


def test_a_session_with_images_and_preparation_fields_replays(tmp_path, capsys):
    from PIL import Image

    model = tiny_models.save(tiny_models.small_cnn(size=16), tmp_path / "m.onnx")
    rng = np.random.default_rng(1)
    for folder, n in (("calib", 12), ("eval", 6)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / folder / f"{i}.png")
    s = Session(model, tmp_path / "calib", eval_data=tmp_path / "eval", batch_size=4, project=tmp_path / "proj")
    s.set_data(tmp_path / "calib", eval_source=tmp_path / "eval",
               preparation={"resize": "letterbox", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "scale": 1 / 255})
    s.calibrate()
    path = s.export("qdq")
    recipe = _recipe(path.with_name(path.name.replace(".onnx", ".recipe.json")))
    argv = recipe["argv"]
    assert argv[argv.index("--resize") + 1] == "letterbox" and argv[argv.index("--std") + 1:argv.index("--std") + 4] == ["0.25"] * 3
    fields = recipe["preparation"]["inputs"]["input"]
    assert fields["resize"] == "letterbox" and fields["sources"]["resize"] == "setting"
    assert recipe["data"]["evaluation"]["samples"] == 6 and "evaluation" in recipe["calibration"]["judged_on"]
    capsys.readouterr()
    assert main(["replay", str(path.with_name(path.name.replace(".onnx", ".recipe.json")))]) == 0, capsys.readouterr()
    assert "Reproduced bit for bit" in capsys.readouterr().out


def _run(argv, seed: str):
    return subprocess.run([sys.executable, "-m", "workbench.cli", *argv], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONHASHSEED": seed}, timeout=1800)


@pytest.mark.slow
def test_the_sample_result_replays_bit_for_bit(tmp_path):
    """The default quantize of the sample (auto ranges, accuracy steps) made twice, in two processes
    with different hash seeds: the same bytes."""
    out = tmp_path / "sample.onnx"
    first = _run(["quantize", "sample_data/efficientnet_lite0.onnx", "--data", "sample_data/calib", "--eval-data",
                  "sample_data/eval", "--preset", "efficientnet-lite", "--samples", "24", "--eval-samples", "12",
                  "-o", str(out), "-q"], "1")
    assert first.returncode == 0, first.stderr[-2000:]
    recipe = _recipe(tmp_path / "sample.recipe.json")
    assert recipe["preparation"]["inputs"] and recipe["data"]["evaluation"]["samples"] == 12
    again = _run(["replay", str(tmp_path / "sample.recipe.json")], "2")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "Reproduced bit for bit" in again.stdout
    assert (tmp_path / "sample.replay.onnx").read_bytes() == out.read_bytes()
