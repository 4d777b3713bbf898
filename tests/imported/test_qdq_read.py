"""Reading already-quantized models: scales, precisions, the recovered FP32 graph, findings.

Models: PyTorch-QAT-shaped Q/DQ written with onnx.helper (tests/qdq_models.fake_quant), ONNX
Runtime's quantize_static (uint8 / int8, per-channel), the workbench's own export, FP8 and
INT4. Every output comparison uses exact ONNX semantics (ORT graph optimizations off).
"""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

import qdq_models
from qdq_models import cnn_feed, own_export, qat_small_cnn, run_exact  # noqa: F401
import tiny_models
from workbench.errors import WorkbenchError
from workbench.imported import is_qdq_model, read_qdq_model
from workbench.graph.model import ModelInfo
from workbench.precision.plan import PrecisionPlan
from workbench.calib.ranges import TensorRange






def with_constants_of(original: onnx.ModelProto, recovered: onnx.ModelProto) -> onnx.ModelProto:
    """``original`` with each initializer a node reads replaced by the constant the same node
    reads at the same input in ``recovered`` (nodes matched by name): isolates the weights'
    quantization from the graph recovery."""
    out = onnx.ModelProto()
    out.CopyFrom(original)
    rec_nodes = {n.name: n for n in recovered.graph.node}
    rec_consts = ModelInfo(recovered).constants
    inits = {t.name: t for t in out.graph.initializer}
    for n in original.graph.node:
        for i, t in enumerate(n.input):
            if t in inits and inits[t].data_type == TensorProto.FLOAT and n.name in rec_nodes:
                value = rec_consts[rec_nodes[n.name].input[i]]
                inits[t].CopyFrom(numpy_helper.from_array(value.astype(np.float32), t))
    return out


# --------------------------------------------------------------------------- PyTorch QAT shape


@pytest.mark.parametrize("constants", [False, True], ids=["initializers", "constant_nodes"])
def test_qat_scales_exact_and_fp32_graph_identical(constants):
    fp32, qat, acts, weights = qat_small_cnn(constants=constants)
    qm = read_qdq_model(qat)
    assert set(qm.activations) == set(acts)
    for t, (scale, zp) in acts.items():
        rec = qm.activations[t]
        assert rec.scale.dtype == np.float32 and rec.scale.tobytes() == np.float32(scale).tobytes()
        assert rec.dtype == "INT8" and rec.axis is None and rec.symmetric
        assert rec.amax == float(np.float32(scale)) * 127
    assert set(qm.weights) == set(weights)  # the float weight names: the Q's input
    for w, (scales, axis) in weights.items():
        rec = qm.weights[w]
        assert np.array_equal(rec.scale, scales) and rec.scale.dtype == np.float32
        assert rec.axis == axis and rec.exact_fp32
    assert not qm.fp32.has_qdq()
    assert [n.name for n in qm.fp32.nodes] == [n.name for n in fp32.graph.node]
    feed = cnn_feed()
    want, got = run_exact(fp32, feed)["logits"], run_exact(qm.fp32.model, feed)["logits"]
    assert np.array_equal(want, got)  # float weights kept: the FP32 model itself
    assert set(qm.plan.int8_nodes()) == {"conv1", "conv2", "add", "maxpool", "gap", "fc"}
    assert not [f for f in qm.findings if f.severity in ("error", "warning")], qm.findings


def test_qat_uint8_activations_are_reported_with_what_tensorrt_expects():
    fp32, qat, acts, _ = qat_small_cnn(dtype=TensorProto.UINT8, zero_points={"input": 128, "flat": 3})
    qm = read_qdq_model(qat)
    assert {t.dtype for t in qm.activations.values()} == {"UINT8"}
    assert int(qm.activations["input"].zero_point) == 128
    unsigned = {f.tensor: f for f in qm.findings if f.code == "unsigned"}
    assert set(unsigned) == set(acts) and all(f.severity == "error" for f in unsigned.values())
    # the message says what a TensorRT-ready export uses: amax = the largest |x| of the range
    s = float(acts["input"][0])
    assert qm.activations["input"].amax == pytest.approx(128 * s)
    assert f"{128 * s:.6g}" in unsigned["input"].message and "zero point 0" in unsigned["input"].message
    assert not qm.restored  # r1/r2 come from Relu nodes: nothing was removed
    feed = cnn_feed()
    assert np.array_equal(run_exact(fp32, feed)["logits"], run_exact(qm.fp32.model, feed)["logits"])


