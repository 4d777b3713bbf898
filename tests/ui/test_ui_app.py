"""The app's widget logic without a browser: set values, click buttons, check state and figures."""
import threading

import numpy as np
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")
pytest.importorskip("anywidget")
import tiny_models  # noqa: E402
from workbench.calib.algorithms import clipped_fraction  # noqa: E402
from workbench.errors import Cancelled  # noqa: E402
from workbench.session import Event  # noqa: E402
from workbench.ui import plots  # noqa: E402
from workbench.ui.app import TABS, Workbench  # noqa: E402
from workbench.ui.graph_plot import MISSING_COLOR  # noqa: E402
from workbench.ui.panels.base import Panel  # noqa: E402
from workbench.ui.panels.layers import filter_and_sort  # noqa: E402
from workbench.ui.report import export_report  # noqa: E402


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


def _row(wb, node):
    (row,) = [r for r in wb.panels["layers"].rows.rows if r["key"] == node]
    cols = [c["key"] for c in wb.panels["layers"].rows.columns]
    return dict(zip(cols, row["cells"]))


def test_every_panel_follows_the_protocol(wb):
    for name, panel in wb.panels.items():
        assert isinstance(panel, Panel) and panel.name == name
        assert all(isinstance(e, Event) for e in panel.events), name
    # the tab bar says what a user looks for, in this order
    assert [wb.tabs.get_title(i) for i in range(len(TABS))] == [
        "Results", "History", "Model graph", "Sensitivity & auto", "Export"]
    # a running task disables exactly the controls that start work, panel by panel
    wb.runner._set_busy(True)
    assert wb.panels["calibration"].run.disabled and wb.panels["results"].rebuild.disabled
    assert wb.panels["search"].auto.disabled and wb.panels["search"].sensitivity.disabled
    assert not wb.panels["precision"].buttons["fp16"].disabled
    wb.runner._set_busy(False)
    assert not wb.panels["results"].rebuild.disabled


def test_run_calibration_fills_table_and_histogram_and_folds_setup(wb):
    p = wb.panels
    assert wb.setup.selected_index == 0  # open until calibrated
    p["calibration"].method.value = "minmax"
    _calibrated(wb)
    assert wb.setup.selected_index is None and "cnn.onnx" in wb.setup.get_title(0)
    assert wb.session.calib_settings.method == "minmax"
    assert "collected" in p["calibration"].info.value
    nodes = [r["key"] for r in p["layers"].rows.rows]
    assert nodes == [t.node for t in wb.session.model_info.quantizable_nodes()]
    assert all(c["label"] and c["tooltip"] for c in p["layers"].rows.columns)
    # the histogram shows the selected node's input with the chosen (minmax) line at max |x|
    (chosen,) = plots.traces_by_meta(p["histogram"].figure, "chosen")
    assert chosen.x[0] == pytest.approx(20.0, rel=1e-3)
    lo, hi = p["histogram"].figure.layout.xaxis.range
    assert lo == 0 and hi >= 20.0


def test_selecting_a_row_selects_everywhere(wb):
    p = _calibrated(wb).panels
    p["layers"].rows.click_row("conv2")
    assert wb.session.selected == "conv2"
    assert "<b>conv2</b>" in p["histogram"].caption.value
    (hist,) = plots.traces_by_meta(p["histogram"].figure, "histogram")
    (clipped,) = plots.traces_by_meta(p["histogram"].figure, "clipped")
    assert sum(hist.y) + sum(clipped.y) == wb.session.stats.collectors["r1"].hist.sum()
    (ring,) = plots.traces_by_meta(p["graph"].figure, "selected")
    assert ring.x[0] == p["graph"].layout.x["conv2"]
    wb.select("fc")  # from code: the table follows
    assert p["layers"].rows.selected == ["fc"]


def test_sorting_by_header_and_filter(wb):
    p = _calibrated(wb).panels
    table = p["layers"].rows
    table.click_header("clipped_pct")  # descending first: most clipped on top
    shown = [r["key"] for r in table.rows]
    clipped = wb.session.layer_table().set_index("node")["clipped_pct"]
    assert [clipped[n] for n in shown] == sorted(clipped[shown], reverse=True)
    p["layers"].filter.value = "conv"
    assert [r["key"] for r in table.rows] == sorted((n for n in shown if "conv" in n), key=shown.index)
    assert "2 of 6" in p["layers"].count.value
    p["layers"].graph_order.click()
    assert [r["key"] for r in table.rows] == ["conv1", "conv2"]


