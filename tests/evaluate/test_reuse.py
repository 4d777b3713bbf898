"""A rebuild reuses what did not change (evaluate/reuse.py) and gives exactly the figures of a full run."""
import numpy as np
import pytest

import realistic_models as R
import tiny_models
from workbench.calib.collect import collect_statistics
from workbench.calib.ranges import compute_ranges
from workbench.evaluate.evaluator import Evaluator
from workbench.evaluate.reuse import ReuseCache, cut_tensors, float16_tensors, signatures
from workbench.export import build_quantized
from workbench.graph.model import ModelInfo
from workbench.precision.plan import PrecisionPlan


def _setup(kind: str, samples: int = 12):
    spec = R.MODELS[kind]
    info = ModelInfo(spec.build())
    ranges = compute_ranges(collect_statistics(info, R.ArrayData(info, spec.data(8, seed=1)), progress=False),
                            "percentile")
    ev = Evaluator(info, R.ArrayData(info, spec.data(samples, seed=2)), batch_size=5)
    return info, ranges, ev


def test_signatures_follow_the_computation_not_the_names():
    info = ModelInfo(tiny_models.residual_cnn())
    ranges = compute_ranges(collect_statistics(
        info, R.ArrayData(info, [{"input": np.ones((4, 8, 8), np.float32) * k} for k in range(1, 5)]),
        progress=False), "minmax")
    plan = PrecisionPlan.default(info)
    a = signatures(build_quantized(info, ranges, plan, variant="trt").graph)
    assert a == signatures(build_quantized(info, ranges, plan, variant="trt").graph)  # same file, same hashes
    plan.set_node("conv2", "fp16")
    b = signatures(build_quantized(info, ranges, plan, variant="trt").graph)
    assert a["r1"] == b["r1"]  # upstream of conv2: the same values
    assert a["logits"] != b["logits"] and a["res"] != b["res"]
    # the residual branch is not a cut: "input" is still to be read by the Add
    cuts = cut_tensors(build_quantized(info, ranges, plan, variant="trt").graph)
    assert "res" in cuts and "r1" not in cuts and "a1" not in cuts


@pytest.mark.parametrize("kind", ["classifier", "detector", "recognizer"])
def test_a_sequence_of_plan_changes_gives_the_full_runs_figures_bit_for_bit(kind):
    info, ranges, ev = _setup(kind)
    cache = ReuseCache(checkpoints=4)
    plan = PrecisionPlan.default(info)
    nodes = plan.int8_nodes()
    rng = np.random.default_rng(5)
    steps = [None, (nodes[-1], "fp16"), (nodes[len(nodes) // 2], "fp32"), (nodes[0], "fp16"), None,
             (nodes[-1], "int8")]
    late_saving = None
    for step in steps:
        if step:
            plan.set_node(*step)
        if rng.random() < 0.3:  # a manual threshold now and then
            t = sorted(t for t in ranges.tensors if ranges[t].amax > 0)[0]
            plan.set_amax(t, float(ranges[t].amax) * 0.7)
        proto = build_quantized(info, ranges, plan, variant="trt")
        layers = ev.layers_for(plan)
        fast = ev.evaluate_model(proto, layers=layers, reuse=cache)
        full = ev.evaluate_model(proto, layers=layers)
        assert fast.outputs.equals(full.outputs), (step, fast.outputs, full.outputs)
        got = fast.per_layer.set_index("node")["sqnr_db"]
        want = full.per_layer.set_index("node")["sqnr_db"]
        assert np.allclose(got, want.loc[got.index], rtol=1e-3, atol=1e-3, equal_nan=True), step
        if step == (nodes[-1], "fp16"):
            late_saving = cache.last
    # a change at the last INT8 node reran only the end of the graph
    assert late_saving["nodes_run"] < 0.5 * late_saving["nodes"], late_saving
    assert late_saving["rows_reused"] >= len(nodes) // 2


def test_float16_tensors_are_never_checkpoints():
    info, ranges, ev = _setup("classifier")
    plan = PrecisionPlan.default(info, base="fp16")
    proto = build_quantized(info, ranges, plan, variant="trt")
    half = float16_tensors(proto.graph)
    assert half  # the FP16 base plan has float16 tensors
    cache = ReuseCache(checkpoints=50)
    ev.evaluate_model(proto, reuse=cache)
    kept = {t for t, s in signatures(proto.graph).items() if s in cache.values}
    assert kept and not kept & half


def test_a_cache_of_other_samples_is_not_used():
    info, ranges, ev = _setup("classifier")
    _, _, other = _setup("classifier", samples=7)
    cache = ReuseCache()
    plan = PrecisionPlan.default(info)
    proto = build_quantized(info, ranges, plan, variant="trt")
    ev.evaluate_model(proto, reuse=cache)
    a = other.evaluate_model(proto, reuse=cache)
    assert cache.last["nodes_run"] == cache.last["nodes"]
    assert a.outputs.equals(other.evaluate_model(proto).outputs)
