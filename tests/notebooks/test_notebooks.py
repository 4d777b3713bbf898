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


def test_teaching_notebook(tmp_path):
    text = _text(_run("04_teaching_quantization.ipynb", tmp_path))
    assert "zero_point=0" in text and "KL search by hand" in text
    # infinite KL values never reach a widget (plotly's JSON would be invalid)
    assert "serialization failed" not in text and "Warning" not in text


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
