"""Session.calibrate / set_method with ``workers=``: the auto search's runs in worker processes
give the ranges the in-process search gives."""
import numpy as np
import pytest

import realistic_models as R
import tiny_models
from workbench.errors import WorkbenchError
from workbench.search import executor as ex
from workbench.session import Session


def test_calibrate_with_workers_gives_the_same_auto_ranges(tmp_path, monkeypatch):
    model = tiny_models.save(R.classifier_relu6(), tmp_path / "m.onnx")
    for sub, n, seed in (("calib", 12, 1), ("eval", 8, 2)):
        (tmp_path / sub).mkdir()
        for i, s in enumerate(R.image_data(n, seed=seed)):
            np.save(tmp_path / sub / f"{i:02d}.npy", s["image"])
    session = Session(model, tmp_path / "calib", eval_data=tmp_path / "eval", batch_size=4)
    here = session.calibrate()  # method auto (the default), in this process
    assert session.range_search is not None
    sent = []
    original = ex.LocalProcesses._run_many
    monkeypatch.setattr(ex.LocalProcesses, "_run_many",
                        lambda self, bound, configs, *a: sent.append(len(configs)) or original(self, bound, configs, *a))
    there = session.calibrate(workers=2)  # statistics reused, the search runs again on 2 workers
    assert sum(sent) >= 5 and session.last_calibration["how"].startswith("reused") and there is not here
    assert {t: r.amax for t, r in there.tensors.items()} == {t: r.amax for t, r in here.tensors.items()}
    assert [r.chosen for r in there.tensors.values()] == [r.chosen for r in here.tensors.values()]
    with pytest.raises(WorkbenchError, match="workers"):
        session.set_method("auto", workers=0)
