"""The accuracy steps on the one calibration path: judged where the ranges were judged, rescaled
tensors re-read with their own range method, and the written file carries the gain."""
import json

import numpy as np
import onnx
import pytest

import improve_models as M
from realistic_models import ArrayData
from workbench.errors import WorkbenchError
from workbench.export import export_result
from workbench.graph.model import ModelInfo
from workbench.precision import PrecisionPlan
from workbench.search.calibration import calibrate
from workbench.search.improve_steps import STEP_NAMES, ImprovedModel, _amax_of, check_steps, improve


def _samples(model, n=48, seed=1):
    return [{k: v[i] for k, v in b.items()} for b in M.batches(model, n // 4, size=4, seed=seed) for i in range(4)]


def _calibrated(model, method="auto"):
    info = ModelInfo(model)
    out = calibrate(info, ArrayData(info, _samples(model)), method=method)
    return info, out, PrecisionPlan.default(info)


def test_steps_are_judged_on_the_held_out_samples_and_the_written_file_gains(tmp_path):
    info, out, plan = _calibrated(M.depthwise_model("relu"))
    assert not out.holdout.optimistic
    res = improve(info, out.ranges, plan, out.holdout, out.evaluator)
    rows = {r.step: r for r in res.rows}
    assert list(rows) == list(STEP_NAMES)
    assert res.applied(), res.table()
    assert res.judged_on == out.holdout.description
    assert isinstance(res.model, ImprovedModel) and res.model.fingerprint() == info.fingerprint()
    plain = export_result(info, out.ranges, plan, tmp_path / "plain", kinds=["qdq"])["qdq"].onnx_path
    plan.steps = res.record()
    better = export_result(res.model, res.ranges, plan, tmp_path / "steps", kinds=["qdq"])["qdq"].onnx_path
    a, b = onnx.load(str(plain)), onnx.load(str(better))
    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]  # same graph
    changed = {i.name for i in b.graph.initializer} - {i.name for i in a.graph.initializer}
    assert all(n.op_type in ("Conv", "QuantizeLinear", "DequantizeLinear") for n in b.graph.node
               if set(n.input) & changed)  # only a bias input may be new
    # the claim is about the file: measured on the judged samples with exact semantics
    s_plain = out.evaluator.evaluate_model(str(plain)).summary()["sqnr_db"]
    s_better = out.evaluator.evaluate_model(str(better)).summary()["sqnr_db"]
    kept = [r for r in res.rows if r.applied][-1]
    assert s_better > s_plain + 0.1
    assert s_better == pytest.approx(kept.sqnr_after, abs=0.05)
    saved = json.loads((tmp_path / "steps.plan.json").read_text())
    assert saved["steps"]["applied"] == res.applied()
    assert PrecisionPlan.load(tmp_path / "steps.plan.json", info).steps["applied"] == res.applied()
    assert "steps" not in json.loads((tmp_path / "plain.plan.json").read_text())
    meta = {p.key: p.value for p in b.metadata_props}
    assert meta["workbench.source_fingerprint"] == info.fingerprint()  # still names the user's model


def test_a_rescaling_recalibrates_with_the_tensors_own_method():
    info, out, plan = _calibrated(M.transformer_model(), method="percentile")
    res = improve(info, out.ranges, plan, out.holdout, out.evaluator, steps=["smooth"])
    row = res.rows[0]
    assert row.applied, res.table()
    changed = [t for t in out.ranges.tensors if res.ranges[t].amax != out.ranges[t].amax]
    assert "ln" in changed
    for t in changed:  # the percentile of the rescaled tensor, not its max
        r = res.ranges[t]
        assert r.amax <= r.max + 1e-6 and "re-calibrated after smooth" in r.reason


def test_candidate_labels_are_read_on_new_statistics():
    class C:
        def compute_amax(self, method, percentile):
            return percentile / 100.0

    by = {"minmax": 8.0, "mse": 3.0, "percentile": 5.0}
    assert _amax_of("mse=percentile@99.99", C(), by, "minmax") == 3.0
    assert _amax_of("percentile@99.9", C(), by, "minmax") == pytest.approx(0.999)
    assert _amax_of("minmax*0.5", C(), by, "minmax") == 4.0
    assert _amax_of("manual", C(), by, "minmax") == 8.0


def test_a_step_that_cannot_apply_is_skipped_with_one_line_and_strict_names_it():
    info, out, plan = _calibrated(M.gemm_model(), method="minmax")
    res = improve(info, out.ranges, plan, out.holdout, out.evaluator, steps=["equalize", "rounding"])
    eq = res.rows[0]
    assert eq.step == "equalize" and not eq.applied and eq.sqnr_after is None
    assert "\n" not in eq.reason and "Conv" in eq.reason
    info, out, plan = _calibrated(M.depthwise_model("relu"), method="minmax")  # convolutions only
    with pytest.raises(WorkbenchError, match="Step 'smooth' cannot apply.*MatMul/Gemm"):
        improve(info, out.ranges, plan, out.holdout, out.evaluator, steps=["smooth"], strict=True)


def test_bad_step_names_and_missing_calibration():
    with pytest.raises(WorkbenchError, match="Unknown accuracy step.*'rouding'.*rounding"):
        check_steps(["rouding"])
    with pytest.raises(WorkbenchError, match="list of step names"):
        check_steps("rounding")
    assert check_steps(["bias_correction", "equalize"]) == ["equalize", "bias_correction"]
    info = ModelInfo(M.gemm_model())
    with pytest.raises(WorkbenchError, match="calibrate first"):
        improve(info, None, PrecisionPlan.default(info), None, None)


def test_no_step_asked_returns_the_plain_model():
    info, out, plan = _calibrated(M.gemm_model(), method="minmax")
    res = improve(info, out.ranges, plan, out.holdout, out.evaluator, steps=[])
    assert res.model is info and res.ranges is out.ranges and res.rows == [] and res.applied() == []
    assert np.isfinite(res.seconds)
