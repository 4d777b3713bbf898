"""The switchable emulation model must compute what the exported TensorRT file ("trt") computes."""
import numpy as np
import onnxruntime as ort
import pytest

import tiny_models
from workbench.evaluate.emulate import SwitchableModel, fake_quant_weight
from workbench.errors import WorkbenchError
from workbench.export import build_quantized
from workbench.graph.model import ModelInfo
from workbench.precision.plan import PrecisionPlan
from workbench.calib.ranges import TensorRange


def _ranges(info, x):
    from workbench.backends.ort import OrtRunner

    names = [n for n in info.float_tensors() if n != "input"]
    vals = dict(OrtRunner(info.model, output_names=names).activate().infer({"input": x}), input=x)
    # 90% of max|x| so that clipping is exercised too
    return {n: TensorRange(n, float(np.abs(v).max()) * 0.9, {}, float(v.min()), float(v.max())) for n, v in vals.items()}


def _run(proto, x):
    # ONNX semantics of the Q/DQ graph, without ONNX Runtime's QDQ kernel fusions (see Evaluator)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return s.run(None, {"input": x})[0]


def test_fake_quant_weight_per_channel():
    w = np.array([[1.0, -0.5, 0.25], [0.01, 0.02, -0.04]], np.float32)
    q = fake_quant_weight(w, axis=0)
    np.testing.assert_allclose(q[0], np.round(w[0] / (1 / 127)) * (1 / 127), rtol=1e-6)
    assert np.abs(q[1] - w[1]).max() <= 0.04 / 127 / 2 + 1e-9


@pytest.mark.parametrize("case", ["default", "fp16_conv2", "int8_convs_only", "add_without_producer"])
def test_switchable_model_matches_exported_ort_variant(case):
    info = ModelInfo(tiny_models.small_cnn(opset=17))
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    ranges = _ranges(info, x)
    plan = PrecisionPlan.default(info)
    if case == "fp16_conv2":
        plan.set_node("conv2", "fp16")
    elif case == "int8_convs_only":
        plan.set_pattern("^(add|maxpool|gap|fc)$", "fp32")
    elif case == "add_without_producer":
        plan.set_node("conv2", "fp32")  # Add's input r2 is no longer fused into an INT8 conv
    exported = _run(build_quantized(info, ranges, plan, variant="trt"), x)
    sm = SwitchableModel(info)
    emulated = sm.run([{"input": x}], sm.flags(plan, ranges))["logits"]
    np.testing.assert_allclose(emulated, exported, atol=1e-5, rtol=1e-5)
    fp32 = _run(info.model, x)
    assert np.abs(emulated - fp32).max() > 1e-4  # quantization did change something


@pytest.mark.parametrize("conv2", ["int8", "fp32", "fp16"])
def test_switchable_model_mirrors_residual_add_fusion(conv2):
    """The exporter leaves the Add input coming from an INT8 conv unquantized; emulation must too."""
    from workbench.export import qdq_placement

    info = ModelInfo(tiny_models.residual_cnn())
    x = np.random.default_rng(1).standard_normal((3, 4, 8, 8)).astype(np.float32)
    ranges = _ranges(info, x)
    plan = PrecisionPlan.default(info)
    plan.set_node("conv2", conv2)
    fused = "a2" not in qdq_placement(info, plan, "ort", ranges).get("residual", [])
    assert fused == (conv2 == "int8")
    sm = SwitchableModel(info)
    emulated = sm.run([{"input": x}], sm.flags(plan, ranges))["logits"]
    exported = _run(build_quantized(info, ranges, plan, variant="trt"), x)
    np.testing.assert_allclose(emulated, exported, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model", ["small_cnn", "residual_cnn"])
def test_fp16_base_plans_match_the_export(model):
    """Non-quantizable nodes in FP16 (Relu, Clip, Flatten...) are switched too."""
    info = ModelInfo(getattr(tiny_models, model)())
    shape = (3, 3, 16, 16) if model == "small_cnn" else (3, 4, 8, 8)
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32) * 3
    ranges = _ranges(info, x)
    plan = PrecisionPlan.default(info, base="fp16")
    assert any(plan[n].op_type in ("Relu", "Clip", "Flatten") for n in plan.fp16_nodes())
    with pytest.raises(WorkbenchError, match="all_fp16=True"):
        SwitchableModel(info).flags(plan, ranges)
    sm = SwitchableModel(info, all_fp16=True)
    emulated = sm.run([{"input": x}], sm.flags(plan, ranges))["logits"]
    np.testing.assert_array_equal(emulated, _run(build_quantized(info, ranges, plan, variant="trt"), x))