def test_method_change_redraws_without_new_inference(wb):
    p = _calibrated(wb).panels
    stats = wb.session.stats
    p["calibration"].method.value = "percentile"
    assert wb.session.stats is stats
    assert wb.session.ranges.method == "percentile"
    (chosen,) = plots.traces_by_meta(p["histogram"].figure, "chosen")
    assert chosen.x[0] == pytest.approx(wb.session.ranges["input"].amax)


def test_live_threshold_preview_then_set_and_undo(wb):
    p = _calibrated(wb).panels
    wb.select("conv1")
    h = p["histogram"]
    h.threshold.value = 1.5  # a drag step (blocking app: computed at once)
    prev = h.last_preview
    c = wb.session.stats.collectors["input"]
    assert prev["clipped"] == pytest.approx(clipped_fraction(c.hist, c.bin_width, 1.5))
    assert prev["clipped"] > prev["clipped_now"] and prev["tensor_sqnr_db"] < prev["tensor_sqnr_now"]
    assert prev["in_use"] and prev["output_delta_db"] < 0  # clipping the input at 1.5 hurts the output
    (line,) = plots.traces_by_meta(h.figure, "preview")
    assert tuple(line.x) == (1.5, 1.5)
    assert "dB" in h.preview.value and "worse" in h.preview.value
    assert wb.session.plan.amax_overrides == {}  # nothing committed by a preview
    h.position.drag(0.25)  # the slider moves in shares of the plotted range
    assert h.last_preview["amax"] == pytest.approx(0.25 * h._top) and h.threshold.value == pytest.approx(
        0.25 * h._top, rel=1e-4)
    h.threshold.value = 1.5
    h.apply.click()
    assert wb.session.plan.amax_overrides == {"input": pytest.approx(1.5, abs=0.03)}
    assert plots.traces_by_meta(h.figure, "manual")
    assert _row(wb, "conv1")["amax"].endswith("*")  # manual amax marked in the table
    p["precision"].undo.click()
    assert wb.session.plan.amax_overrides == {}
    assert not plots.traces_by_meta(h.figure, "manual")


def test_precision_buttons_bulk_and_undo(wb):
    p = _calibrated(wb).panels
    p["layers"].rows.selected = ["conv1", "conv2"]
    p["precision"].buttons["fp16"].click()
    assert [str(wb.session.plan.precision(n)) for n in ("conv1", "conv2")] == ["fp16", "fp16"]
    assert _row(wb, "conv1")["precision"] == "FP16"
    p["precision"].op_type.value = "Gemm"
    p["precision"].bulk_precision.value = "fp32"
    p["precision"].bulk.click()
    assert str(wb.session.plan.precision("fc")) == "fp32"
    assert "1 node(s) set to FP32" in p["precision"].info.value
    p["precision"].undo.click()
    assert str(wb.session.plan.precision("fc")) == "int8"


def test_results_marked_stale_on_change_and_fresh_after_rebuild(wb):
    p = _calibrated(wb).panels
    r = p["results"]
    assert "data-state='none'" in r.stale.value
    r.rebuild.click()
    assert "data-state='fresh'" in r.stale.value and "data-state='fresh'" in r.metrics.value
    wb.select("conv1")
    p["precision"].buttons["fp32"].click()
    assert "data-state='stale'" in r.stale.value and "conv1 INT8 → FP32" in r.stale.value
    assert "wb-is-stale" in r.metrics.value
    p["precision"].undo.click()  # back to what was built: fresh again
    assert "data-state='fresh'" in r.stale.value
    p["calibration"].method.value = "minmax"
    assert "range method changed: auto → minmax" in r.stale.value
    r.rebuild.click()
    assert "data-state='fresh'" in r.stale.value and "data-build='1'" in r.metrics.value


