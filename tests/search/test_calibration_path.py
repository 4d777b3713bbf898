"""The one calibration path: the CLI, the Session and the app give the same amax for every tensor
from the same model, data and settings, under one default method and one hold-out rule."""
import json

import numpy as np
import pytest

import tiny_models
from workbench.calib import registry
from workbench.cli import main
from workbench.data import open_data
from workbench.graph.model import ModelInfo
from workbench.search.calibration import calibrate, hold_out
from workbench.session import Session


def _npy(folder, n, seed=0):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        np.save(folder / f"{i:03d}.npy", (rng.standard_normal((3, 16, 16)) * (1 + i % 3)).astype(np.float32))
    return folder


@pytest.fixture
def case(tmp_path):
    model = tiny_models.save(tiny_models.small_cnn(size=16), tmp_path / "m.onnx")
    return model, _npy(tmp_path / "calib", 20), tmp_path


def test_one_default_method():
    assert registry.DEFAULT_METHOD == "auto"
    assert Session().calib_settings.method == registry.DEFAULT_METHOD
    import inspect

    assert inspect.signature(calibrate).parameters["method"].default == registry.DEFAULT_METHOD


def test_the_hold_out_rule(tmp_path):
    info = ModelInfo.from_path(tiny_models.save(tiny_models.small_cnn(size=16), tmp_path / "m.onnx"))
    data = open_data(_npy(tmp_path / "a", 20), info)
    h = hold_out(data)  # no evaluation data: the last quarter is held out, statistics from the rest
    assert (h.histogram_data.num_samples(), h.judge_data.num_samples()) == (15, 5)
    assert not h.optimistic and not h.from_evaluation_data and "5 calibration samples held out" in h.note()
    small = open_data(_npy(tmp_path / "b", 6), info)
    h = hold_out(small)  # too few to hold any out: said so
    assert h.histogram_data is small and h.judge_data is small and h.optimistic and "optimistic" in h.note()
    ev = open_data(_npy(tmp_path / "c", 7, seed=1), info)
    h = hold_out(data, ev)  # evaluation data: every calibration sample makes statistics
    assert h.histogram_data is data and h.judge_data is ev and "7 evaluation samples" in h.description


@pytest.mark.parametrize("method", ["auto", "mse"])
def test_cli_session_and_app_give_the_same_amax(case, method):
    from workbench.ui.app import Workbench

    model, data, tmp = case
    out = tmp / f"cli-{method}"
    assert main(["calibrate", model, "--data", str(data), "-o", str(out), "-q", "--method", method,
                 "--batch-size", "4"]) == 0
    cli = {t: v["amax"] for t, v in json.loads((out / "ranges.json").read_text())["tensors"].items()}

    s = Session(model, data, method=method, batch_size=4)
    s.calibrate()
    session = {t: r.amax for t, r in s.base_ranges.tensors.items()}

    app = Workbench(model, str(data), blocking=True, method=method, batch_size=4, project=tmp / f"app-{method}")
    app.widget
    app.panels["calibration"].run.click()
    assert app.error is None, app.error
    shown = {t: r.amax for t, r in app.session.base_ranges.tensors.items()}

    assert cli and cli == pytest.approx(session, rel=1e-6) and session == shown
    # statistics from the 15 samples the hold-out rule keeps for them, judged on the other 5
    assert s.stats.num_samples == 15 and s.evaluator.num_samples == 5
    assert s.calibration.holdout.description == "5 calibration samples held out from the range choice"
