"""`workbench demo` on a small stand-in sample: it calibrates through the one calibration path
(default method, the hold-out rule of `quantize --eval-data`), and its "met" is the verdict on
the TensorRT file as written to disk (exact ONNX semantics)."""
import re

import numpy as np
import realistic_models
import tiny_models
from PIL import Image

from workbench.calib.registry import DEFAULT_METHOD
from workbench.cli import main
from workbench.data import PRESETS, open_data
from workbench.evaluate.evaluator import Evaluator
from workbench.evaluate.metrics import Target
from workbench.graph.model import ModelInfo
from workbench.search import calibration


def _sample(root):
    """A sample folder as `workbench.sample` reads it: a small classifier and two photo folders."""
    root.mkdir(parents=True)
    tiny_models.save(realistic_models.classifier_relu6(size=224), root / "efficientnet_lite0.onnx")
    rng = np.random.default_rng(0)
    for sub, n in (("calib", 16), ("eval", 12)):
        (root / sub).mkdir()
        for i in range(n):
            base = rng.integers(0, 255, (4, 4, 3)).astype(np.float64)
            img = np.kron(base, np.ones((10, 10, 1))) + rng.normal(0, 20, (40, 40, 3))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / sub / f"p{i:02d}.png")
    return root


def test_demo_calibrates_on_the_one_path_and_claims_on_the_written_file(tmp_path, monkeypatch, capsys):
    root = _sample(tmp_path / "sample")
    monkeypatch.setenv("WORKBENCH_SAMPLE_DIR", str(root))
    calls = []
    real = calibration.calibrate

    def spy(model, data, **kw):
        calls.append(kw)
        return real(model, data, **kw)

    monkeypatch.setattr(calibration, "calibrate", spy)
    target = "top1>=0.95"
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--target", target]) == 0
    text = capsys.readouterr().out

    assert len(calls) == 1 and calls[0]["method"] == DEFAULT_METHOD
    assert calls[0]["evaluator"] is not None  # ranges judged on the evaluation photos (the hold-out rule)
    assert re.search(rf"^\s*{DEFAULT_METHOD}\s.*<-$", text, re.MULTILINE)  # the default row of the methods table

    # the printed verdict is the written file's, recomputed here with exact ONNX semantics
    model = ModelInfo.from_path(root / "efficientnet_lite0.onnx")
    evaluator = Evaluator(model, open_data(root / "eval", model, preprocess=PRESETS["efficientnet-lite"]))
    written = evaluator.evaluate_model(str(out / "model.onnx")).summary()
    met = Target(target).met(written)
    verdicts = re.findall(r"^Target (met|NOT met) .* by the written TensorRT file model\.onnx on all (\d+) "
                          r"evaluation photos", text, re.MULTILINE)
    assert verdicts == [("met" if met else "NOT met", str(evaluator.num_samples))]
    assert f"top1_agreement {written['top1_agreement']:.4f}" in text  # the file's own figure is printed
