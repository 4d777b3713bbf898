"""The notebooks run top to bottom on the bundled sample (headless, through nbclient)."""
import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _run(name: str, tmp_path) -> list:
    """Execute a copy of the notebook in ``tmp_path`` (projects are written there); returns its cells."""
    shutil.copy(NOTEBOOKS / name, tmp_path)
    nb = nbformat.read(tmp_path / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    return nb.cells


def _text(cells) -> str:
    out = []
    for c in cells:
        for o in c.get("outputs", []):
            out.append(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


def _teaching_text(name: str) -> str:
    """Output of a teaching notebook, executed once per test run (shared with the claim checks
    of test_teaching_claims.py, so each notebook runs once)."""
    import teaching_claims

    text = _text(teaching_claims.executed(name).cells)
    # infinite values never reach a widget (plotly's JSON would be invalid); no stray warnings
    assert "serialization failed" not in text and "Warning" not in text
    return text


def test_teaching_notebook():
    text = _teaching_text("04_teaching_quantization.ipynb")
    assert "zero_point=0" in text and "published search" in text
    assert "widgets update their readouts and legends" in text


def test_fp16_notebook():
    text = _teaching_text("05_fp16.ipynb")
    assert "largest FP16: 65504.0" in text and "automatic: 8 of 8 finite" in text


def test_int8_arithmetic_notebook():
    text = _teaching_text("06_int8_arithmetic.ipynb")
    assert "max |by hand - Q/DQ model|" in text and "the widget updates its readout" in text


@pytest.mark.slow
def test_calibration_sets_notebook():
    text = _teaching_text("07_calibration_sets.ipynb")
    assert "best set by SQNR" in text and "the widget updates its readout" in text


def test_fake_quantization_notebook():
    text = _teaching_text("08_fake_quantization.ipynb")
    assert "QAT best" in text and "Plan it implies: 1 INT8" in text


@pytest.mark.slow
def test_quickstart_notebook(tmp_path):
    text = _text(_run("01_quickstart.ipynb", tmp_path))
    assert "top-1 agreement INT8 vs FP32" in text
    assert (tmp_path / "quickstart_project" / "exports" / "efficientnet_lite0.quant.onnx").exists()
    assert (tmp_path / "quickstart_project" / "session.json").exists()


@pytest.mark.slow
def test_calibration_debugging_notebook(tmp_path):
    text = _text(_run("02_calibration_debugging.ipynb", tmp_path))
    assert "exact zeros" in text and "best method" in text
    assert "'seconds':" not in text  # settings printed as sentences, not raw dicts


@pytest.mark.slow
def test_mixed_precision_notebook(tmp_path):
    text = _text(_run("03_mixed_precision.ipynb", tmp_path))
    assert "Target sqnr>=" in text and "trtexec" in text
    assert "out of INT8" in text or "already met" in text
    assert "Target met with 0 node(s)" not in text and ": -" not in text
