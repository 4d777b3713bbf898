"""A saved project keeps the accuracy steps: the loaded session has the same step table and
exports bit-identical files; a damaged or missing model-change file is refused by name."""
import json

import numpy as np
import pytest

import improve_models as M
from workbench.errors import WorkbenchError
from workbench.session import Session
from workbench.session.improve import IMPROVEMENT_FILE


@pytest.fixture
def project(tmp_path):
    s = M.depthwise_session(tmp_path)
    s.calibrate()
    return s, tmp_path


def test_a_loaded_project_exports_the_same_improved_files(project):
    s, tmp = project
    plain = s.export("qdq", tmp / "plain.onnx")
    res = s.improve(["rounding", "bias_correction"])
    assert res.applied() and res.layer_details(), s.step_table()
    first = s.export("qdq", tmp / "first.onnx")
    assert first.read_bytes() != plain.read_bytes()  # the steps changed the file
    s.save()
    assert (tmp / "proj" / IMPROVEMENT_FILE).exists()
    loaded = Session.load(tmp / "proj")
    assert loaded.step_table() == s.step_table()
    assert loaded.improvement.applied() == res.applied() and loaded.improvement_note() is None
    assert loaded.improvement.layer_details() == res.layer_details()
    again = loaded.export("qdq", tmp / "again.onnx")
    assert again.read_bytes() == first.read_bytes()  # bit-identical model
    plan_a = json.loads((tmp / "first.plan.json").read_text())
    plan_b = json.loads((tmp / "again.plan.json").read_text())
    assert plan_a["steps"] == plan_b["steps"]
    assert loaded.layer_table().equals(s.layer_table())  # the per-layer figures of the steps too


def test_no_step_kept_saves_the_table_only(project):
    s, tmp = project
    s.improve(["smooth"])  # cannot apply to a convolution-only model: a row with its reason
    s.save()
    assert not (tmp / "proj" / IMPROVEMENT_FILE).exists()
    loaded = Session.load(tmp / "proj")
    assert loaded.step_table() == s.step_table() and "MatMul/Gemm" in loaded.step_table()[0]["reason"]


def test_a_damaged_or_missing_change_file_is_named(project):
    s, tmp = project
    s.improve(["rounding"])
    assert s.improvement.applied()
    s.save()
    changes = tmp / "proj" / IMPROVEMENT_FILE
    with np.load(changes) as z:
        arrays = {k: z[k] for k in z.files}
    key = sorted(arrays)[0]
    arrays[key] = arrays[key][:-1]
    with open(changes, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(WorkbenchError, match="improvement.npz.*digest"):
        Session.load(tmp / "proj")
    changes.unlink()
    with pytest.raises(WorkbenchError, match="improvement.npz.*missing"):
        Session.load(tmp / "proj")


def test_steps_on_other_ranges_are_not_restored(project):
    s, tmp = project
    s.improve(["rounding"])
    s.save()
    state = json.loads((tmp / "proj" / "session.json").read_text())
    state["improvement"]["base_ranges"] = "0" * 24  # computed on other ranges
    (tmp / "proj" / "session.json").write_text(json.dumps(state))
    with pytest.warns(UserWarning, match="not restored.*ranges"):
        loaded = Session.load(tmp / "proj")
    assert loaded.improvement is None
