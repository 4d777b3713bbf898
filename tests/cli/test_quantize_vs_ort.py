"""The default ``quantize`` against ONNX Runtime's ``quantize_static`` on the same data.

Issue 20's check: a detector quantized from a folder of pages with the tool's defaults
(calibration data alone: it holds out what it needs itself) must reach the mask IoU of ONNX
Runtime's best ``quantize_static`` setting on the same calibration data, judged on pages neither
saw, with exact ONNX semantics. The DBNet-like detector's text responses are rare and large: a
range chosen without them, or from the samples it was not held out from, loses them (before
the ranges were read from every calibration sample this gave 14.7 dB against ORT's 26.4 dB).
"""
import logging

import numpy as np
import onnx
import pytest

import realistic_models as R
from realistic_eval import write_npz
from workbench.cli import main
from workbench.evaluate.evaluator import Evaluator
from workbench.evaluate.metrics import sqnr_db
from workbench.graph.model import ModelInfo


class _Reader:
    def __init__(self, samples, name):
        self.it = iter([{name: s[name][None]} for s in samples])

    def get_next(self):
        return next(self.it, None)


def _ort_best(model_path, samples, name, evaluator, metric, tmp):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    logging.getLogger().setLevel(logging.ERROR)
    out = []
    for per_channel in (False, True):
        for act, extra in ((QuantType.QInt8, {"ActivationSymmetric": True, "WeightSymmetric": True}),
                           (QuantType.QUInt8, {"WeightSymmetric": True})):
            path = tmp / f"ort_{per_channel}_{act.name}.onnx"
            quantize_static(str(model_path), str(path), _Reader(samples, name), quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, activation_type=act, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, extra_options=extra)
            got = evaluator.run(str(path))[evaluator.output_names[0]]
            ref = evaluator.reference[evaluator.output_names[0]]
            out.append((metric(ref, got), sqnr_db(ref, got), path.name))
    return max(out)


@pytest.mark.slow
def test_default_detector_reaches_ort_best_on_unseen_pages(tmp_path):
    spec = R.MODELS["detector"]
    proto = spec.build()
    model_path = tmp_path / "detector.onnx"
    onnx.save(proto, str(model_path))
    info = ModelInfo(proto)
    calib = spec.data(32, seed=1)
    evaluator = Evaluator(info, R.ArrayData(info, spec.data(32, seed=3)))
    name = info.inputs[0].name
    folder = write_npz(tmp_path / "pages", calib)
    assert main(["quantize", str(model_path), "--data", str(folder), "-o", str(tmp_path / "out" / "det.onnx"),
                 "-q"]) == 0
    out = evaluator.output_names[0]
    ref = evaluator.reference[out]
    got = evaluator.run(str(tmp_path / "out" / "det.onnx"))[out]  # the TensorRT file as written
    ours = (spec.metric(ref, got), sqnr_db(ref, got))
    best = _ort_best(model_path, calib, name, evaluator, spec.metric, tmp_path)
    assert ours[0] >= best[0], (ours, best)
    assert ours[1] >= best[1], f"ours {ours[1]:.1f} dB vs ORT best {best[1]:.1f} dB ({best[2]})"
    assert np.isfinite(ours[1])