def test_rebuild_shows_metrics_history_and_restores(wb):
    p = _calibrated(wb).panels
    p["results"].rebuild.click()
    assert "data-build='0'" in p["results"].metrics.value
    assert "not measured" in p["results"].metrics.value and "None" not in p["results"].metrics.value
    wb.select("conv1")
    p["precision"].buttons["fp32"].click()
    p["results"].rebuild.click()
    m = p["results"].metrics.value
    assert "<th>metric</th><th>build 0 (before)</th><th>build 1 (latest)</th>" in m
    pts = p["history"].tradeoff.data[0]
    assert list(pts.x) == sorted(pts.x) and sorted(pts.customdata) == [0, 1]
    lo, hi = p["history"].tradeoff.layout.xaxis.range
    assert lo < min(pts.x) and hi > max(pts.x)  # every point inside the axis
    bars = p["results"].layer_errors.data[0]
    assert "conv1" not in list(bars.customdata)  # FP32 layers have no per-layer error bar
    wb.select("conv2")  # the selected layer's bar is outlined, without redrawing the chart
    assert [w for n, w in zip(bars.customdata, bars.marker.line.width) if w] == [3]
    assert bars.customdata[list(bars.marker.line.width).index(3)] == "conv2"
    p["history"].restore_choice.value = 0
    p["history"].restore.click()
    assert str(wb.session.plan.precision("conv1")) == "int8"


def test_a_build_only_backend_shows_what_it_reports_and_no_latency(wb):
    from workbench.backends.registry import get_backend

    ok, _ = get_backend("trt").available()
    runs, _ = get_backend("trt").can_run()
    if not ok or runs:
        pytest.skip("needs a TensorRT builder without a GPU to time on")
    p = _calibrated(wb).panels
    r = p["results"]
    trt = [(label, v) for label, v in r.backend.options if v[0] == "trt"]
    assert trt and "build only" in trt[0][0] and "build only" in r.backend_note.value
    r.backend.value, r.latency.value = trt[0][1], True
    r.rebuild.click()
    assert wb.error is None, wb.error
    m = r.metrics.value
    assert "not measured" in m and "engine" in m and "MB" in m  # the engine's size, as the backend gave it
    assert wb.session.history[-1].latency_ms is None


def test_graph_view_nodes_colours_and_click_selects(wb):
    p = _calibrated(wb).panels
    g = p["graph"]
    (nodes,) = plots.traces_by_meta(g.figure, "nodes")
    assert sorted(nodes.customdata) == sorted(n.name for n in wb.session.model_info.nodes)
    (qdq,) = plots.traces_by_meta(g.figure, "qdq")
    placement = wb.session.graph_view()["qdq"]
    assert len(qdq.x) == sum(len(v) for v in placement.values()) > 0
    g.figure.click("nodes", list(nodes.customdata).index("conv2"))
    assert wb.session.selected == "conv2" and p["layers"].rows.selected == ["conv2"]
    p["results"].rebuild.click()
    g.color_by.value = "sqnr"
    (nodes,) = plots.traces_by_meta(g.figure, "nodes")
    sqnr = dict(zip(wb.session.history[-1].per_layer["node"], wb.session.history[-1].per_layer["sqnr_db"]))
    k = list(nodes.customdata).index("conv1")
    assert f"{sqnr['conv1']:.3g}" in nodes.hovertext[k]
    colors = dict(zip(nodes.customdata, nodes.marker.color))
    worst, best = min(sqnr, key=sqnr.get), max(sqnr, key=sqnr.get)
    assert colors[worst] != colors[best]
    assert all(colors[n] == MISSING_COLOR for n in colors if n not in sqnr)  # no value: grey, not a colour
    assert plots.traces_by_meta(g.figure, "colorbar")
    g.show_nodes.value = "quantizable"
    (nodes,) = plots.traces_by_meta(g.figure, "nodes")
    assert set(nodes.customdata) == set(wb.session.graph_view()["quantizable"])


def test_sensitivity_fills_in_and_cancel_keeps_the_partial_ranking(wb):
    p = _calibrated(wb).panels
    seen = []
    stop = threading.Event()

    def progress(done, total):
        seen.append((done, total, len(p["search"].ranking.rows)))
        if done == 2:
            stop.set()
    with pytest.raises(Cancelled):
        wb.session.run_sensitivity(samples=4, progress=progress, cancel=stop)
    assert [s[2] for s in seen] == [1, 2]  # the table filled in as nodes were scored
    table = wb.session.sensitivity_table
    assert len(table) == 2 and table.attrs["complete"] is False
    assert "partial ranking" in p["search"].note.value
    p["search"].sensitivity.click()  # a full run replaces it
    assert len(wb.session.sensitivity_table) == len(wb.session.plan.int8_nodes())
    assert "partial" not in p["search"].note.value


