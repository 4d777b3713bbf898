"""The step table: each step kept only when the held-out check improves, one-line reasons for
steps that cannot apply, and a result that exports to the same kind of Q/DQ model."""
import numpy as np
import pytest

import improve_models as M
from workbench.errors import WorkbenchError
from workbench.improve import STEPS, apply_steps
from workbench.improve.adapter import build_qdq


def test_table_on_depthwise_model():
    model = M.depthwise_model("relu")
    calib, held, amax = M.calib_holdout(model)
    res = apply_steps(model, amax, calib, holdout=held)
    rows = {r.step: r for r in res.rows}
    assert list(rows) == list(STEPS)
    assert rows["equalize"].applied and rows["equalize"].layers == ["expand", "dw"]
    assert rows["equalize"].sqnr_after > rows["equalize"].sqnr_before + 3.0
    assert not rows["smooth"].applied and "MatMul/Gemm" in rows["smooth"].reason
    for r in res.rows:  # each kept step improved by the margin; before = the previous state
        if r.applied:
            assert r.sqnr_after >= r.sqnr_before + 0.1
    kept = [r for r in res.rows if r.sqnr_after is not None and r.applied]
    final = M.qdq_sqnr(res.model, res.amax, held, reference=model)
    assert final == pytest.approx(kept[-1].sqnr_after, abs=1e-6)  # the table is about this export
    ops = lambda m: sorted({n.op_type for n in m.graph.node})  # noqa: E731
    assert ops(build_qdq(res.model, res.amax)) == ops(build_qdq(model, amax))
    assert "equalize" in res.table() and "held-out" in res.table()


def test_transformer_smoothing_kept_with_alpha_from_the_grid():
    model = M.transformer_model()
    calib, held, amax = M.calib_holdout(model, 8)
    res = apply_steps(model, amax, calib, holdout=held, steps=["smooth", "bias_correction"])
    smooth_row = res.rows[0]
    assert smooth_row.applied and smooth_row.details["alpha"] in (0.25, 0.5, 0.75)
    assert smooth_row.sqnr_after > smooth_row.sqnr_before + 10.0
    assert [r.step for r in res.rows] == ["smooth", "bias_correction"]


def test_single_batch_skips_every_step_with_a_reason():
    model = M.gemm_model()
    calib, _, amax = M.calib_holdout(model, 16)
    res = apply_steps(model, amax, calib[:1])
    assert all(not r.applied and "hold-out" in r.reason for r in res.rows)
    assert res.model is model


def test_strict_names_the_step_and_the_reason():
    model = M.depthwise_model("relu")
    calib, held, amax = M.calib_holdout(model)
    with pytest.raises(WorkbenchError, match="'smooth' cannot apply.*MatMul/Gemm"):
        apply_steps(model, amax, calib, holdout=held, steps=["smooth"], strict=True)
    with pytest.raises(WorkbenchError, match="Unknown step"):
        apply_steps(model, amax, calib, holdout=held, steps=["adaround"])


def test_failing_step_is_one_line_and_the_others_still_run():
    model = M.depthwise_model("relu")
    calib, held, amax = M.calib_holdout(model)

    def broken(m, b, tensors):
        raise ValueError("boom")

    res = apply_steps(model, amax, calib, holdout=held, calibrate=broken, steps=["equalize", "rounding"])
    eq, rnd = res.rows
    assert not eq.applied and eq.reason == "ValueError: boom"
    assert rnd.sqnr_after is not None


def test_no_gain_keeps_the_input_model():
    model = M.gemm_model()
    calib, held, amax = M.calib_holdout(model, 32)
    res = apply_steps(model, amax, calib, holdout=held, min_gain_db=100.0)
    assert not res.applied() and res.model is model and res.amax == amax
    assert any("no held-out gain" in r.reason for r in res.rows)


def test_metric_decides_when_given():
    model = M.gemm_model()
    calib, held, amax = M.calib_holdout(model, 32)

    def neg_max_error(ref, out):  # higher is better
        return -max(float(np.abs(r["y"] - o["y"]).max()) for r, o in zip(ref, out))

    res = apply_steps(model, amax, calib, holdout=held, metric=neg_max_error, steps=["rounding", "bias_correction"])
    for r in res.rows:
        assert r.metric_before is not None and r.metric_after is not None
        assert r.applied == (r.metric_after > r.metric_before)
