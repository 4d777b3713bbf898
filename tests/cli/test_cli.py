import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

import tiny_models
from workbench.backends.trt_cache import read_calibration_cache
from workbench.cli import main

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"


def _npy(tmp_path, n=6):
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        np.save(folder / f"{i}.npy", rng.standard_normal((3, 16, 16)).astype(np.float32))
    return folder


def test_help_for_every_command(capsys):
    for cmd in ["calibrate", "quantize", "evaluate", "sensitivity", "autoprec", "build", "inspect-engine", "info"]:
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert "usage: workbench " + cmd in capsys.readouterr().out


def test_user_errors_exit_2_without_traceback(tmp_path, capsys):
    model = tiny_models.save(tiny_models.small_cnn(size=16), tmp_path / "m.onnx")
    (tmp_path / "empty").mkdir()
    code = main(["calibrate", model, "--data", str(tmp_path / "empty"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "has no image or .npy/.npz files" in err and "Traceback" not in err
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"nonsense")
    assert main(["info", str(bad)]) == 2
    assert "bad.onnx" in capsys.readouterr().err


def test_calibrate_quantize_evaluate_on_a_tiny_model(tmp_path, capsys):
    model = tiny_models.save(tiny_models.small_cnn(size=16), tmp_path / "m.onnx")
    before = open(model, "rb").read()
    data = _npy(tmp_path)
    out = tmp_path / "cal"
    assert main(["calibrate", model, "--data", str(data), "-o", str(out), "-q", "--method", "minmax"]) == 0
    ranges = json.loads((out / "ranges.json").read_text())
    assert ranges["method"] == "minmax"
    r1 = ranges["tensors"]["r1"]
    assert r1["amax"] == r1["amax_by_method"]["minmax"] and r1["scale"] == pytest.approx(r1["amax"] / 127)
    cache = read_calibration_cache(out / "calibration.cache")
    assert cache.algorithm == "MinMaxCalibration"
    assert cache.scales["r1"] == pytest.approx(np.float32(r1["amax"] / 127), rel=1e-7)
    assert (out / "ranges.csv").read_text().startswith("tensor,")
    # a second run into the same folder refuses to overwrite
    assert main(["calibrate", model, "--data", str(data), "-o", str(out), "-q"]) == 2
    assert "already has" in capsys.readouterr().err
    # reuse the statistics; stale statistics for another model are refused
    other = tiny_models.save(tiny_models.small_cnn(size=16, seed=5), tmp_path / "other.onnx")
    assert main(["calibrate", other, "--data", str(data), "--statistics", str(out / "statistics.npz"),
                 "-o", str(tmp_path / "cal2"), "-q"]) == 2
    assert "another model" in capsys.readouterr().err

    q = tmp_path / "m.int8.onnx"
    assert main(["quantize", model, "--data", str(data), "--ranges", str(out / "ranges.json"),
                 "--fp16", "^conv2$", "-o", str(q)]) == 0
    printed = capsys.readouterr().out
    assert "--stronglyTyped" in printed
    qm = onnx.load(str(q))
    assert any(n.op_type == "QuantizeLinear" for n in qm.graph.node)
    plan = json.loads((tmp_path / "m.int8.plan.json").read_text())
    assert "conv2" in json.dumps(plan) and (tmp_path / "m.int8.ort.onnx").exists()
    assert open(model, "rb").read() == before  # the user's model is untouched
    # refuses to overwrite the input model, and an earlier output without --overwrite
    assert main(["quantize", model, "--data", str(data), "-o", model, "--overwrite"]) == 2
    assert main(["quantize", model, "--data", str(data), "-o", str(q)]) == 2
    assert "already exist" in capsys.readouterr().err

    js = tmp_path / "eval.json"
    assert main(["evaluate", model, str(tmp_path / "m.int8.ort.onnx"), "--data", str(data), "--json", str(js)]) == 0
    result = json.loads(js.read_text())
    assert 0.9 < result["outputs"][0]["cosine"] <= 1.0


@pytest.mark.slow
def test_end_to_end_on_the_sample(tmp_path):
    """The README's CLI walk-through on the bundled EfficientNet-Lite0 and photos."""
    model = str(SAMPLE / "efficientnet_lite0.onnx")
    common = ["--preset", "efficientnet-lite", "--batch-size", "8"]
    out = tmp_path / "cal"
    run = lambda *a: subprocess.run([sys.executable, "-m", "workbench.cli", *a], capture_output=True, text=True)
    r = run("calibrate", model, "--data", str(SAMPLE / "calib"), "--samples", "32", "-q", "-o", str(out), *common)
    assert r.returncode == 0, r.stderr
    assert "Calibrated" in r.stdout
    r = run("autoprec", model, "--data", str(SAMPLE / "calib"), "--ranges", str(out / "ranges.json"),
            "--eval-data", str(SAMPLE / "eval"), "--eval-samples", "24", "--target", "top1>=0.95",
            "--sens-samples", "8", "--latency-points", "0", "-o", str(tmp_path / "auto.onnx"), *common)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Target met" in r.stdout
    assert (tmp_path / "auto.onnx").exists() and (tmp_path / "auto.curve.csv").exists()


def test_check_cache_and_legacy_build_refuse_a_stale_cache(tmp_path, capsys):
    from workbench.backends.trt import BuildConfig, build_engine
    from workbench.errors import StaleError

    model = tiny_models.save(tiny_models.small_cnn(size=16), tmp_path / "m.onnx")
    data = _npy(tmp_path)
    out = tmp_path / "cal"
    assert main(["calibrate", model, "--data", str(data), "-o", str(out), "-q"]) == 0
    cache = str(out / "calibration.cache")
    assert main(["check-cache", cache, model, "--data", str(data)]) == 0
    assert "consistent" in capsys.readouterr().out
    other = tiny_models.save(tiny_models.small_cnn(size=16, seed=9), tmp_path / "other.onnx")
    assert main(["check-cache", cache, other]) == 2
    assert "another model" in capsys.readouterr().err
    # the TensorRT legacy path checks the cache before it even needs TensorRT
    with pytest.raises(StaleError, match="another model"):
        build_engine(other, tmp_path / "x.engine", BuildConfig(legacy_int8_cache=cache))


def test_user_metric_script_in_evaluate_and_autoprec(tmp_path):
    import onnxruntime as ort

    model = tiny_models.save(tiny_models.small_cnn(size=16), tmp_path / "m.onnx")
    data = _npy(tmp_path, n=8)
    script = tmp_path / "acc.py"
    script.write_text("import numpy as np\n\ndef metric(outputs, labels=None):\n"
                      "    return float(np.mean(outputs['logits'][:, 3]))\n")
    assert main(["quantize", model, "--data", str(data), "-o", str(tmp_path / "q.onnx"), "-q"]) == 0
    js = tmp_path / "e.json"
    assert main(["evaluate", model, str(tmp_path / "q.ort.onnx"), "--data", str(data),
                 "--metric-script", str(script), "--json", str(js)]) == 0
    got = json.loads(js.read_text())["outputs"][0]["metric"]
    x = np.stack([np.load(tmp_path / "data" / f"{i}.npy") for i in range(8)])
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(str(tmp_path / "q.ort.onnx"), opts, providers=["CPUExecutionProvider"])
    assert got == pytest.approx(float(np.mean(s.run(None, {"input": x})[0][:, 3])), rel=1e-5)
    # the search can aim at the user's metric: FP32 value of the metric is reachable
    s32 = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    fp32_metric = float(np.mean(s32.run(None, {"input": x})[0][:, 3]))
    target = f"metric>={fp32_metric - 1e-3:.6f}" if fp32_metric > got else f"metric<={fp32_metric + 1e-3:.6f}"
    code = main(["autoprec", model, "--data", str(data), "--metric-script", f"{script}:metric",
                 "--target", target, "--latency-points", "0", "-q", "-o", str(tmp_path / "auto.onnx")])
    assert code == 0 and (tmp_path / "auto.onnx").exists()
