"""What the app says beside its controls: warnings and errors styled where they belong (never raw
in the cell), metrics with their context, history labels, the threshold preview's deltas, the
slider after "Use calibrated", the backend choice."""
import importlib.util
import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")
pytest.importorskip("anywidget")
import tiny_models  # noqa: E402
from workbench.calib.algorithms import CalibrationWarning  # noqa: E402
from workbench.errors import WorkbenchError  # noqa: E402
from workbench.session.state import Build  # noqa: E402
from workbench.ui.app import Workbench  # noqa: E402
from workbench.ui.messages import captured_warnings  # noqa: E402
from workbench.ui.panels.results import metrics_html  # noqa: E402
from workbench.ui.tasks import TaskRunner  # noqa: E402


@pytest.fixture
def wb(tmp_path):
    model = tiny_models.save(tiny_models.small_cnn(), tmp_path / "cnn.onnx")
    (tmp_path / "calib").mkdir()
    x = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    x[0, 0, 0, 0] = 20.0  # one outlier: min-max and the others disagree on the input's range
    np.save(tmp_path / "calib" / "a.npy", x)
    app = Workbench(model, tmp_path / "calib", blocking=True, project=tmp_path / "proj", batch_size=4,
                    method="mse")
    app.widget
    return app


def test_warnings_of_a_task_are_styled_messages_not_cell_text(capfd):
    runner = TaskRunner(blocking=True)

    def work(progress, cancel):
        for _ in range(3):  # the same warning three times: shown once
            warnings.warn("tensor 'x': histogram merged", CalibrationWarning)
        np.log(np.zeros(1))  # numpy's RuntimeWarning
        return 1
    runner.run("Working", work)
    texts = runner.messages.texts("warning")
    assert texts == ["tensor 'x': histogram merged", "divide by zero encountered in log"]
    html = runner.messages.widget.value
    assert "data-level='warning'" in html and "calibration warning" in html and "numerical warning" in html
    assert "Warning:" not in capfd.readouterr().err  # nothing raw in the cell
    # the next action that succeeds clears them; warnings outside a task are Python's as before
    runner.guard(lambda: None)()
    assert runner.messages.texts() == []
    with pytest.warns(CalibrationWarning):
        warnings.warn("outside", CalibrationWarning)
    with captured_warnings() as caught:  # nested captures: the inner block keeps its own
        warnings.warn("inner", CalibrationWarning)
    assert [m.text for m in caught] == ["inner"]


