"""The app's widget logic without a browser: set values, click buttons, check state and figures."""
import numpy as np
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")
import tiny_models  # noqa: E402
from workbench.ui import plots  # noqa: E402
from workbench.ui.app import Workbench  # noqa: E402
from workbench.ui.panels.layers import filter_and_sort  # noqa: E402


@pytest.fixture
def wb(tmp_path):
    model = tiny_models.save(tiny_models.small_cnn(), tmp_path / "cnn.onnx")
    (tmp_path / "calib").mkdir()
    x = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    x[0, 0, 0, 0] = 20.0
    np.save(tmp_path / "calib" / "a.npy", x)
    app = Workbench(model, tmp_path / "calib", blocking=True, project=tmp_path / "proj", batch_size=4)
    app.widget  # build the panels
    return app


def _calibrated(wb):
    wb.panels["calibration"].run.click()
    assert wb.error is None
    return wb


def test_run_calibration_button_fills_table_and_histogram(wb):
    p = wb.panels
    p["calibration"].method.value = "minmax"
    _calibrated(wb)
    assert wb.session.calib_settings.method == "minmax"
    assert "collected" in p["calibration"].info.value
    nodes = [v for _, v in p["layers"].rows.options]
    assert nodes == [t.node for t in wb.session.model_info.quantizable_nodes()]
    # the histogram shows the selected node's input with the chosen (minmax) line at max |x|
    (chosen,) = plots.traces_by_meta(p["histogram"].figure, "chosen")
    assert chosen.x[0] == pytest.approx(20.0, rel=1e-3)


def test_selecting_a_row_selects_everywhere(wb):
    p = _calibrated(wb).panels
    p["layers"].rows.value = ("conv2",)
    assert wb.session.selected == "conv2"
    assert "<b>conv2</b>" in p["histogram"].caption.value
    (hist,) = plots.traces_by_meta(p["histogram"].figure, "histogram")
    c = wb.session.stats.collectors["r1"]
    (clipped,) = plots.traces_by_meta(p["histogram"].figure, "clipped")
    assert sum(hist.y) + sum(clipped.y) == c.hist.sum()
    # selecting from code moves the table selection
    wb.select("fc")
    assert p["layers"].rows.value == ("fc",)


def test_method_change_redraws_without_new_inference(wb):
    p = _calibrated(wb).panels
    stats = wb.session.stats
    p["calibration"].method.value = "percentile"
    assert wb.session.stats is stats
    assert wb.session.ranges.method == "percentile"
    (chosen,) = plots.traces_by_meta(p["histogram"].figure, "chosen")
    assert chosen.x[0] == pytest.approx(wb.session.ranges["input"].amax)


def test_manual_threshold_slider_updates_plan_and_undo(wb):
    p = _calibrated(wb).panels
    wb.select("conv1")
    p["histogram"].threshold.value = 1.5
    p["histogram"].apply.click()
    assert wb.session.plan.amax_overrides == {"input": pytest.approx(1.5, abs=0.03)}
    assert plots.traces_by_meta(p["histogram"].figure, "manual")
    assert "*" in p["layers"].rows.options[0][0]  # manual amax marked in the table
    p["precision"].undo.click()
    assert wb.session.plan.amax_overrides == {}
    assert not plots.traces_by_meta(p["histogram"].figure, "manual")


def test_precision_buttons_bulk_and_undo(wb):
    p = _calibrated(wb).panels
    p["layers"].rows.value = ("conv1", "conv2")
    p["precision"].buttons["fp16"].click()
    assert [str(wb.session.plan.precision(n)) for n in ("conv1", "conv2")] == ["fp16", "fp16"]
    assert "FP16" in dict((v, k) for k, v in p["layers"].rows.options)["conv1"]
    p["precision"].op_type.value = "Gemm"
    p["precision"].bulk_precision.value = "fp32"
    p["precision"].bulk.click()
    assert str(wb.session.plan.precision("fc")) == "fp32"
    p["precision"].undo.click()
    assert str(wb.session.plan.precision("fc")) == "int8"


def test_rebuild_shows_metrics_history_and_restores(wb):
    p = _calibrated(wb).panels
    p["results"].rebuild.click()
    assert "data-build='0'" in p["results"].metrics.value
    wb.select("conv1")
    p["precision"].buttons["fp32"].click()
    p["results"].rebuild.click()
    assert "data-build='1'" in p["results"].metrics.value
    assert list(p["results"].tradeoff.data[0].customdata) == [0, 1]
    bars = p["results"].layer_errors.data[0]
    assert "conv1" not in list(bars.customdata)  # FP32 layers have no per-layer error bar
    p["results"].restore_choice.value = 0
    p["results"].restore.click()
    assert str(wb.session.plan.precision("conv1")) == "int8"


def test_errors_are_shown_not_raised(wb):
    p = wb.panels
    p["results"].rebuild.click()  # not calibrated yet
    assert "Calibrate first" in wb.error
    assert "Calibrate first" in wb.runner.error.value and "Traceback" not in wb.runner.error.value
    p["model"].model_path.value = "/nonexistent/model.onnx"
    p["model"].apply.click()
    assert "/nonexistent/model.onnx" in wb.error
    p["calibration"].run.click()  # a good action clears the error
    assert wb.error is None


def test_exports_from_buttons(wb):
    p = _calibrated(wb).panels
    for kind in ("qdq", "plan", "cache", "report"):
        p["export"].buttons[kind].click()
        assert wb.error is None, wb.error
    written = p["export"].written.value
    assert written.count("wrote") == 4
    report = (wb.session.project / "exports" / "cnn.quant.report.html").read_text()
    assert "conv1" in report and "plotly" in report.lower()


def test_layer_filter_and_sort():
    import pandas as pd

    df = pd.DataFrame({"node": ["a_conv", "b_add", "c_conv"], "op_type": ["Conv", "Add", "Conv"],
                       "tensor": ["x", "y", "z"], "precision": ["INT8", "FP16", "INT8"],
                       "clipped_pct": [0.1, None, 2.0]})
    assert list(filter_and_sort(df, "conv", "graph order")["node"]) == ["a_conv", "c_conv"]
    assert list(filter_and_sort(df, "fp16", "graph order")["node"]) == ["b_add"]
    assert list(filter_and_sort(df, "", "clipped %", descending=True)["node"]) == ["c_conv", "a_conv", "b_add"]
    assert list(filter_and_sort(df, "[", "name")["node"]) == []  # a bad regex is a plain substring
