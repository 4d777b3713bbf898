"""Session.calibrate / set_method with ``workers=``: the auto search's runs in worker processes
give the ranges the in-process search gives."""
import numpy as np
import pytest

import realistic_models as R
import tiny_models
from workbench.errors import WorkbenchError
from workbench.search import executor as ex
from workbench.session import Session


def _session(tmp_path) -> Session:
    model = tiny_models.save(R.classifier_relu6(), tmp_path / "m.onnx")
    for sub, n, seed in (("calib", 12, 1), ("eval", 8, 2)):
        (tmp_path / sub).mkdir()
        for i, s in enumerate(R.image_data(n, seed=seed)):
            np.save(tmp_path / sub / f"{i:02d}.npy", s["image"])
    return Session(model, tmp_path / "calib", eval_data=tmp_path / "eval", batch_size=4)


def _count_sent(monkeypatch) -> list:
    sent = []  # evaluations handed to the worker processes
    original = ex.LocalProcesses._run_many
    monkeypatch.setattr(ex.LocalProcesses, "_run_many",
                        lambda self, bound, configs, *a: sent.append(len(configs)) or original(self, bound, configs, *a))
    return sent


def test_calibrate_with_workers_gives_the_same_auto_ranges(tmp_path, monkeypatch):
    session = _session(tmp_path)
    here = session.calibrate()  # method auto (the default), in this process
    assert session.range_search is not None
    sent = _count_sent(monkeypatch)
    there = session.calibrate(workers=2)  # statistics reused, the search runs again on 2 workers
    assert sum(sent) >= 5 and session.last_calibration["how"].startswith("reused") and there is not here
    assert {t: r.amax for t, r in there.tensors.items()} == {t: r.amax for t, r in here.tensors.items()}
    assert [r.chosen for r in there.tensors.values()] == [r.chosen for r in here.tensors.values()]
    # the record too: candidates dropped on the first fold in process (only that fold ran) are
    # recorded the same when the workers ran them whole
    assert [r.candidates for r in there.tensors.values()] == [r.candidates for r in here.tensors.values()]
    assert any("first_fold_sqnr_db" in c for r in here.tensors.values() for c in (r.candidates or {}).values())
    with pytest.raises(WorkbenchError, match="workers"):
        session.set_method("auto", workers=0)


def test_mixed_precision_with_workers_finds_the_same_plan(tmp_path, monkeypatch):
    session = _session(tmp_path)
    session.calibrate(method="minmax")
    start = session.plan.copy()
    here = session.mixed_precision("sqnr>=45", sensitivity_samples=8)
    session.plan = start.copy()
    session.sensitivity_table = None
    sent = _count_sent(monkeypatch)
    there = session.mixed_precision("sqnr>=45", sensitivity_samples=8, workers=2)
    assert sent  # the ranking and the sweep went to the workers
    assert there.plan.to_dict() == here.plan.to_dict() and there.met == here.met
    with pytest.raises(WorkbenchError, match="workers"):
        session.mixed_precision("sqnr>=45", workers=0)
