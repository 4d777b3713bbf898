"""The session's views behind the app (no widgets): staleness, threshold preview, graph facts."""
import math

import numpy as np
import pytest

import tiny_models
from workbench.calib.algorithms import clipped_fraction
from workbench.errors import WorkbenchError
from workbench.session import Session
from workbench.session.views import histogram_sqnr_db


@pytest.fixture
def session(tmp_path):
    model = tiny_models.save(tiny_models.small_cnn(), tmp_path / "cnn.onnx")
    (tmp_path / "calib").mkdir()
    x = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    x[0, 0, 0, 0] = 20.0
    np.save(tmp_path / "calib" / "a.npy", x)
    s = Session(model, tmp_path / "calib", batch_size=4)
    s.calibrate(method="mse")
    return s


def test_histogram_sqnr_matches_direct_quantization():
    x = np.abs(np.random.default_rng(1).laplace(size=200_000))
    hist, edges = np.histogram(x, bins=4096, range=(0, x.max()))
    width = edges[1] - edges[0]
    for amax in (x.max(), 3.0, 1.0):
        scale = amax / 127
        deq = np.minimum(np.round(x / scale), 127) * scale
        direct = 10 * np.log10(np.sum(x ** 2) / np.sum((x - deq) ** 2))
        assert histogram_sqnr_db(hist, width, amax) == pytest.approx(direct, abs=0.6)
    # clipping harder costs more; exact zeros cost nothing
    assert histogram_sqnr_db(hist, width, 1.0) < histogram_sqnr_db(hist, width, 3.0)
    h = np.array([1000, 0, 0, 10])
    assert histogram_sqnr_db(h, 1.0, 4.0, zero_count=1000) > histogram_sqnr_db(h, 1.0, 4.0)
    assert math.isnan(histogram_sqnr_db([], 1.0, 1.0))


def test_staleness_names_what_changed_since_the_last_build(session):
    s = session
    assert s.staleness() == []  # no build yet: nothing to be stale
    s.rebuild()
    assert s.staleness() == []
    s.set_precision("conv1", "fp16")
    (reason,) = s.staleness()
    assert "conv1 INT8 → FP16" in reason
    s.set_amax("r1", 1.0)
    assert any("threshold of 1 tensor(s) changed: r1" in r for r in s.staleness())
    s.undo()
    s.undo()
    assert s.staleness() == []  # back to what was built
    s.set_method("minmax")
    assert s.staleness() == ["range method changed: mse → minmax"]
    s.set_method("mse")
    assert s.staleness() == []  # the same ranges as built
    s.set_method("percentile", 99.0)
    s.set_method("percentile", 99.9)
    s.rebuild()
    s.set_method("percentile", 90.0)
    assert s.staleness() == ["ranges were recomputed (new calibration or method parameter)"]
    s.rebuild()
    assert s.staleness() == []


def test_preview_amax_is_what_setting_it_would_give(session):
    s = session
    tensor, now = "r1", s.ranges["r1"].amax
    c = s.stats.collectors[tensor]
    same = s.preview_amax("conv2", now, samples=8)  # a node names its input tensor
    assert same["tensor"] == tensor and same["output_delta_db"] == 0.0
    low = s.preview_amax(tensor, now / 4, samples=8)
    assert low["clipped"] == pytest.approx(clipped_fraction(c.hist, c.bin_width, now / 4))
    assert low["tensor_sqnr_db"] < low["tensor_sqnr_now"]
    # the output change is the one a rebuild with that threshold shows (same samples: emulation)
    base = s.rebuild().summary["sqnr_db"]
    s.set_amax(tensor, now / 4)
    after = s.rebuild().summary["sqnr_db"]
    assert low["output_delta_db"] == pytest.approx(after - base, abs=1e-3)
    assert s.plan.amax_overrides == {tensor: pytest.approx(now / 4)}
    s.undo()
    # a tensor without Q/DQ in the plan (its readers, conv2 and the residual add, not INT8)
    s.set_precision(["conv2", "add"], "fp32")
    off = s.preview_amax(tensor, now / 4)
    assert off["in_use"] is False and off["output_delta_db"] is None
    with pytest.raises(WorkbenchError, match="finite and > 0"):
        s.preview_amax(tensor, 0.0)
    with pytest.raises(WorkbenchError, match="not observed"):
        s.preview_amax("not_a_tensor", 1.0)


def test_preview_sample_count_follows_the_time_budget(session):
    s = session
    assert s.preview_samples() == 2  # before any run
    s.state.preview_seconds_per_sample = 0.05
    assert s.preview_samples(budget_s=0.22) == 4
    s.state.preview_seconds_per_sample = 1.0
    assert s.preview_samples(budget_s=0.22) == 1


def test_graph_view_facts(session):
    s = session
    g = s.graph_view()
    assert g["quantizable"] == {t.node for t in s.model_info.quantizable_nodes()}
    assert g["precision"]["conv1"] == "INT8" and g["sqnr"] == {}
    assert "input" in g["qdq"]["conv1"]
    assert all(g["producer"][t] for t in ("r1",))
    s.rebuild()
    assert set(s.graph_view()["sqnr"]) == set(s.history[-1].per_layer["node"])
