"""``workbench inspect`` and the Q/DQ notes of ``info`` on models made in the tests."""
import json

import numpy as np
import onnx
import pytest

import qdq_models
import tiny_models
from qdq_models import cnn_feed, qat_small_cnn
from workbench.cli import main


@pytest.fixture
def ort_uint8(tmp_path):
    fp32 = tiny_models.small_cnn(opset=13)
    samples = [{"input": x} for x in cnn_feed(8, seed=7)["input"]]
    q = qdq_models.ort_quantized(fp32, samples, tmp_path, activation_type="QUInt8")
    path = tmp_path / "ort_uint8.onnx"
    onnx.save(q, str(path))
    return path


def npy_folder(folder, n=8):
    folder.mkdir()
    for i, x in enumerate(cnn_feed(n, seed=20)["input"]):
        np.save(folder / f"{i:03d}.npy", x)
    return folder


def test_inspect_prints_every_tensor_and_what_tensorrt_expects(ort_uint8, tmp_path, capsys):
    assert main(["inspect", str(ort_uint8), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "UINT8" in out and "zero point 0" in out and "ERROR:" in out
    report = json.loads((tmp_path / "r.json").read_text())
    codes = {f["code"] for f in report["findings"]}
    assert {"unsigned", "output_qdq", "restored_relu"} <= codes
    rows = {r["tensor"]: r for r in report["tensors"]}
    assert {"input", "r1", "r2", "sum", "pool", "gap", "flat", "logits"} <= set(rows)
    first_column = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert set(rows) <= first_column  # every quantized tensor is a row of the printed table
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(ort_uint8)).graph.initializer}
    assert rows["input"]["zero_point"] == str(int(inits["input_zero_point"]))
    assert rows["input"]["dtype"] == "UINT8" and rows["logits"]["consumers"] == " (model output)"
    # an existing report is not replaced without --overwrite; --fail-on error exits 1
    assert main(["inspect", str(ort_uint8), "--json", str(tmp_path / "r.json")]) == 2
    assert main(["inspect", str(ort_uint8), "--fail-on", "error", "-q"]) == 1


def test_inspect_with_data_compares_scales_with_calibration(tmp_path, capsys):
    _, qat, acts, weights = qat_small_cnn()
    path = tmp_path / "qat.onnx"
    onnx.save(qat, str(path))
    data = npy_folder(tmp_path / "data")
    assert main(["inspect", str(path), "--data", str(data), "-q", "--fail-on", "warning"]) in (0, 1)
    out = capsys.readouterr().out
    assert "clipped_pct" in out and "amax_mse" in out and "8 samples" in out


def test_inspect_refuses_a_float_model_and_info_notes_a_quantized_one(ort_uint8, tmp_path, capsys):
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(tiny_models.small_cnn(opset=13), str(fp32))
    assert main(["inspect", str(fp32)]) == 2
    assert "not a Q/DQ model" in capsys.readouterr().err
    assert main(["info", str(ort_uint8)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["already_quantized"]["plan"]["int8"] == 6 and "workbench inspect" in info["note"]
    assert main(["info", str(fp32)]) == 0
    assert "already_quantized" not in json.loads(capsys.readouterr().out)


def test_calibrate_and_quantize_work_on_the_recovered_graph_of_a_qdq_model(tmp_path, capsys):
    from workbench.imported import read_qdq_model

    _, qat, acts, weights = qat_small_cnn(seed=4)
    path = tmp_path / "qat.onnx"
    onnx.save(qat, str(path))
    data = npy_folder(tmp_path / "data")
    assert main(["calibrate", str(path), "--data", str(data), "-o", str(tmp_path / "cal"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "already quantized" in out and "recovered FP32 graph" in out
    ranges = json.loads((tmp_path / "cal" / "ranges.json").read_text())["tensors"]
    for t, (scale, _) in acts.items():
        assert ranges[t]["amax_by_method"]["model"] == float(scale) * 127
    # quantize keeps the model's plan and scales by default ...
    assert main(["quantize", str(path), "--data", str(data), "-o", str(tmp_path / "keep.onnx"), "-q"]) == 0
    keep = read_qdq_model(tmp_path / "keep.onnx")
    src = read_qdq_model(path)
    assert keep.plan.int8_nodes() == src.plan.int8_nodes()
    assert {t: r.scale.tobytes() for t, r in keep.activations.items()} == \
        {t: src.activations[t].scale.tobytes() for t in keep.activations}
    # ... or replaces the activation thresholds with calibrated ones (weights keep theirs)
    assert main(["quantize", str(path), "--data", str(data), "-o", str(tmp_path / "cal.onnx"), "-q",
                 "--model-scales", "calibrate", "--fp32", "^fc$"]) == 0
    cal = read_qdq_model(tmp_path / "cal.onnx")
    assert "fc" not in cal.plan.int8_nodes()
    assert any(r.scale.tobytes() != src.activations[t].scale.tobytes() for t, r in cal.activations.items())
    by_node = {n: w.scale.tobytes() for w in cal.weights.values() for n, _ in w.consumers}
    assert all(by_node[n] == w.scale.tobytes() for w in src.weights.values() for n, _ in w.consumers
               if n in by_node)
    assert not [f for f in keep.findings + cal.findings if f.severity == "error"]