def test_guard_warnings_and_calibration_error_beside_their_control(wb, monkeypatch):
    cal = wb.panels["calibration"]
    calls = {"n": 0}
    real = wb.session.calibrate

    def failing_once(**kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise WorkbenchError("The data folder 'calib' has no images of the model's size.")
        return real(**kw)
    monkeypatch.setattr(wb.session, "calibrate", failing_once)
    cal.run.click()
    assert cal.run_messages.texts("error") == ["The data folder 'calib' has no images of the model's size."]
    assert wb.runner.error.value == ""  # shown beside Run, not in the bar under the layer table
    cal.run.click()  # fixed: the error goes
    assert wb.error is None and cal.run_messages.texts() == []
    # the collapse guards, beside the range method and for the selected tensor beside its histogram
    notes = wb.session.calibration.notes
    assert notes and any("disagree" in n for n in notes)
    assert cal.messages.texts("warning") == notes
    wb.select("conv1")
    (flag,) = [t for t in wb.panels["histogram"].messages.texts("warning") if "disagree" in t]
    assert "minmax 20" in flag
    wb.select("conv2")  # conv2's input is not flagged
    assert wb.panels["histogram"].messages.texts() == []


def test_results_give_the_figures_their_context_and_history_says_what_changed(wb):
    p = wb.panels
    p["calibration"].run.click()
    p["results"].rebuild.click()
    s = wb.session
    b0 = s.history[-1]
    n = b0.summary["samples"]
    m = p["results"].metrics.value
    count = round(b0.summary["top1_agreement"] * n)
    assert f"({count}/{n})" in m and "Compared with the FP32 output (RMS" in m and "error RMS of" in m
    assert "the TensorRT Q/DQ file" in m  # the written file's figures, said so
    wb.select("conv1")
    p["precision"].buttons["fp32"].click()
    p["results"].rebuild.click()
    m = p["results"].metrics.value
    assert "<th title='latest minus before'>change</th>" in m
    delta = s.history[1].summary["sqnr_db"] - b0.summary["sqnr_db"]
    assert f"{'+' if delta > 0 else '−'}{abs(delta):.2f}" in m
    p["results"].rebuild.click()
    p["calibration"].method.value = "minmax"
    p["results"].rebuild.click()
    labels = list(s.history_table()["label"])
    assert labels[0].startswith("first build") and labels[1] == "conv1 → FP32"
    assert labels[2] == "no change since build 1" and labels[3] == "ranges mse → minmax"
    assert all(labels) and all(label in p["history"].history.value for label in labels[1:])


def test_a_near_zero_reference_is_flagged():
    plan = object()
    quiet = Build(0, plan, "mse", {"sqnr_db": -39.2, "max_abs_error": 0.004, "samples": 8, "reference_rms": 2e-5})
    m = metrics_html(None, quiet)
    assert "data-level='warning'" in m and "-39.2 ⚠ FP32 output near zero" in m and "error RMS of" not in m
    loud = Build(1, plan, "mse", {"sqnr_db": 20.0, "top1_agreement": 49 / 52, "samples": 52, "reference_rms": 3.0})
    m = metrics_html(None, loud)
    assert "(49/52)" in m and "near zero" not in m and "error RMS of 10 %" in m


def test_preview_says_it_is_a_change_and_use_calibrated_puts_slider_and_box_back(wb):
    wb.panels["calibration"].run.click()
    wb.select("conv1")
    h = wb.panels["histogram"]
    chosen = h.data["chosen"]
    h.threshold.value = 0.4 * chosen
    text = h.preview.value
    assert "change of the output SQNR vs the amax in use: <b>−" in text and "instead of" in text
    sent = []
    h.position.send = lambda content, buffers=None: sent.append(content)
    # the browser's thumb moves (its drags are not written back to the trait), then Use calibrated
    h.position._message(h.position, {"type": "drag", "value": 0.1}, [])
    assert h.position.position == pytest.approx(0.1)
    h.clear.click()
    assert h.threshold.value == pytest.approx(chosen, rel=1e-4)
    assert h.position.position == pytest.approx(chosen / h._top) == h.position.value
    # the thumb was at the calibrated share in Python's eyes already: the browser is told to move it
    h.position._message(h.position, {"type": "drag", "value": 0.1}, [])
    h.clear.click()
    assert sent[-1] == {"type": "show", "value": pytest.approx(chosen / h._top)}
    assert h.position.position == pytest.approx(chosen / h._top)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx") is None, reason="needs tensorrt_rtx")
def test_backend_choice_offers_a_tensorrt_rtx_build(wb):
    r = wb.panels["results"]
    (label, value), = [(label, v) for label, v in r.backend.options if v == ("trt", "rtx")]
    assert label.startswith("TensorRT-RTX") and "requires" not in r.backend_note.value
    wb.panels["calibration"].run.click()
    r.backend.value = value
    r.rebuild.click()
    assert wb.error is None, wb.error
    assert "TensorRT-RTX" in " ".join(wb.session.history[-1].notes)


def test_history_table_rows_have_labels_after_a_reload(wb, tmp_path):
    from workbench.session import Session

    wb.panels["calibration"].run.click()
    wb.panels["results"].rebuild.click()
    wb.session.save()
    again = Session.load(wb.session.project)
    table = again.history_table()
    assert isinstance(table, pd.DataFrame) and table["label"].str.len().min() > 0


def test_long_node_names_show_their_end_and_the_row_tooltip_has_all():
    from workbench.ui.panels.layers import COLUMNS, NODE_CHARS, table_rows

    name = "/model/backbone/stage3/block2/conv/Conv"
    df = pd.DataFrame([{"node": name, "op_type": "Conv", "tensor": "x", "precision": "INT8", "amax": 1.0}])
    (row,) = table_rows(df, [c for c in COLUMNS if c[0] in df.columns])
    assert row["cells"][0] == "…" + name[-(NODE_CHARS - 1):] and len(row["cells"][0]) == NODE_CHARS
    assert row["key"] == name and name in row["title"]