@pytest.mark.slow
def test_emulation_is_bit_exact_on_the_sample(sample_model_path):
    """On EfficientNet-Lite0 (residual Adds, ReLU6, depthwise convs) with INT8 and FP16 mixed."""
    from workbench.calib.collect import collect_statistics
    from workbench.data import PRESETS, open_data
    from workbench.calib.ranges import compute_ranges

    info = ModelInfo.from_path(sample_model_path)
    folder = sample_model_path.parent
    pre = PRESETS["efficientnet-lite"]
    ranges = compute_ranges(collect_statistics(info, open_data(folder / "calib", info, preprocess=pre, limit=4),
                                               progress=False))
    feed = next(open_data(folder / "eval", info, preprocess=pre, limit=2).iter_batches(2))
    plan = PrecisionPlan.default(info)
    convs = [n for n in plan.int8_nodes() if plan[n].op_type == "Conv"]
    for n in convs[::7]:
        plan.set_node(n, "fp16")
    sm = SwitchableModel(info)
    emulated = sm.run([feed], sm.flags(plan, ranges))["logits"]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(build_quantized(info, ranges, plan, variant="trt").SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
    exported = s.run(["logits"], feed)[0]
    assert np.array_equal(emulated, exported)


def _realistic(kind):
    import realistic_models as R
    from workbench.calib.collect import collect_statistics
    from workbench.calib.ranges import compute_ranges

    spec = R.MODELS[kind]
    info = ModelInfo(spec.build())
    ranges = compute_ranges(collect_statistics(info, R.ArrayData(info, spec.data(8, seed=1)), progress=False),
                            "percentile")
    samples = spec.data(4, seed=2)
    feed = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
    return info, ranges, feed


def _exported(info, ranges, plan, feed):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(build_quantized(info, ranges, plan, variant="trt").SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
    return s.run(None, feed)[0]


@pytest.mark.parametrize("kind", ["classifier", "detector", "recognizer", "transformer", "orientation"])
def test_emulation_is_bit_exact_on_the_realistic_models(kind):
    """INT8 (ConvTranspose, MatMul with two activations, residual Adds), FP16 and FP32 mixed;
    the opset-12 recognizer runs on the exporter's opset-13 copy."""
    info, ranges, feed = _realistic(kind)
    sm = SwitchableModel(info)
    out = info.outputs[0].name
    plan = PrecisionPlan.default(info)
    int8 = plan.int8_nodes()
    mixed = plan.copy()
    mixed.set_node(int8[0], "fp16")
    mixed.set_node(int8[-1], "fp32")
    for p in (plan, mixed):
        emulated = sm.run([feed], sm.flags(p, ranges), [out])[out]
        np.testing.assert_array_equal(emulated, _exported(info, ranges, p, feed))


def test_a_tensor_switched_off_keeps_its_float_values():
    """Range analyses turn one tensor's Q/DQ off: the exported model with that tensor's
    DequantizeLinear output replaced by the float tensor computes the same numbers."""
    info, ranges, feed = _realistic("detector")
    sm = SwitchableModel(info)
    plan = PrecisionPlan.default(info)
    all_on = sm.run([feed], sm.flags(plan, ranges))["prob"]
    off = sm.run([feed], sm.flags(plan, ranges, tensors_off={"enc1"}))["prob"]
    assert not np.array_equal(all_on, off)
    proto = build_quantized(info, ranges, plan, variant="trt")
    dq = [n.output[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"
          and any(q.output[0] == n.input[0] and q.input[0] == "enc1" for q in proto.graph.node
                  if q.op_type == "QuantizeLinear")]
    assert len(dq) == 1
    for n in proto.graph.node:
        for j, x in enumerate(n.input):
            if x == dq[0]:
                n.input[j] = "enc1"
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(None, feed)[0]
    np.testing.assert_array_equal(off, want)
