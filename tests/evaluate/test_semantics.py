"""One evaluation semantics (exact ONNX semantics) everywhere; the CPU deployment variant measured
as deployed; a loud failure when ONNX Runtime's exact-semantics numbers drift."""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tiny_models
from workbench.calib.collect import collect_statistics
from workbench.backends.cpu_kernels import REDUCED_WEIGHT_QMAX, u8s8_saturates
from workbench.data import open_data
from workbench.errors import WorkbenchError
from workbench.evaluate.evaluator import Evaluator
from workbench.export import build_quantized
from workbench.export.build import build
from workbench.graph.model import ModelInfo
from workbench.precision.plan import PrecisionPlan
from workbench.calib.ranges import compute_ranges
from workbench.graph.semantics import DEPLOYED, EXACT, deployed_path, describe

DATA = Path(__file__).resolve().parents[1] / "fixtures"


def wide_conv_model(seed: int = 0) -> onnx.ModelProto:
    """Large non-negative activations into wide Convs: u8s8 pair sums overflow int16 without VNNI."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)
    w2 = (rng.standard_normal((16, 64, 3, 3)) * 0.05).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["y"], name="conv2", pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes, "wide_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16, 8, 8])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    root = tmp_path_factory.mktemp("wide")
    path = tiny_models.save(wide_conv_model(), root / "wide.onnx")
    rng = np.random.default_rng(1)
    for i in range(16):  # uniform in [0, 10]: most uint8 codes near the top of the range
        np.save(root / f"s{i:02d}.npy", rng.uniform(0, 10, (1, 64, 8, 8)).astype(np.float32))
    model = ModelInfo.from_path(path)
    data = open_data(root, model)
    ranges = compute_ranges(collect_statistics(model, data, progress=False), "minmax")
    return model, ranges, Evaluator(model, data)


def _sqnr(evaluator, proto, optimization):
    if optimization == DEPLOYED:  # the cpu_uint8 file as deployed, on purpose
        with deployed_path():
            return evaluator.evaluate_model(proto, optimization=optimization).summary()["sqnr_db"]
    return evaluator.evaluate_model(proto, optimization=optimization).summary()["sqnr_db"]


def test_evaluator_defaults_to_exact_semantics(wide):
    model, ranges, ev = wide
    proto = build_quantized(model, ranges, PrecisionPlan.default(model), variant="trt")
    default = ev.run(proto)["y"]
    exact = ev.run(proto, optimization=EXACT)["y"]
    np.testing.assert_array_equal(default, exact)
    res = ev.evaluate_model(proto)
    assert res.semantics == describe(EXACT) and "graph optimizations off" in res.semantics


def test_cpu_uint8_deployed_within_1db_of_exact_on_this_machine(wide):
    model, ranges, ev = wide
    plan = PrecisionPlan.default(model)
    result = build(model, ranges, plan, variant="cpu_uint8")  # reduce_range decided by the probe
    exact, deployed = _sqnr(ev, result.model, EXACT), _sqnr(ev, result.model, DEPLOYED)
    assert exact > 20, exact
    assert deployed > exact - 1.0, (exact, deployed, result.notes)
    assert any("7 bits" in n for n in result.notes) == u8s8_saturates()


def test_probe_predicts_whether_full_range_weights_saturate(wide):
    model, ranges, ev = wide
    full = build_quantized(model, ranges, PrecisionPlan.default(model), variant="cpu_uint8", reduce_range=False)
    gap = _sqnr(ev, full, EXACT) - _sqnr(ev, full, DEPLOYED)
    assert (gap > 1.0) == u8s8_saturates(), gap


def test_reduced_range_weights_are_7_bit_and_stay_accurate(wide):
    model, ranges, ev = wide
    result = build(model, ranges, PrecisionPlan.default(model), variant="cpu_uint8", reduce_range=True)
    for init in result.model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.int8:
            assert np.abs(arr.astype(int)).max() <= REDUCED_WEIGHT_QMAX
    exact, deployed = _sqnr(ev, result.model, EXACT), _sqnr(ev, result.model, DEPLOYED)
    assert exact > 20 and deployed > exact - 1.0, (exact, deployed)
    with pytest.raises(WorkbenchError, match="cpu_uint8 variant only"):
        build(model, ranges, PrecisionPlan.default(model), variant="trt", reduce_range=True)


def _versions() -> str:
    import importlib.metadata as md

    return ", ".join(f"{n} {md.version(n)}" for n in ("onnxruntime", "onnx", "numpy"))


@pytest.mark.slow
def test_sample_qdq_exact_semantics_match_the_stored_reference(sample_model_path):
    """The sample's Q/DQ model (stored ranges, default plan) run with exact ONNX semantics on four
    evaluation photos gives the stored logits. A failure means ONNX Runtime (or onnx/numpy, or the
    exporter) changed the numbers: check the versions before trusting any figure."""
    from workbench.data import PRESETS

    model = ModelInfo.from_path(sample_model_path)
    amax = json.loads((DATA / "sample_qdq_ranges.json").read_text())
    ranges = {t: SimpleNamespace(amax=a, min=-a, max=a) for t, a in amax.items()}
    proto = build_quantized(model, ranges, PrecisionPlan.default(model), variant="trt")
    data = open_data(Path(sample_model_path).parent / "eval", model, preprocess=PRESETS["efficientnet-lite"], limit=4)
    logits = Evaluator(model, data).run(proto)[model.outputs[0].name]
    ref_path = DATA / "sample_qdq_reference.npz"
    if os.environ.get("WORKBENCH_WRITE_REFERENCE") == "1":
        np.savez_compressed(ref_path, logits=logits, versions=_versions())
    ref = np.load(ref_path)
    err = float(np.max(np.abs(logits - ref["logits"])))
    assert err < 1e-4, (f"exact-semantics logits of the sample's Q/DQ model drifted by {err:.3g} from "
                        f"the reference made with {ref['versions']}; now running {_versions()}")


def test_quantize_reports_accuracy_per_written_file_with_its_semantics(tmp_path, capsys):
    from workbench.cli import main

    model = tiny_models.save(wide_conv_model(), tmp_path / "wide.onnx")
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(2)
    for i in range(6):
        np.save(data / f"s{i}.npy", rng.uniform(0, 10, (1, 64, 8, 8)).astype(np.float32))
    assert main([ "quantize", model, "--data", str(data), "--cpu-uint8", "-o", str(tmp_path / "q.onnx")]) == 0
    out = capsys.readouterr().out
    assert "No evaluation data" in out and "optimistic" in out  # 6 samples: too few to hold any out, said so
    lines = {name: [l for l in out.splitlines() if l.strip().startswith(name + ":")]
             for name in ("q.onnx", "q.ort.onnx", "q.cpu_uint8.onnx")}
    assert len(lines["q.onnx"]) == 1 and "exact ONNX semantics" in lines["q.onnx"][0]
    assert len(lines["q.ort.onnx"]) == 1
    assert len(lines["q.cpu_uint8.onnx"]) == 2 and "as deployed" in lines["q.cpu_uint8.onnx"][1]
