"""`workbench evaluate --backend trt` on a dynamic-H/W detector fed pages of three sizes (one not
a multiple of 32): batches are grouped by shape, and the TensorRT branch joins their outputs
the way every evaluation does (evaluate/rows.concat_rows), not with a plain concatenate."""
import json

import numpy as np
import prep_models
import tiny_models

from workbench import backends
from workbench.cli import main


def test_trt_evaluation_of_a_dynamic_detector_on_pages_of_three_sizes(tmp_path, monkeypatch, capsys):
    model = tiny_models.save(prep_models.dynamic_detector(), tmp_path / "det.onnx")
    pages = prep_models.pages(tmp_path / "pages", per=3)  # 64x96, 96x128, 80x150 (-> 96x160)
    quant = tmp_path / "out" / "det.onnx"
    assert main(["quantize", model, "--data", str(pages), "--method", "minmax", "--no-eval", "-q",
                 "-o", str(quant)]) == 0

    # no GPU here: the "TensorRT" runner runs the written Q/DQ file with exact ONNX semantics
    real = backends.get_runner
    seen = []

    def trt_on_cpu(path, backend="ort", **kw):
        seen.append(backend)
        return real(path, backend="ort", **kw)

    monkeypatch.setattr(backends, "get_runner", trt_on_cpu)
    reports = {}
    for backend in ("trt", "ort"):
        out = tmp_path / f"{backend}.json"
        capsys.readouterr()
        code = main(["evaluate", model, str(quant), "--data", str(pages), "--backend", backend,
                     "--json", str(out)])
        assert code == 0, capsys.readouterr().err
        reports[backend] = json.loads(out.read_text())
    assert seen[0] == "trt"
    trt, ort = reports["trt"]["outputs"][0], reports["ort"]["outputs"][0]
    assert trt["output"] == "prob" and np.isfinite(trt["sqnr_db"])
    # the same file on the same nine pages: the TensorRT branch's figures are the ORT branch's
    for key in ("sqnr_db", "cosine", "max_abs_error"):
        assert trt[key] == ort[key] or abs(trt[key] - ort[key]) <= 1e-6 * max(1.0, abs(ort[key])), key
