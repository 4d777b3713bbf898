"""A result's recipe and `workbench replay`: bit for bit, or it names what differs."""
import json

import numpy as np
import pytest

import tiny_models
from workbench.cli import main
from workbench.session import Session


@pytest.fixture
def case(tmp_path):
    model = tiny_models.save(tiny_models.small_cnn(size=16), tmp_path / "m.onnx")
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        np.save(data / f"{i:02d}.npy", rng.standard_normal((3, 16, 16)).astype(np.float32))
    return model, data, tmp_path


def test_quantize_writes_a_recipe_and_replay_reproduces_it(case, capsys):
    model, data, tmp = case
    assert main(["quantize", model, "--data", str(data), "--fp16", "conv2", "-o", str(tmp / "out" / "q.onnx"), "-q"]) == 0
    recipe = json.loads((tmp / "out" / "q.recipe.json").read_text())
    assert recipe["command"] == "quantize" and recipe["argv"][0] == str((tmp / "m.onnx").resolve())
    assert set(recipe["versions"]) == {"workbench", "onnx", "onnxruntime", "numpy"}
    assert {"q.onnx", "q.ort.onnx", "q.plan.json", "q.calib.cache"} <= set(recipe["files"])
    assert recipe["overrides"]["flags"] == {"fp16": ["conv2"]}
    assert any(o["node"] == "conv2" and o["precision"] == "fp16" for o in recipe["overrides"]["nodes"])
    assert recipe["calibration"]["method"] == "auto" and "held out" in recipe["calibration"]["judged_on"]
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
    assert "NOT reproduced" in out and "calibration data" in out and "fingerprint differs" in out
    assert (tmp / "out" / "q.onnx").read_bytes() == before


def test_replay_refuses_what_is_not_a_recipe(tmp_path, capsys):
    bad = tmp_path / "x.recipe.json"
    bad.write_text("{}")
    assert main(["replay", str(bad)]) == 2
    assert "is not a workbench recipe" in capsys.readouterr().err


def test_a_session_export_replays_bit_for_bit(case, capsys):
    model, data, tmp = case
    s = Session(model, data, batch_size=4, project=tmp / "proj")
    s.calibrate()
    s.set_precision("conv2", "fp16")  # a click in the app: kept through the exported plan
    s.set_amax("r1", 1.5)
    path = s.export("qdq")
    recipe_file = path.with_name(path.name.replace(".onnx", ".recipe.json"))
    recipe = json.loads(recipe_file.read_text())
    assert recipe["command"] == "quantize" and "--plan" in recipe["argv"] and "--ranges" in recipe["argv"]
    assert recipe["overrides"]["amax"] == {"r1": 1.5}
    capsys.readouterr()
    assert main(["replay", str(recipe_file)]) == 0, capsys.readouterr()
    assert "Reproduced bit for bit" in capsys.readouterr().out
