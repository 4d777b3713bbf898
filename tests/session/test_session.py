"""Session: the plain state object, driven from code on a tiny model (no widgets)."""
import json

import numpy as np
import pytest

import tiny_models
from workbench.errors import WorkbenchError
from workbench.session import Session


@pytest.fixture
def tiny(tmp_path):
    """A tiny CNN plus calibration and evaluation folders of .npy batches."""
    model = tiny_models.save(tiny_models.small_cnn(), tmp_path / "cnn.onnx")
    rng = np.random.default_rng(0)
    for sub, n, seed in (("calib", 3, 1), ("eval", 2, 2)):
        d = tmp_path / sub
        d.mkdir()
        r = np.random.default_rng(seed)
        for i in range(n):
            x = r.standard_normal((4, 3, 16, 16)).astype(np.float32)
            x[0, 0, 0, 0] = 25.0  # an outlier, so methods disagree
            np.save(d / f"b{i}.npy", x)
    del rng
    return {"model": model, "calib": tmp_path / "calib", "eval": tmp_path / "eval", "root": tmp_path}


def _session(tiny, **kw):
    return Session(tiny["model"], tiny["calib"], eval_data=tiny["eval"], batch_size=4,
                   project=tiny["root"] / "proj", **kw)


def test_calibrate_gives_ranges_and_default_plan(tiny):
    s = _session(tiny)
    ranges = s.calibrate()
    assert s.last_calibration["how"] == "collected"
    assert s.stats.num_samples == 12
    table = s.layer_table()
    assert list(table["node"]) == [t.node for t in s.model_info.quantizable_nodes()]
    conv1 = table.set_index("node").loc["conv1"]
    assert conv1["tensor"] == "input"
    assert conv1["amax"] == pytest.approx(ranges["input"].amax)
    assert conv1["amax_minmax"] == pytest.approx(25.0, rel=1e-3)
    assert conv1["precision"] == "INT8"
    # method switch re-reads the statistics: minmax gives max |x|
    s.set_method("minmax")
    assert s.ranges["input"].amax == pytest.approx(25.0, rel=1e-3)


def test_statistics_are_reused_from_the_project_folder(tiny):
    s = _session(tiny)
    s.calibrate()
    hist = s.stats.collectors["input"].hist.copy()
    again = _session(tiny)
    again.calibrate()
    assert again.last_calibration["how"].startswith("reused from")
    assert np.array_equal(again.stats.collectors["input"].hist, hist)
    # another sample count is other data: collected anew
    fewer = _session(tiny)
    fewer.calibrate(num_samples=4)
    assert fewer.last_calibration["how"] == "collected"
    assert fewer.stats.num_samples == 4


def test_precision_changes_and_undo(tiny):
    s = _session(tiny)
    s.calibrate()
    assert s.undo() is None
    s.set_precision("conv2", "fp16")
    assert str(s.plan.precision("conv2")) == "fp16"
    s.set_precision_by_op("Conv", "fp32")
    assert str(s.plan.precision("conv1")) == "fp32"
    assert "Conv" in s.undo_label
    s.undo()
    assert str(s.plan.precision("conv1")) == "int8" and str(s.plan.precision("conv2")) == "fp16"
    s.undo()
    assert str(s.plan.precision("conv2")) == "int8"
    with pytest.raises(WorkbenchError, match="nope"):
        s.set_precision("nope", "fp16")


def test_manual_amax_changes_ranges_histogram_and_is_undoable(tiny):
    s = _session(tiny)
    s.calibrate(method="minmax")
    s.select("conv1")
    h = s.histogram()
    assert h["tensor"] == "input" and h["manual"] is None and h["clipped"] == 0.0
    s.set_amax("input", 2.0)
    h = s.histogram()
    assert h["manual"] == 2.0 and h["chosen"] == 2.0 and h["clipped"] > 0.01
    assert s.ranges["input"].amax == 2.0
    assert s.layer_table().set_index("node").loc["conv1", "manual"]
    s.undo()
    assert s.ranges["input"].amax == pytest.approx(25.0, rel=1e-3)


def test_rebuild_records_history_and_restore(tiny):
    s = _session(tiny)
    s.calibrate()
    b0 = s.rebuild()
    assert b0.id == 0 and 0 < b0.summary["cosine"] <= 1.0
    assert set(b0.per_layer["node"]) >= {"conv1", "conv2"}
    s.set_precision(s.plan.int8_nodes(), "fp32")
    b1 = s.rebuild(label="all fp32")
    assert b1.n_int8 == 0
    assert b1.summary["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert b1.summary["cosine"] > b0.summary["cosine"]
    table = s.history_table()
    assert list(table["build"]) == [0, 1] and list(table["n_int8"]) == [b0.n_int8, 0]
    s.restore(0)
    assert s.plan == b0.plan
    assert s.undo_label == "restore build 0"
    # the layer table shows the per-layer error of the last build (all FP32: none)
    assert s.layer_table()["sqnr_db"].isna().all()


def test_save_and_load_project(tiny):
    s = _session(tiny)
    s.calibrate(method="percentile", percentile=99.9)
    s.set_precision("conv2", "fp16")
    s.set_amax("input", 3.0)
    s.rebuild()
    s.select("conv2")
    s.save()
    loaded = Session.load(tiny["root"] / "proj")
    assert loaded.calib_settings.method == "percentile"
    assert loaded.calib_settings.percentile == 99.9
    assert loaded.plan == s.plan
    assert loaded.ranges["input"].amax == 3.0
    assert loaded.selected == "conv2"
    assert len(loaded.history) == 1
    assert loaded.history[0].summary["cosine"] == pytest.approx(s.history[0].summary["cosine"])
    assert list(loaded.history[0].per_layer["node"]) == list(s.history[0].per_layer["node"])
    assert loaded.stats is not None and loaded.last_calibration["how"].startswith("reused")
    data = json.loads((tiny["root"] / "proj" / "session.json").read_text())
    assert data["model"].endswith("cnn.onnx")


def test_load_refuses_missing_project(tmp_path):
    with pytest.raises(WorkbenchError, match="not a workbench project"):
        Session.load(tmp_path)


def test_errors_before_calibration_are_readable(tiny):
    s = _session(tiny)
    with pytest.raises(WorkbenchError, match="Calibrate first"):
        s.rebuild()
    with pytest.raises(WorkbenchError, match="calibrate first"):
        s.histogram("conv1")
    with pytest.raises(WorkbenchError, match="No model"):
        Session().calibrate()


def test_exports_write_files(tiny):
    s = _session(tiny)
    s.calibrate()
    s.set_precision("conv2", "fp16")
    qdq = s.export("qdq")
    import onnx

    ops = {n.op_type for n in onnx.load(str(qdq)).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    plan = json.loads(s.export("plan").read_text())
    assert "conv2" in json.dumps(plan)
    cache = s.export("cache").read_text().splitlines()
    assert cache[0].startswith("TRT-") and any(line.startswith("input:") for line in cache[1:])
    with pytest.raises(WorkbenchError, match="Unknown export kind"):
        s.export("zip")
