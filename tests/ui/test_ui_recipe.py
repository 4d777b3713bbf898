"""An export from the app carries its recipe, with the clicks that made the plan, and replays."""
import json

import numpy as np
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")
pytest.importorskip("anywidget")
import tiny_models  # noqa: E402
from workbench.cli import main  # noqa: E402
from workbench.ui.app import Workbench  # noqa: E402


def test_an_app_export_records_its_clicks_and_replays(tmp_path, capsys):
    model = tiny_models.save(tiny_models.small_cnn(), tmp_path / "cnn.onnx")
    (tmp_path / "calib").mkdir()
    np.save(tmp_path / "calib" / "a.npy", np.random.default_rng(0).standard_normal((20, 3, 16, 16)).astype(np.float32))
    wb = Workbench(model, tmp_path / "calib", blocking=True, project=tmp_path / "proj", batch_size=4)
    p = wb.widget and wb.panels
    p["calibration"].run.click()
    wb.select("conv1")
    p["precision"].buttons["fp16"].click()
    p["precision"].pattern.value = "^fc$"
    p["precision"].bulk_precision.value = "fp32"
    p["precision"].bulk.click()
    p["export"].buttons["qdq"].click()
    assert wb.error is None, wb.error
    (recipe_file,) = (wb.session.project / "exports").glob("*.recipe.json")
    recipe = json.loads(recipe_file.read_text())
    assert {o["node"]: o["origin"] for o in recipe["overrides"]["nodes"]} == {"conv1": "app click", "fc": "app: /^fc$/"}
    capsys.readouterr()
    assert main(["replay", str(recipe_file)]) == 0, capsys.readouterr()
    assert "Reproduced bit for bit" in capsys.readouterr().out


def test_the_export_panel_lists_the_older_files_an_export_removed(tmp_path):
    """Exporting the TensorRT file of another plan to a used stem removes the earlier plan's twin;
    the panel says so next to what it wrote."""
    from workbench.outputs.names import export_path

    model = tiny_models.save(tiny_models.small_cnn(), tmp_path / "cnn.onnx")
    (tmp_path / "calib").mkdir()
    np.save(tmp_path / "calib" / "a.npy", np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32))
    app = Workbench(model, tmp_path / "calib", blocking=True, project=tmp_path / "proj", batch_size=4, method="minmax")
    app.widget
    app.panels["calibration"].run.click()
    panel = app.panels["export"]
    stem = app.session.export_stem()
    panel.buttons["ort"].click()
    assert export_path(stem, "ort").exists() and "removed" not in panel.written.value
    app.session.set_precision([app.session.plan.int8_nodes()[0]], "fp16")
    panel.buttons["qdq"].click()
    assert app.error is None and not export_path(stem, "ort").exists()
    last = panel.written.value.split("wrote")[-1]
    assert "removed" in last and export_path(stem, "ort").name in last
