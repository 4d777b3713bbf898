"""``workbench quantize`` with the accuracy steps: on by default where they help, a table, flags
to switch each off, the steps recorded in the written plan."""
import json

import numpy as np
import onnx

import improve_models as M
from workbench.cli import main


def _setup(tmp_path):
    model = M.depthwise_model("relu")
    path = tmp_path / "dw.onnx"
    onnx.save(model, str(path))
    data = tmp_path / "calib"
    data.mkdir()
    for i, b in enumerate(M.batches(model, 12, seed=1)):  # 48 samples: 12 are held out
        np.save(data / f"b{i}.npy", b["x"])
    return str(path), str(data)


def _run(tmp_path, name, *extra):
    model, data = _setup(tmp_path) if not (tmp_path / "dw.onnx").exists() else (str(tmp_path / "dw.onnx"),
                                                                                  str(tmp_path / "calib"))
    out = tmp_path / name / "model.onnx"
    code = main(["quantize", model, "--data", data, "--method", "minmax", "--batch-size", "4", "-q",
                 "--no-eval-variant", "-o", str(out), *extra])
    assert code == 0
    return out


def test_default_applies_steps_prints_the_table_and_records_them(tmp_path, capsys):
    out = _run(tmp_path, "steps")
    text = capsys.readouterr().out
    assert "Accuracy steps (output vs FP32 on 12 calibration samples held out" in text
    for step in ("equalize", "smooth", "rounding", "bias_correction"):
        assert f"  {step}" in text
    assert "applied" in text and "skipped: no MatMul/Gemm input" in text
    steps = json.loads(out.with_suffix(".plan.json").read_text())["steps"]
    assert steps["requested"] == ["equalize", "smooth", "rounding", "bias_correction"]
    assert steps["applied"] and all(r["applied"] == (r["step"] in steps["applied"]) for r in steps["rows"])
    plain = _run(tmp_path, "plain", "--no-improve")
    text = capsys.readouterr().out
    assert "Accuracy steps" not in text
    assert "steps" not in json.loads(plain.with_suffix(".plan.json").read_text())
    a, b = onnx.load(str(plain)), onnx.load(str(out))
    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
    w = {i.name: onnx.numpy_helper.to_array(i) for i in a.graph.initializer}
    assert any(i.name in w and not np.array_equal(w[i.name], onnx.numpy_helper.to_array(i))
               for i in b.graph.initializer)
    sq = [float(line.split("sqnr_db ")[1].split()[0].rstrip(",")) for line in text.splitlines()
          if "model.onnx:" in line and "sqnr_db" in line]
    assert sq  # the written file is judged (exact semantics)


def test_each_step_can_be_switched_off(tmp_path, capsys):
    out = _run(tmp_path, "some", "--no-equalize", "--no-smooth", "--no-bias-correction", "--rounding-rows", "256")
    capsys.readouterr()
    steps = json.loads(out.with_suffix(".plan.json").read_text())["steps"]
    assert steps["requested"] == ["rounding"]
    code = main(["quantize", str(tmp_path / "dw.onnx"), "--data", str(tmp_path / "calib"), "--rounding-rows", "0",
                 "-o", str(tmp_path / "bad" / "m.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and "--rounding-rows" in err and "Traceback" not in err
