"""Property test: the switchable emulation computes what the exported TensorRT file computes.

Random plans (INT8 / FP16 / FP32 per node, FP16 base or not, a manual amax now and then) on small
models of every kind we are judged on: a ReLU6 classifier (residual Add, GAP, Gemm transB), a
DBNet-like detector (ConvTranspose), an opset-12 recognizer with Constant weights, a transformer
block with int64 ids, an orientation classifier (MaxPool), and a CNN with dynamic H/W run at two
sizes. Each plan's emulated output is compared with the "trt" export run with exact ONNX
semantics: bit-equal in most plans, and never further apart than
:data:`workbench.evaluate.emulate.FILE_NOISE_REL` of the output's magnitude (see its docstring for
where the rest comes from).
"""
import numpy as np
import onnxruntime as ort
import pytest

import realistic_models as R
import trt_models
from workbench.calib.collect import collect_statistics
from workbench.calib.ranges import compute_ranges
from workbench.evaluate.emulate import FILE_NOISE_REL, SwitchableModel, file_noise
from workbench.export import build_quantized
from workbench.graph.model import ModelInfo
from workbench.precision.plan import PrecisionPlan

PLANS = 10
KINDS = ["classifier", "detector", "recognizer", "transformer", "orientation", "dynamic_hw"]


def _exact(proto, feed, out):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return s.run([out], feed)[0]


def _case(kind):
    if kind == "dynamic_hw":
        info = ModelInfo(trt_models.dynamic_hw_cnn())
        rng = np.random.default_rng(3)
        feeds = [{"image": rng.standard_normal((2, 3, h, w)).astype(np.float32) * 2} for h, w in ((16, 24), (32, 20))]
        ranges = trt_models.observed_ranges(info.model, feeds[0])
        return info, ranges, feeds
    spec = R.MODELS[kind]
    info = ModelInfo(spec.build())
    ranges = compute_ranges(collect_statistics(info, R.ArrayData(info, spec.data(8, seed=1)), progress=False),
                            "percentile")
    samples = spec.data(4, seed=2)
    return info, ranges, [{k: np.stack([s[k] for s in samples]) for k in samples[0]}]


def _random_plan(info, ranges, rng):
    plan = PrecisionPlan.default(info, base="fp16" if rng.random() < 0.4 else "fp32")
    for n in plan.int8_nodes():
        plan.set_node(n, ("int8", "int8", "fp16", "fp32")[rng.integers(4)])
    if rng.random() < 0.5:  # a manual threshold on one INT8 input
        tensors = [t for t in sorted(info.facts.float_tensors) if t in ranges]
        t = tensors[rng.integers(len(tensors))]
        plan.set_amax(t, float(ranges[t].amax) * float(rng.uniform(0.3, 1.5)) or 1.0)
    return plan


def _emulation(kind):
    """(info, ranges, feeds, the all-FP16-switchable emulation, the first output) of ``kind``."""
    info, ranges, feeds = _case(kind)
    return info, ranges, feeds, SwitchableModel(info, all_fp16=True), info.outputs[0].name


@pytest.mark.parametrize("kind", KINDS)
def test_emulation_equals_the_trt_file(kind):
    info, ranges, feeds, sm, out = _emulation(kind)
    rng = np.random.default_rng(17)
    equal, fp16_plans, worst = 0, 0, 0.0
    for _ in range(PLANS):
        plan = _random_plan(info, ranges, rng)
        proto = build_quantized(info, ranges, plan, variant="trt")
        fp16_plans += bool(plan.fp16_nodes())
        for feed in feeds:
            emulated = sm.run([feed], sm.flags(plan, ranges), [out])[out]
            written = _exact(proto, feed, out)
            assert emulated.dtype == written.dtype and emulated.shape == written.shape
            equal += np.array_equal(emulated, written)
            # the documented bound, per sample
            bound = file_noise(written)
            diff = np.abs(emulated - written).reshape(len(written), -1).max(axis=1)
            assert np.all(diff <= bound), (plan.fp16_nodes(), diff, bound)
            worst = max(worst, float((diff / np.maximum(bound, 1e-30)).max()))
    assert fp16_plans >= PLANS // 2  # the property is exercised with FP16 nodes
    assert equal >= 0.7 * PLANS * len(feeds), f"only {equal} bit-equal runs"


def test_fp16_chain_difference_is_what_the_bound_covers():
    """Where the two differ it is ONNX Runtime running a chain of FP16 nodes without an FP16
    kernel in FP32 (no rounding between them) in the file: the bound is a few FP16 steps."""
    info, ranges, feeds = _case("classifier")
    plan = PrecisionPlan.default(info)
    for n in plan.int8_nodes():
        plan.set_node(n, "int8" if n == "gap" else "fp32")
    for n in ("dw3_conv", "dw3", "project"):  # Conv -> Clip -> Conv
        plan.set_node(n, "fp16")
    sm = SwitchableModel(info, all_fp16=True)
    out = info.outputs[0].name
    emulated = sm.run(feeds, sm.flags(plan, ranges), [out])[out]
    written = _exact(build_quantized(info, ranges, plan, variant="trt"), feeds[0], out)
    twin = _exact(build_quantized(info, ranges, plan, variant="ort"), feeds[0], out)
    diff = np.abs(emulated - written).max()
    assert diff <= file_noise(written).min()
    assert np.abs(twin - written).max() >= diff  # the FP32-compute twin is no closer to the file
    assert diff > 0  # the case the module docstring explains (if ONNX Runtime changes, update it)
    assert FILE_NOISE_REL <= 2 ** -6