def test_missing_residual_qdq_and_wrong_weight_axis_are_found():
    fp32 = tiny_models.residual_cnn(opset=13)
    rng = np.random.default_rng(3)
    acts = {"input": (np.float32(0.03), 0), "r1": (np.float32(0.05), 0), "flat": (np.float32(0.02), 0)}
    weights = {"c1.w": (rng.uniform(0.01, 0.02, 4).astype(np.float32), 1),   # wrong axis (input channels)
               "c2.w": (rng.uniform(0.01, 0.02, 4).astype(np.float32), 0),
               "fc.w": (rng.uniform(0.01, 0.02, 5).astype(np.float32), 0)}
    qat = qdq_models.fake_quant(fp32, acts, weights, readers={"input": ["conv1"]})
    qm = read_qdq_model(qat)
    by = {}
    for f in qm.findings:
        by.setdefault(f.code, []).append(f)
    (res,) = by["missing_residual_qdq"]
    assert res.node == "residual" and res.tensor == "input" and "a2" in res.message
    (axis,) = by["weight_axis"]
    assert axis.tensor == "c1.w" and axis.node == "conv1" and "axis 0" in axis.message
    assert qm.plan.precision("residual").value == "fp32"  # no Q/DQ on its inputs in the model
    # the same model with the residual input quantized for the Add: no finding
    ok = read_qdq_model(qdq_models.fake_quant(fp32, acts, {**weights, "c1.w": (weights["c2.w"][0], 0)}))
    assert not [f for f in ok.findings if f.code in ("missing_residual_qdq", "weight_axis")]
    assert ok.plan.precision("residual").value == "int8"


# --------------------------------------------------------------------------- ONNX Runtime quantize_static
ORT_CONFIGS = [("QUInt8", False), ("QInt8", False), ("QInt8", True)]


@pytest.mark.parametrize("act_type,symmetric", ORT_CONFIGS, ids=["uint8", "int8_asym", "int8_sym"])
def test_ort_quantize_static_read_back(tmp_path, act_type, symmetric):
    fp32 = tiny_models.small_cnn(opset=13)
    samples = [{"input": x} for x in cnn_feed(8, seed=7)["input"]]
    q = qdq_models.ort_quantized(fp32, samples, tmp_path, activation_type=act_type, symmetric=symmetric)
    qm = read_qdq_model(q)
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    nodes = {n.name: n for n in q.graph.node}
    q_nodes = [n for n in q.graph.node if n.op_type == "QuantizeLinear"]
    assert len([t for t in qm.tensors if t.q_node]) == len(q_nodes)
    for rec in qm.tensors:  # each record carries exactly the scale its own node stores
        node = nodes[rec.q_node or rec.dq_nodes[0]]
        assert rec.scale.tobytes() == inits[node.input[1]].astype(np.float32).tobytes()
        assert np.array_equal(rec.zero_point, inits[node.input[2]].astype(np.int64))
    expected_type = "UINT8" if act_type == "QUInt8" else "INT8"
    assert {t.dtype for t in qm.activations.values()} == {expected_type}
    assert {t.dtype for t in qm.weights.values()} == {"INT8"}
    assert all(t.axis == 0 for t in qm.weights.values())
    # ORT removed relu1/relu2 in front of Qs whose range starts at 0; they are put back
    if not symmetric:
        assert set(qm.restored) == {"r1", "r2"}
    feed = cnn_feed(seed=11)
    rec_out = run_exact(qm.fp32.model, feed)["logits"]
    same_weights = with_constants_of(fp32, qm.fp32.model)
    assert np.array_equal(run_exact(same_weights, feed)["logits"], rec_out)
    ref = run_exact(fp32, feed)["logits"]
    assert np.abs(ref - rec_out).max() < 0.05 * np.abs(ref).max()  # only INT8 weight rounding differs
    codes = {f.code for f in qm.findings}
    assert ("unsigned" in codes) == (act_type == "QUInt8")
    assert ("zero_point" in codes) == (act_type == "QInt8" and not symmetric)
    assert "output_qdq" in codes  # ORT quantizes the logits
    assert "int32_bias" in codes


