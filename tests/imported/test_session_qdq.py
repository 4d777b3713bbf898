"""A Session on an already-quantized model: the model's thresholds next to calibration, the
plan from the model, keeping / replacing scales, FP16 switches, TensorRT-ready export,
evaluation against the recovered FP32 graph, project round trip."""
import numpy as np
import onnx
import pytest

import qdq_models
import tiny_models
from qdq_models import cnn_feed, qat_small_cnn, run_exact
from workbench.imported import read_qdq_model
from workbench.evaluate.metrics import compare_outputs
from workbench.session import Session


@pytest.fixture
def qat_project(tmp_path):
    fp32, qat, acts, weights = qat_small_cnn(seed=8)
    path = tmp_path / "qat.onnx"
    onnx.save(qat, str(path))
    data = tmp_path / "data"
    data.mkdir()
    for i, x in enumerate(cnn_feed(12, seed=30)["input"]):
        np.save(data / f"{i:03d}.npy", x)
    return {"fp32": fp32, "qat": qat, "path": path, "data": data, "acts": acts, "project": tmp_path / "proj"}


def test_session_keeps_the_model_plan_and_scales_and_shows_them_next_to_calibration(qat_project):
    p = qat_project
    s = Session(p["path"], p["data"], project=p["project"])
    assert s.imported is not None and not s.model_info.has_qdq()
    s.calibrate()
    qm = s.imported
    assert s.plan.int8_nodes() == qm.plan.int8_nodes()
    assert s.plan.amax_overrides == qm.amax() == {t: float(sc) * 127 for t, (sc, _) in p["acts"].items()}
    h = s.histogram("conv2")  # its input r1
    assert h["amax_by_method"]["model"] == qm.amax()["r1"] == h["chosen"]
    assert {"mse", "minmax", "model"} <= set(h["amax_by_method"])
    table = s.layer_table().set_index("node")
    assert table.loc["conv2", "amax_model"] == qm.amax()["r1"] == table.loc["conv2", "amax"]
    assert s.range_source("r1") == "model"
    # evaluation: against the recovered FP32 graph, which says so; with the model's scales the
    # evaluated model computes exactly what the QAT model computes
    b = s.rebuild()
    assert any("recovered" in n for n in b.notes)
    feed = {"input": np.concatenate([f["input"] for f in s.evaluator.batches])}
    want = compare_outputs(run_exact(p["fp32"], feed)["logits"], run_exact(p["qat"], feed)["logits"])
    assert b.summary["sqnr_db"] == pytest.approx(want["sqnr_db"], rel=1e-6)


def test_replace_scales_switch_precision_export_and_reset(qat_project, tmp_path):
    p = qat_project
    s = Session(p["path"], p["data"], project=p["project"])
    s.calibrate()
    model_amax = s.model_thresholds()
    assert s.use_calibrated_scales(["r1"]) == ["r1"]
    assert s.calibration.method == "auto" and s.ranges["r1"].amax == s.calibration.ranges["r1"].amax
    assert s.range_source("r1") == s.calib_settings.method and s.range_source("sum") == "model"
    s.undo()
    assert s.ranges["r1"].amax == model_amax["r1"]
    s.use_calibrated_scales(["r1"])
    s.set_precision("conv2", "fp16")
    out = s.export("qdq", tmp_path / "re.onnx")
    back = read_qdq_model(out)
    assert "conv2" in back.plan.fp16_nodes() and "conv2" not in back.plan.int8_nodes()
    kept = {t: float(r.scale) for t, r in back.activations.items()}
    for t in ("input", "sum", "pool", "flat"):
        assert kept[t] == float(np.float32(model_amax[t] / 127))  # the model's own scales
    assert not [f for f in back.findings if f.severity == "error"]
    with pytest.raises(Exception, match="no Q/DQ threshold"):
        s.use_model_scales(["no_such_tensor"])
    s.reset_plan()
    assert s.plan.amax_overrides == model_amax and s.plan.int8_nodes() == s.imported.plan.int8_nodes()


def test_project_round_trip_reopens_the_qdq_model(qat_project):
    p = qat_project
    s = Session(p["path"], p["data"], project=p["project"])
    s.calibrate()
    s.set_precision("fc", "fp32")
    s.save()
    t = Session.load(p["project"])
    assert t.imported is not None and t.plan == s.plan
    assert t.model_info.fingerprint() == s.model_info.fingerprint()
    assert t.histogram("conv2")["amax_by_method"]["model"] == s.model_thresholds()["r1"]


def test_ort_uint8_model_exports_tensorrt_ready(tmp_path):
    fp32 = tiny_models.small_cnn(opset=13)
    samples = [{"input": x} for x in cnn_feed(8, seed=7)["input"]]
    q = qdq_models.ort_quantized(fp32, samples, tmp_path, activation_type="QUInt8")
    path = tmp_path / "ort.onnx"
    onnx.save(q, str(path))
    data = tmp_path / "d"
    data.mkdir()
    for i, x in enumerate(cnn_feed(8, seed=40)["input"]):
        np.save(data / f"{i:03d}.npy", x)
    s = Session(path, data, project=tmp_path / "proj")
    s.calibrate()
    assert {f.code for f in s.quantized_findings()} >= {"unsigned", "output_qdq"}
    back = read_qdq_model(s.export("qdq", tmp_path / "trt_ready.onnx"))
    assert {t.dtype for t in back.activations.values()} == {"INT8"} and all(t.symmetric for t in back.tensors)
    assert not [f for f in back.findings if f.severity == "error"]
    # a FP32 model opened afterwards is an ordinary session again
    fp = tmp_path / "fp32.onnx"
    onnx.save(fp32, str(fp))
    s.open_model(fp)
    assert s.imported is None and s.model_thresholds() == {}


def test_the_app_runs_unchanged_on_a_qdq_model(qat_project):
    pytest.importorskip("ipywidgets")
    pytest.importorskip("plotly")
    pytest.importorskip("anywidget")
    from workbench.ui.app import Workbench

    p = qat_project
    app = Workbench(str(p["path"]), str(p["data"]), blocking=True, project=p["project"], batch_size=4)
    app.widget
    app.panels["calibration"].run.click()
    assert app.error is None
    s = app.session
    s.select("conv2")
    names = [t.name or "" for t in app.panels["histogram"].figure.data]
    model = s.model_thresholds()["r1"]
    assert any("model" in n and f"{model:.4g}" in n for n in names), names  # the "model" line
    app.panels["histogram"].clear_threshold()  # the app's "Use calibrated" button
    assert s.range_source("r1") == s.calib_settings.method
    app.panels["results"].rebuild.click()
    assert app.error is None and any("recovered" in n for n in s.history[-1].notes)
