"""Observed tensors without a batch axis (issue 22): shapes and constant-like tensors.

A real orientation classifier (PP-OCR style, opset 11) observes, among the inputs of its INT8
nodes, float tensors that do not depend on the samples: computed from initializers only, or
from the input's shape. The default ``workbench quantize`` with calibration data alone (a
Polygraphy-style loader script at batch 1) crashed in ``holdout.extreme_samples`` on them.
"""
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper as nh

from reliability_helpers import REPO, leftovers  # noqa: F401

from workbench.graph.feeds import per_sample_rows


def shape_path_model(opset: int = 11, seed: int = 0) -> onnx.ModelProto:
    """Conv-Relu, then Shape->Gather->Concat->Reshape feeding a MatMul; plus 'cconst' (Add of two
    initializers, [3, 5], no batch axis) and 'ishp2' (Cast(Shape(input)), [1, 4]), both read by
    MatMuls (INT8 in the default plan). Input 'input' [N, 3, 8, 8], output 'logits' [N, 10]."""
    rng = np.random.default_rng(seed)

    def f(*s):
        return (rng.standard_normal(s) * 0.3).astype(np.float32)
    inits = [nh.from_array(f(4, 3, 3, 3), "cw"), nh.from_array(f(4), "cb"), nh.from_array(f(256, 10), "fw"),
             nh.from_array(f(3, 5), "ca"), nh.from_array(f(3, 5), "cbias"), nh.from_array(f(5, 10), "cw2"),
             nh.from_array(np.array([0], np.int64), "i0"), nh.from_array(np.array([-1], np.int64), "m1"),
             nh.from_array(np.array([[0.01], [0.02], [0.03], [0.04]], np.float32), "sw")]
    n = helper.make_node
    nodes = [
        n("Conv", ["input", "cw", "cb"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        n("Relu", ["c"], ["r"], name="relu"),
        n("Shape", ["r"], ["shp"], name="shape"),
        n("Gather", ["shp", "i0"], ["bdim"], name="gather", axis=0),
        n("Concat", ["bdim", "m1"], ["newshape"], name="concat", axis=0),
        n("Reshape", ["r", "newshape"], ["flat"], name="reshape"),
        n("MatMul", ["flat", "fw"], ["mm"], name="fc"),
        n("Add", ["ca", "cbias"], ["cconst"], name="cadd"),
        n("MatMul", ["cconst", "cw2"], ["cmm"], name="const_mm"),
        n("ReduceMean", ["cmm"], ["cred"], name="cred", axes=[0], keepdims=1),
        n("Shape", ["input"], ["ishp"], name="ishape"),
        n("Cast", ["ishp"], ["ishpf"], name="icast", to=TensorProto.FLOAT),
        n("Unsqueeze", ["ishpf"], ["ishp2"], name="iunsq", axes=[0]),
        n("MatMul", ["ishp2", "sw"], ["smm"], name="shape_mm"),
        n("Add", ["mm", "cred"], ["mm2"], name="add1"),
        n("Add", ["mm2", "smm"], ["logits"], name="add2"),
    ]
    graph = helper.make_graph(nodes, "shape_path",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


LOADER = """
import numpy as np

def load_data():
    rng = np.random.default_rng(0)
    for _ in range(24):
        yield {"input": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)}
"""


def test_default_quantize_with_a_loader_at_batch_1_exits_0(tmp_path):
    onnx.save(shape_path_model(), str(tmp_path / "m.onnx"))
    (tmp_path / "loader.py").write_text(LOADER)
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "quantize", str(tmp_path / "m.onnx"),
                        "--data-loader-script", str(tmp_path / "loader.py"), "-q", "-o", str(tmp_path / "q.onnx")],
                       capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert (tmp_path / "q.onnx").exists() and (tmp_path / "q.ort.onnx").exists()
    assert leftovers(tmp_path) == []


def test_every_observed_tensor_path_handles_tensors_without_a_batch_axis(tmp_path):
    from workbench import ModelInfo, collect_statistics, open_data
    from workbench.search.holdout import extreme_samples

    onnx.save(shape_path_model(), str(tmp_path / "m.onnx"))
    folder = tmp_path / "arrays"  # a folder is read in batches of 8 (a loader script keeps its batch 1)
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        np.save(folder / f"{i:02d}.npy", rng.standard_normal((3, 8, 8)).astype(np.float32))
    model = ModelInfo.from_path(tmp_path / "m.onnx")
    data = open_data(folder, model)
    assert len(next(iter(data.iter_batches(8)))["input"]) == 8
    observed = ["input", "flat", "cconst", "ishp2"]
    stats = collect_statistics(model, data, tensors=observed, batch_size=8, progress=False)
    cconst = model.constants["ca"] + model.constants["cbias"]
    assert np.isclose(stats.collectors["cconst"].max, cconst.max())
    assert np.isclose(stats.collectors["ishp2"].max, 8.0)  # the largest dim of (8, 3, 8, 8)
    # batches of 8 against tensors of 15 and 4 values: neither has a batch axis, both are skipped
    feeds = extreme_samples(model, data, observed, batch_size=8)
    inputs = np.concatenate([f["input"] for f in data.iter_batches(8)])
    peak = inputs[np.argmax(np.abs(inputs).reshape(len(inputs), -1).max(axis=1))]
    assert feeds and all(f["input"].shape == (1, 3, 8, 8) for f in feeds)
    assert any(np.array_equal(f["input"][0], peak) for f in feeds)  # the sample where 'input' peaks


def test_per_sample_rows_only_splits_a_leading_batch_axis():
    assert per_sample_rows(np.zeros((8, 3, 2)), 8).shape == (8, 6)
    assert per_sample_rows(np.zeros((3, 5)), 8) is None      # constant-like
    assert per_sample_rows(np.zeros(4), 1) is None           # a shape at batch 1
    assert per_sample_rows(np.float32(2.0), 1) is None       # a scalar
