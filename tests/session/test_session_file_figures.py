"""A rebuild reports the figures of the file a user deploys (the TensorRT Q/DQ file, real float16
tensors), per-layer rows of FP16 nodes included, not those of the ONNX Runtime twin."""
import math

import numpy as np
import pytest

import tiny_models
from workbench.export import build_quantized
from workbench.session import Session


def test_rebuild_reports_the_tensorrt_file(tmp_path):
    model = tiny_models.save(tiny_models.small_cnn(size=16), tmp_path / "m.onnx")
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        np.save(data / f"{i}.npy", rng.standard_normal((3, 16, 16)).astype(np.float32))
    s = Session(model, data, method="minmax", batch_size=4)
    s.calibrate()
    s.set_precision("conv2", "fp16")
    b = s.rebuild()
    file = s.evaluator.evaluate_model(build_quantized(s.model_info, s.ranges, s.plan, variant="trt")).summary()
    assert b.summary["sqnr_db"] == pytest.approx(file["sqnr_db"], abs=1e-9)
    assert "TensorRT Q/DQ file" in b.semantics
    row = b.per_layer.set_index("node").loc["conv2"]
    assert row["precision"] == "fp16" and math.isfinite(row["sqnr_db"])


def test_metrics_carry_their_context():
    from workbench.ui.panels.results import _metric_cell

    row = {"top1_agreement": 38 / 41, "sqnr_db": 18.04, "samples": 41, "reference_rms": 2.5}
    assert _metric_cell(row, "top1_agreement", 4).endswith("(38/41)")
    assert "near zero" not in _metric_cell(row, "sqnr_db", 4)
    assert "near zero" in _metric_cell({**row, "reference_rms": 1e-6}, "sqnr_db", 4)
