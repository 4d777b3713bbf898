"""Re-exporting an already-quantized model TensorRT-ready: the model's own scales survive a
re-export without changes (activations and weights, bit for bit), asymmetric/uint8 ones become
symmetric INT8 with the same covered range, and the result reads back without errors."""
import numpy as np
import pytest
from onnx import TensorProto

import qdq_models
import tiny_models
from qdq_models import cnn_feed, own_export, qat_small_cnn, run_exact
from workbench.imported import read_qdq_model
from workbench.imported.reexport import (MODEL_SOURCE, export_tensorrt_ready, model_only_ranges,
                                         model_plan, with_model_thresholds)


def scales_by_reader(qm) -> tuple:
    """({(consumer node, input index): activation scale bytes}, {consumer node: weight scale bytes})."""
    acts = {s: t.scale.tobytes() for t in qm.tensors if t.kind == "activation" for s in t.consumers}
    weights = {n: t.scale.tobytes() for t in qm.tensors if t.kind == "weight" for n, _ in t.consumers}
    return acts, weights


def reexport(qm, tmp_path, name="re.onnx"):
    res = export_tensorrt_ready(qm, tmp_path / name, calibration_cache=False)
    return res, read_qdq_model(tmp_path / name)


def test_own_export_reexported_unchanged(tmp_path):
    _, built, _ = own_export()
    qm = read_qdq_model(built.model)
    res, again = reexport(qm, tmp_path)
    assert scales_by_reader(again) == scales_by_reader(qm)
    assert again.plan.int8_nodes() == qm.plan.int8_nodes()
    assert not [f for f in again.findings if f.severity != "info"]


def test_qat_model_reexported_with_its_learned_scales(tmp_path):
    _, qat, acts, weights = qat_small_cnn(seed=5)
    qm = read_qdq_model(qat)
    res, again = reexport(qm, tmp_path)
    a0, w0 = scales_by_reader(qm)
    a1, w1 = scales_by_reader(again)
    assert a1 == a0 and w1 == w0  # QAT scales are not max|w|/127, yet they are kept exactly
    for w, (scales, _) in weights.items():
        node = qm.weights[w].consumers[0][0]
        assert w1[node] == scales.astype(np.float32).tobytes()
    # the re-export computes what the QAT model computes (same grids, same placement)
    feed = cnn_feed(seed=3)
    assert np.array_equal(run_exact(qat, feed)["logits"], run_exact(again.source.model, feed)["logits"])


def test_ort_int8_symmetric_reexport_keeps_scales_and_drops_output_qdq(tmp_path):
    fp32 = tiny_models.small_cnn(opset=13)
    samples = [{"input": x} for x in cnn_feed(8, seed=7)["input"]]
    q = qdq_models.ort_quantized(fp32, samples, tmp_path, activation_type="QInt8", symmetric=True)
    qm = read_qdq_model(q)
    res, again = reexport(qm, tmp_path)
    kept = again.activations
    assert "logits" not in kept and "gap" not in kept  # model output / Flatten input: not TensorRT's places
    assert "logits" in res.notes[-1] or any("logits" in n for n in res.notes)
    for t, rec in kept.items():
        assert rec.scale.tobytes() == qm.activations[t].scale.tobytes()
    assert scales_by_reader(again)[1] == scales_by_reader(qm)[1]
    assert not [f for f in again.findings if f.severity != "info"]


def test_ort_uint8_becomes_symmetric_int8_covering_the_same_range(tmp_path):
    fp32 = tiny_models.small_cnn(opset=13)
    samples = [{"input": x} for x in cnn_feed(8, seed=7)["input"]]
    q = qdq_models.ort_quantized(fp32, samples, tmp_path, activation_type="QUInt8")
    qm = read_qdq_model(q)
    res, again = reexport(qm, tmp_path)
    assert {t.dtype for t in again.activations.values()} == {"INT8"}
    assert all(t.symmetric for t in again.tensors)
    for t, rec in again.activations.items():
        src = qm.activations[t]
        assert float(rec.scale) == float(np.float32(src.amax / 127))
        assert src.amax >= max(abs(float(src.lo)), abs(float(src.hi))) - 1e-6
    assert any("symmetric INT8" in n for n in res.notes)
    assert not [f for f in again.findings if f.severity == "error"]


def test_model_source_in_ranges_and_plan_overrides():
    realistic = pytest.importorskip("realistic_models")
    from workbench.calib.collect import collect_statistics
    from workbench.calib.ranges import compute_ranges

    _, qat, acts, _ = qat_small_cnn(dtype=TensorProto.INT8)
    qm = read_qdq_model(qat)
    data = realistic.ArrayData(qm.fp32, [{"input": x} for x in cnn_feed(8, seed=2)["input"]])
    stats = collect_statistics(qm.fp32, data, tensors=list(qm.activations), progress=False)
    ranges = with_model_thresholds(qm, compute_ranges(stats))
    for t, (scale, _) in acts.items():
        assert ranges[t].amax_by_method[MODEL_SOURCE] == float(scale) * 127
    assert set(ranges.weight_scales) == set(qm.weights)
    plan = model_plan(qm)
    assert plan.amax_overrides == qm.amax() and plan.int8_nodes() == qm.plan.int8_nodes()
    only = model_only_ranges(qm)
    assert {t: r.amax for t, r in only.tensors.items()} == qm.amax()
