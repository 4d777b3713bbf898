"""Cross-layer equalization and smoothing: FP32 function kept (through Relu), a held-out gain
after re-calibration, and the Clip/Relu6 caveat handled (skipped, or applied and measured)."""
import numpy as np

import improve_models as M
from workbench.improve import equalize, minmax_calibrate, smooth
from workbench.improve.graphops import get_const
from workbench.improve.runner import ExactRunner


def _rel_change(a, b, data) -> float:
    ra, rb = ExactRunner(a).run_all(data), ExactRunner(b).run_all(data)
    return max(float(np.abs(x["y"] - y["y"]).max() / np.abs(x["y"]).max()) for x, y in zip(ra, rb))


def _recalibrated(model, res, amax, calib) -> dict:
    out = dict(amax)
    out.update(minmax_calibrate(res.model, calib, [t for t in res.changed if t in amax]))
    return out


def _setup(model, size=4):
    data = M.batches(model, 12, size=size)
    calib, held = data[:8], data[8:]
    return calib, held, M.minmax_amax(model, calib)


def test_equalize_through_relu_keeps_fp32_and_gains():
    model = M.depthwise_model("relu")
    calib, held, amax = _setup(model)
    res = equalize(model, calib)
    assert res.pairs == {"expand": ["dw"], "dw": ["project"]} and not res.changes_fp32
    assert _rel_change(model, res.model, held) < 1e-4
    assert {"y1", "a1", "yd", "ad"} <= set(res.changed)
    base = M.qdq_sqnr(model, amax, held)
    after = M.qdq_sqnr(res.model, _recalibrated(model, res, amax, calib), held, reference=model)
    assert after > base + 3.0, (base, after)


def test_equalize_skips_relu6_with_a_reason():
    model = M.depthwise_model("relu6")
    calib, held, _ = _setup(model)
    res = equalize(model, calib)
    assert "expand" not in res.pairs and "Clip" in res.skipped["expand"]
    assert res.pairs == {"dw": ["project"]}
    assert _rel_change(model, res.model, held) < 1e-4


def test_equalize_through_relu6_when_asked_changes_fp32_and_says_so():
    model = M.depthwise_model("relu6")
    calib, held, _ = _setup(model)
    res = equalize(model, calib, clip="apply")
    assert "expand" in res.pairs and res.changes_fp32 == ["expand"]
    assert _rel_change(model, res.model, held) > 1e-3  # the caveat is real on this model


def test_classic_cle_without_data_equalizes_weight_ranges():
    model = M.depthwise_model("relu")
    res = equalize(model)
    def spread(m):
        r = np.abs(get_const(m.graph, "w1")).reshape(16, -1).max(axis=1)
        return r.max() / r.min()
    assert spread(model) > 100 and spread(res.model) < 1.01


def test_smooth_keeps_fp32_and_gains():
    model = M.transformer_model()
    calib, held, amax = _setup(model, 8)
    res = smooth(model, calib, 0.5)
    assert res.pairs == {"ln": ["fc1"], "fc1": ["fc2"]}
    assert _rel_change(model, res.model, held) < 1e-4
    assert not np.allclose(get_const(res.model.graph, "gamma"), get_const(model.graph, "gamma"))
    base = M.qdq_sqnr(model, amax, held)
    after = M.qdq_sqnr(res.model, _recalibrated(model, res, amax, calib), held, reference=model)
    assert after > base + 10.0, (base, after)


def test_smooth_skips_a_layernorm_output_read_by_a_residual_add():
    model = M.transformer_model(residual_reader=True)
    calib, _, _ = _setup(model, 8)
    res = smooth(model, calib, 0.5)
    assert "ln" not in res.pairs and "residual" in res.skipped["ln"]
    assert res.pairs == {"fc1": ["fc2"]}
