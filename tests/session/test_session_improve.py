"""Session.improve: the step table in the session state, builds and exports use the improved
model while the plan is the one it was judged under, new ranges reset it."""
import json

import numpy as np
import onnx
import pytest

import improve_models as M
from workbench.errors import WorkbenchError
from workbench.session.state import INVALIDATES


@pytest.fixture
def dw(tmp_path):
    return M.depthwise_session(tmp_path)


def _weights(path):
    m = onnx.load(str(path))
    return {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}


def test_improve_keeps_the_table_and_exports_the_improved_model(dw, tmp_path):
    dw.calibrate()
    plain = dw.export("qdq", tmp_path / "plain.onnx")
    events = []
    dw.subscribe(events.append)
    res = dw.improve(["rounding", "bias_correction"])
    assert dw.state.improvement is res and events
    rows = dw.step_table()
    assert [r["step"] for r in rows] == ["rounding", "bias_correction"]
    assert res.applied(), rows
    improved = dw.export("qdq", tmp_path / "steps.onnx")
    a, b = _weights(plain), _weights(improved)
    assert any(not np.array_equal(a[k], b[k]) for k in a if k in b)  # the file is the improved one
    assert json.loads((tmp_path / "steps.plan.json").read_text())["steps"]["applied"] == res.applied()
    build = dw.rebuild()
    assert any("accuracy steps applied" in n for n in build.notes)
    plain_sqnr = dw.evaluator.evaluate_model(str(plain)).summary()["sqnr_db"]
    assert build.summary["sqnr_db"] > plain_sqnr  # the build is of the improved model
    table = dw.layer_table().set_index("node")
    if "rounding" in res.applied():
        assert table.loc["dw", "weight_sqnr_rounded"] != table.loc["dw", "weight_sqnr_nearest"]
    if "bias_correction" in res.applied():
        assert table["bias_shift"].notna().any()


def test_a_plan_change_makes_it_stale_and_new_ranges_reset_it(dw, tmp_path):
    dw.calibrate()
    res = dw.improve(["rounding"])
    assert res.applied()
    assert dw.improvement_note() is None
    dw.set_precision("dw", "fp32")
    assert "plan changed" in dw.improvement_note()
    assert dw._export_source(dw.plan, dw.ranges)[0] is dw.model_info  # the plain model, said so
    assert any("plan changed" in n for n in dw.rebuild().notes)
    assert "improvement" in INVALIDATES["ranges"]
    dw.set_method("percentile")
    assert dw.improvement is None and dw.step_table() == []
    assert "weight_sqnr_rounded" not in dw.layer_table().columns


def test_bad_requests_get_clear_messages(dw):
    with pytest.raises(WorkbenchError, match="Calibrate first"):
        dw.improve()
    dw.calibrate()
    with pytest.raises(WorkbenchError, match="Unknown accuracy step"):
        dw.improve(["adaround"])
    with pytest.raises(WorkbenchError, match="Step 'smooth' cannot apply"):
        dw.improve(["smooth"], strict=True)
    res = dw.improve(["smooth"])  # not strict: skipped with its reason
    assert not res.rows[0].applied and "MatMul/Gemm" in res.rows[0].reason