def test_ort_relu6_classifier_gets_its_relu6_back(tmp_path):
    realistic = pytest.importorskip("realistic_models")
    fp32 = realistic.classifier_relu6()
    samples = realistic.image_data(8, seed=1)
    q = qdq_models.ort_quantized(fp32, samples, tmp_path, activation_type="QUInt8")
    qm = read_qdq_model(q)
    clips = [n.name for n in fp32.graph.node if n.op_type == "Clip"]
    assert len(qm.restored) == len(clips)
    notes = [f for f in qm.findings if f.code == "restored_relu"]
    # the calibration data saturates every ReLU6, so each Q range ends at 6: Clip(0, 6) again
    assert len(notes) == len(clips) and all("ReLU6 (Clip 0..6)" in f.message for f in notes)
    feed = {"image": np.stack([s["image"] for s in realistic.image_data(4, seed=9)])}
    got = run_exact(qm.fp32.model, feed)["logits"]
    assert np.array_equal(run_exact(with_constants_of(fp32, qm.fp32.model), feed)["logits"], got)


def test_qoperator_and_float_models_are_refused_with_a_reason(tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    fp32 = tiny_models.small_cnn(opset=13)
    with pytest.raises(WorkbenchError, match="not a Q/DQ model"):
        read_qdq_model(fp32)
    assert not is_qdq_model(ModelInfo(fp32))
    onnx.save(fp32, str(tmp_path / "f.onnx"))

    class R(CalibrationDataReader):
        def __init__(self):
            self.it = iter([cnn_feed(1, seed=s) for s in range(2)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "qop.onnx"), R(), quant_format=QuantFormat.QOperator)
    with pytest.raises(WorkbenchError, match="QLinearConv.*QDQ"):
        read_qdq_model(tmp_path / "qop.onnx")


# --------------------------------------------------------------------------- the workbench's own export


def test_own_export_read_back_exactly():
    info, res, plan = own_export()
    qm = read_qdq_model(res.model)
    assert {t: float(r.scale) for t, r in qm.activations.items()} == res.activation_scales
    assert set(qm.weights) == {f"{w}_dequantized" for w in res.weight_scales}
    for w, scales in res.weight_scales.items():
        assert qm.weights[f"{w}_dequantized"].scale.tobytes() == scales.tobytes()
    assert qm.plan.int8_nodes() == plan.int8_nodes()
    assert not [f for f in qm.findings if f.severity in ("error", "warning")], qm.findings
    feed = cnn_feed(seed=5)
    same_weights = with_constants_of(info.model, qm.fp32.model)
    assert np.array_equal(run_exact(same_weights, feed)["logits"], run_exact(qm.fp32.model, feed)["logits"])


def test_own_export_fp16_nodes_come_back_as_fp16_in_the_plan_and_fp32_in_the_graph():
    info, res, plan = own_export(lambda p: (p.set_node("fc", "fp16"), p.set_node("relu2", "fp16")))
    qm = read_qdq_model(res.model)
    assert set(qm.fp16_nodes) == {"fc", "relu2"}
    assert set(qm.plan.fp16_nodes()) == {"fc", "relu2"}
    assert qm.plan.int8_nodes() == [n for n in plan.int8_nodes()]
    types = ModelInfo(qm.fp32.model).tensor_types
    assert TensorProto.FLOAT16 not in set(types.values())
    assert not [n for n in qm.fp32.nodes if n.op_type == "Cast"]
    feed = cnn_feed(seed=6)
    same_weights = with_constants_of(info.model, qm.fp32.model)
    assert np.array_equal(run_exact(same_weights, feed)["logits"], run_exact(qm.fp32.model, feed)["logits"])


# --------------------------------------------------------------------------- FP8 and INT4
@pytest.mark.parametrize("kind,peak,code", [("FLOAT8E4M3FN", 448.0, "fp8"), ("FLOAT8E5M2", 57344.0, "fp8_type")])
def test_fp8_named_and_dequantized_exactly(kind, peak, code):
    model, deq, a_scale = qdq_models.fp8_model(kind=kind)
    qm = read_qdq_model(model)
    assert qm.activations["x"].dtype == kind and float(qm.activations["x"].scale) == a_scale
    assert qm.activations["x"].amax == pytest.approx(peak * float(a_scale))
    assert qm.weights["w"].dtype == kind
    assert np.array_equal(qm.fp32.constants["w"], deq)
    assert qm.plan.precision("mm").value == "fp32" and kind in qm.plan["mm"].detail
    found = {f.code: f for f in qm.findings}
    assert code in found and (code == "fp8") == (found[code].severity == "info")
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    assert np.array_equal(run_exact(qm.fp32.model, {"x": x})["y"], x @ deq)


def test_int4_blocked_weights_dequantized_exactly():
    model, deq, scales = qdq_models.int4_matmul()
    qm = read_qdq_model(model)
    w = qm.weights["w"]
    assert w.dtype == "INT4" and w.block_size == 4 and w.axis == 0 and np.array_equal(w.scale, scales)
    assert np.array_equal(qm.fp32.constants["w"], deq)
    assert any(f.code == "int4_weight" for f in qm.findings)


# --------------------------------------------------------------------------- clipping against data
def test_clipping_of_a_too_small_model_scale_is_reported_with_data():
    realistic = pytest.importorskip("realistic_models")
    from workbench.calib.collect import collect_statistics

    fp32, qat, acts, weights = qat_small_cnn()
    qm = read_qdq_model(qat)
    data = realistic.ArrayData(qm.fp32, [{"input": x} for x in cnn_feed(16, seed=4)["input"]])
    stats = collect_statistics(qm.fp32, data, tensors=list(qm.activations), progress=False)
    peak = {t: float(stats.collectors[t].absmax) for t in qm.activations}
    # scales chosen so that 'r1' clips a lot and 'input' nothing
    acts = dict(acts, r1=(np.float32(0.2 * peak["r1"] / 127), 0), input=(np.float32(1.5 * peak["input"] / 127), 0))
    qm = read_qdq_model(qdq_models.fake_quant(fp32, acts, weights))
    found = {f.tensor for f in qm.clipping_findings(stats, 0.01) if f.code == "clipping"}
    assert "r1" in found and "input" not in found
    table = qm.table(stats).set_index("tensor")
    assert table.loc["r1", "clipped_pct"] > 1.0 and table.loc["input", "clipped_pct"] == 0.0
    assert table.loc["r1", "amax"] == pytest.approx(0.2 * peak["r1"], rel=1e-6)


def test_two_pairs_with_different_scales_on_one_tensor_are_reported():
    from onnx import helper

    fp32 = tiny_models.small_cnn(opset=13)
    acts = {"input": (np.float32(0.03), 0), "r1": (np.float32(0.02), 0)}
    qat = qdq_models.fake_quant(fp32, acts, {}, readers={"r1": ["conv2"]})
    # a dedicated second pair for the Add's read of r1, with another scale (ModelOpt style)
    qat.graph.initializer.extend([numpy_helper.from_array(np.array(0.05, np.float32), "r1_s2"),
                                  numpy_helper.from_array(np.array(0, np.int8), "r1_z2")])
    nodes = list(qat.graph.node)
    add = next(i for i, n in enumerate(nodes) if n.name == "add")
    nodes[add].input[1] = "r1_dq2"
    nodes[add:add] = [helper.make_node("QuantizeLinear", ["r1", "r1_s2", "r1_z2"], ["r1_q2"], name="r1_q2"),
                      helper.make_node("DequantizeLinear", ["r1_q2", "r1_s2", "r1_z2"], ["r1_dq2"], name="r1_dq2")]
    del qat.graph.node[:]
    qat.graph.node.extend(nodes)
    qm = read_qdq_model(qat)
    (f,) = [f for f in qm.findings if f.code == "conflicting_qdq"]
    assert f.tensor == "r1" and "r1_q2" in f.message
    assert float(qm.activations["r1"].scale) == np.float32(0.02)
    feed = cnn_feed()
    assert np.array_equal(run_exact(fp32, feed)["logits"], run_exact(qm.fp32.model, feed)["logits"])


REALISTIC = ("classifier", "detector", "recognizer", "transformer", "orientation")


@pytest.mark.parametrize("name", REALISTIC)
def test_ort_quantized_realistic_models_recover_exactly(tmp_path, name):
    realistic = pytest.importorskip("realistic_models")
    spec = realistic.MODELS[name]
    fp32 = spec.build()
    q = qdq_models.ort_quantized(fp32, spec.data(8, seed=1), tmp_path, activation_type="QUInt8")
    qm = read_qdq_model(q)
    assert not qm.fp32.has_qdq() and not qm.kept_nodes
    test = spec.data(4, seed=9)
    feed = {k: np.stack([s[k] for s in test]) for k in test[0]}
    got = run_exact(qm.fp32.model, feed)
    want = run_exact(with_constants_of(fp32, qm.fp32.model), feed)
    assert all(np.array_equal(got[k], want[k]) for k in want)
    codes = {f.code for f in qm.findings}
    assert "unsigned" in codes and "quant_type" not in codes  # INT32 biases (also BN's) are biases


def test_own_export_model_file_read_back(tmp_path):
    from workbench.export import export_model

    info = ModelInfo(tiny_models.residual_cnn(opset=13))
    rng = np.random.default_rng(4)
    ranges = {t: TensorRange(t, float(rng.uniform(1, 5)), {}, -2.0, 2.0) for t in info.float_tensors()}
    plan = PrecisionPlan.default(info)
    res = export_model(info, ranges, plan, tmp_path / "res.onnx", calibration_cache=False)
    qm = read_qdq_model(tmp_path / "res.onnx")
    assert {t: float(r.scale) for t, r in qm.activations.items()} == res.build.activation_scales
    assert qm.plan.int8_nodes() == plan.int8_nodes()
    # the residual Add reads Q/DQ on 'input' only (a2 comes straight from conv2): TensorRT's placement
    assert qm.activation_inputs()["residual"] == ["input"]
    assert not [f for f in qm.findings if f.severity != "info"]


def test_qat_matmul_weight_through_transpose_is_folded(tmp_path):
    """PyTorch's QAT export of a Linear on 3-D input: W -> Q -> DQ -> Transpose -> MatMul."""
    from onnx import helper

    rng = np.random.default_rng(6)
    w = rng.standard_normal((4, 8)).astype(np.float32)  # [out, in], as nn.Linear stores it
    nodes = [helper.make_node("Transpose", ["w"], ["wt"], name="t", perm=[1, 0]),
             helper.make_node("MatMul", ["x", "wt"], ["y"], name="mm")]
    g = helper.make_graph(nodes, "lin", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 4])],
                          initializer=[numpy_helper.from_array(w, "w")])
    fp32 = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 13)])
    fp32.ir_version = 8
    w_scales = (np.abs(w).max(axis=1) / 127 * 1.1).astype(np.float32)
    qat = qdq_models.fake_quant(fp32, {"x": (np.float32(0.02), 0)}, {"w": (w_scales, 0)})
    qm = read_qdq_model(qat)
    assert not [n for n in qm.fp32.nodes if n.op_type == "Transpose"]
    rec = qm.weights["wt"]
    assert rec.axis == 1 and np.array_equal(rec.scale, w_scales) and rec.consumers == (("mm", 1),)
    assert np.array_equal(qm.fp32.constants["wt"], w.T)
    assert qm.plan.precision("mm").value == "int8"
    assert not [f for f in qm.findings if f.severity != "info"], qm.findings
    x = {"x": rng.standard_normal((2, 3, 8)).astype(np.float32)}
    assert np.array_equal(run_exact(fp32, x)["y"], run_exact(qm.fp32.model, x)["y"])
    from workbench.imported.reexport import export_tensorrt_ready

    export_tensorrt_ready(qm, tmp_path / "re.onnx", calibration_cache=False)
    again = read_qdq_model(tmp_path / "re.onnx")
    (w2,) = again.weights.values()
    assert w2.scale.tobytes() == w_scales.tobytes() and w2.axis == 1
    assert np.array_equal(run_exact(qat, x)["y"], run_exact(again.source.model, x)["y"])