def test_a_ranking_redraws_the_graph_only_when_it_is_coloured_by_it(wb, monkeypatch):
    p = _calibrated(wb).panels
    graph, drawn = p["graph"], []
    real = graph.redraw
    monkeypatch.setattr(graph, "redraw", lambda *a, **k: (drawn.append(graph.color_by.value), real(*a, **k)))
    p["search"].sensitivity.click()
    assert drawn == []  # coloured by precision: a ranking changes nothing drawn (no pass per scored node)
    graph.color_by.value = "sensitivity"
    p["search"].sensitivity.click()
    n = len(wb.session.plan.int8_nodes())
    assert drawn.count("sensitivity") >= n  # the colour change, then each scored node as it fills in


def test_auto_search_message_and_curve_agree(wb):
    p = _calibrated(wb).panels
    p["search"].target.value = "sqnr>=200"  # unreachable
    p["search"].auto.click()
    assert wb.error is None, wb.error
    assert "not reachable" in p["search"].info.value
    r = wb.session.mixed_precision_result
    (star,) = plots.traces_by_meta(p["search"].curve, "chosen")
    chosen = r.curve[r.curve["chosen"]].iloc[-1]
    assert star.y[0] == pytest.approx(chosen["sqnr_db"]) and chosen["nodes"] == ", ".join(r.fallback)


def test_auto_ranges_run_as_a_task_and_explained_thresholds_show_everywhere(wb):
    p = wb.panels
    assert "auto" in p["calibration"].method.options  # the registry's output-aware method, as a search
    phases = []
    wb.runner.status.observe(lambda ch: phases.append(ch["new"]), names="value")
    p["calibration"].method.value = "auto"
    p["calibration"].run.click()  # statistics with a histogram method, then the search
    assert wb.error is None, wb.error
    assert wb.session.calib_settings.method == "auto"
    assert any("Choosing auto ranges" in t and "runs" in t for t in phases)  # its own count and rate
    p["search"].explain.click()
    assert wb.error is None, wb.error
    costs = wb.session.range_sensitivity.set_index("tensor")["cost_db"]
    cols = [c["key"] for c in p["layers"].rows.columns]
    assert "range_sensitivity" in cols
    row = _row(wb, "conv2")
    assert row["range_sensitivity"] == format(costs["r1"], ".2f")
    wb.select("conv2")
    assert "costs" in p["histogram"].caption.value  # the tensor's sentence
    p["graph"].color_by.value = "range"
    (nodes,) = plots.traces_by_meta(p["graph"].figure, "nodes")
    k = list(nodes.customdata).index("conv2")
    assert f"{costs['r1']:.3g}" in nodes.hovertext[k]


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
    exports = wb.session.project / "exports"
    report = (exports / "cnn.quant.report.html").read_text()
    assert "conv1" in report and "Plotly.newPlot" in report
    # small: plotly.js is written once beside the report and shared, not embedded
    (js,) = exports.glob("plotly-*.min.js")
    assert f"<script src='{js.name}'>" in report and len(report) < 200_000 < js.stat().st_size
    assert "click" not in report.lower()  # a static page says nothing about clicking
    before = js.stat().st_mtime_ns
    export_report(wb.session, exports / "second.report.html")
    assert list(exports.glob("plotly-*.min.js")) == [js] and js.stat().st_mtime_ns == before


def test_layer_filter_and_sort():
    import pandas as pd

    df = pd.DataFrame({"node": ["a_conv", "b_add", "c_conv"], "op_type": ["Conv", "Add", "Conv"],
                       "tensor": ["x", "y", "z"], "precision": ["INT8", "FP16", "INT8"],
                       "clipped_pct": [0.1, None, 2.0]})
    assert list(filter_and_sort(df, "conv", None)["node"]) == ["a_conv", "c_conv"]
    assert list(filter_and_sort(df, "fp16", None)["node"]) == ["b_add"]
    assert list(filter_and_sort(df, "", "clipped_pct", descending=True)["node"]) == ["c_conv", "a_conv", "b_add"]
    assert list(filter_and_sort(df, "[", "node")["node"]) == []  # a bad regex is a plain substring
