"""The accuracy-step section of the app: a toggle per step, Apply runs Session.improve with the
ticked steps, the table and the layer table show what each step did."""
import numpy as np
import onnx
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")
import improve_models as M  # noqa: E402
from workbench.ui.app import Workbench  # noqa: E402
from workbench.ui.panels.steps import steps_html  # noqa: E402


@pytest.fixture
def wb(tmp_path):
    model = M.depthwise_model("relu")
    onnx.save(model, str(tmp_path / "dw.onnx"))
    (tmp_path / "calib").mkdir()
    for i, b in enumerate(M.batches(model, 8, seed=1)):
        np.save(tmp_path / "calib" / f"b{i}.npy", b["x"])
    app = Workbench(tmp_path / "dw.onnx", tmp_path / "calib", blocking=True, project=tmp_path / "proj",
                    batch_size=4, method="minmax")
    app.widget
    return app


def test_toggles_apply_and_table(wb):
    panel = wb.panels["steps"]
    assert "No accuracy step run yet" in panel.table.value and panel.apply.disabled
    wb.panels["calibration"].run.click()
    assert wb.error is None and not panel.apply.disabled
    for name in ("equalize", "smooth"):
        panel.toggles[name].value = False
    panel.apply.click()
    assert wb.error is None
    rows = wb.session.step_table()
    assert [r["step"] for r in rows] == ["rounding", "bias_correction"]  # only the ticked ones ran
    assert "wb-steps-table" in panel.table.value and "rounding" in panel.table.value
    assert "equalize" not in panel.table.value
    if "rounding" in wb.session.improvement.applied():
        cols = [c["key"] for c in wb.panels["layers"].rows.columns]
        assert "weight_sqnr_rounded" in cols and "weight_sqnr_nearest" in cols
    wb.runner._set_busy(True)
    assert panel.apply.disabled
    wb.runner._set_busy(False)


def test_steps_html_names_the_reason():
    html = steps_html([{"step": "smooth", "layers": 0, "sqnr_before": 20.0, "sqnr_after": None,
                        "metric_before": None, "metric_after": None, "applied": False,
                        "reason": "no MatMul/Gemm <input>", "seconds": 0.1}], "12 samples")
    assert "skipped: no MatMul/Gemm &lt;input&gt;" in html and "12 samples" in html
