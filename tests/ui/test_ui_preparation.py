"""The input-preparation panel without a browser: fields, sources, preview, errors next to the
panel, and a dynamic-H/W detector calibrated from pages of several sizes through the app."""
import numpy as np
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")
pytest.importorskip("anywidget")
import prep_models  # noqa: E402
import tiny_models  # noqa: E402
from workbench.ui.app import Workbench  # noqa: E402


@pytest.fixture
def app(tmp_path):
    model = tiny_models.save(prep_models.dynamic_detector(), tmp_path / "det.onnx")
    pages = prep_models.pages(tmp_path / "pages", per=6)
    wb = Workbench(model, pages, blocking=True, project=tmp_path / "proj", batch_size=4)
    wb.widget
    return wb


def _png_size(data: bytes) -> tuple:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # width, height


def test_panel_shows_sources_and_a_preview_of_one_prepared_page(app):
    p = app.panels["preparation"]
    assert "from model graph" in p.sources.value and "wb-prep-warning" in p.sources.value  # normalisation guessed
    assert "shape <b>1x3x64x96</b>" in p.info.value and _png_size(p.image.value) == (96, 64)
    p.preset.value, p.resize.value = "unit", "letterbox"
    p.apply.click()
    assert p.error.value == "" and app.session.data_settings.preparation == {"preset": "unit",
                                                                             "resize": "letterbox"}
    assert "from preset &#x27;unit&#x27;" in p.sources.value and "wb-prep-warning" not in p.sources.value
    lo, hi = (float(v.split("</b>")[0]) for v in p.info.value.split("min <b>")[1].split("max <b>"))
    assert 0.0 <= lo < hi <= 1.0  # unit: pixels / 255


def test_panel_error_sits_next_to_it_and_clears_on_success(app):
    p = app.panels["preparation"]
    p.height.value, p.width.value = 100, 128
    p.apply.click()
    assert "not a multiple of the model&#x27;s stride 32" in p.error.value
    assert "(N, 3, 100, 128)" in p.error.value and app.session.data_settings.preparation is None
    p.mean.value = "1, x"
    p.apply.click()
    assert "Mean must be numbers" in p.error.value and app.error is None  # next to the panel too
    p.mean.value = ""
    p.height.value, p.width.value = 96, 128
    p.apply.click()
    assert p.error.value == "" and app.error is None
    assert "shape <b>1x3x96x128</b>" in p.info.value and _png_size(p.image.value) == (128, 96)


def test_detector_calibrates_from_pages_of_three_sizes_in_the_app(app):
    app.calibrate()
    assert app.error is None, app.error
    s = app.session
    assert s.stats is not None and s.stats.num_samples > 0
    assert sorted(s.data.shapes()) == [(64, 96), (96, 128), (96, 160)]
    app.rebuild()
    assert app.error is None, app.error
    assert np.isfinite(s.history[-1].summary["sqnr_db"])


def test_the_preset_has_one_control_the_preparation_panel(tmp_path):
    model = tiny_models.save(prep_models.dynamic_detector(), tmp_path / "det.onnx")
    pages = prep_models.pages(tmp_path / "pages", per=1)
    wb = Workbench(model, pages, blocking=True, project=tmp_path / "proj", preset="imagenet")
    wb.widget
    m, p = wb.panels["model"], wb.panels["preparation"]
    assert not hasattr(m, "preset")  # the model panel has no preprocessing dropdown of its own
    assert p.preset.value == "imagenet"  # the Session's preset shows where it is changed
    assert "from preset &#x27;imagenet&#x27;" in p.sources.value
    p.preset.value = "unit"
    p.apply.click()
    d = wb.session.data_settings
    assert d.preset is None and d.preparation == {"preset": "unit"}  # one place: the request
    m.apply.click()  # re-opening from the model panel keeps the panel's preparation
    assert wb.error is None and wb.session.data_settings.preparation == {"preset": "unit"}
    assert p.preset.value == "unit" and "from preset &#x27;unit&#x27;" in p.sources.value
