import numpy as np
import pytest

import tiny_models
from workbench.calib.collect import collect_statistics
from workbench.data import open_data
from workbench.errors import Cancelled, WorkbenchError
from workbench.evaluate.evaluator import Evaluator
from workbench.graph.model import ModelInfo
from workbench.precision.plan import PrecisionPlan
from workbench.calib.ranges import compute_ranges
from workbench.search.sensitivity import auto_mixed_precision, sensitivity


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for i in range(24):
        np.save(folder / f"{i:02d}.npy", rng.standard_normal((3, 16, 16)).astype(np.float32))
    info = ModelInfo(tiny_models.small_cnn(size=16))
    data = open_data(folder, info)
    ranges = compute_ranges(collect_statistics(info, data, progress=False), "minmax")
    # coarse ranges on conv2's input make it clearly the most sensitive node
    ranges = ranges.with_overrides({"r1": ranges["r1"].amax * 30})
    return info, Evaluator(info, data), ranges


def test_sensitivity_ranks_the_damaged_node_first(setup):
    info, ev, ranges = setup
    plan = PrecisionPlan.default(info)
    table = sensitivity(ev, ranges, plan, samples=None)
    assert set(table["node"]) == set(plan.int8_nodes())
    assert list(table["rank"]) == list(range(1, len(table) + 1))
    assert table["sqnr_only_int8"].is_monotonic_increasing
    # r1 is read by conv2 and by the residual add: one of them must lead the ranking
    assert table.iloc[0]["node"] in ("conv2", "add")
    assert table.iloc[0]["sqnr_gain_fp16"] > 0


def test_auto_meets_the_target_with_few_fallbacks(setup):
    info, ev, ranges = setup
    plan = PrecisionPlan.default(info)
    base = ev.evaluate(plan, ranges, per_layer=False).summary()["sqnr_db"]
    res = auto_mixed_precision(ev, ranges, plan, f"sqnr>={base + 6:.2f}")
    assert res.met and 0 < len(res.fallback) < len(plan.int8_nodes())
    assert all(str(res.plan.precision(n)) == "fp16" and res.plan[n].reason == "auto" for n in res.fallback)
    # the exported model of the chosen plan really meets the target
    assert ev.evaluate(res.plan, ranges, per_layer=False).summary()["sqnr_db"] >= base + 6
    assert res.curve["chosen"].sum() == 1 and res.curve["n_fallback"].max() == len(plan.int8_nodes())


def test_unreachable_target_and_cancel(setup):
    info, ev, ranges = setup
    plan = PrecisionPlan.default(info)
    res = auto_mixed_precision(ev, ranges, plan, "sqnr>=1000")
    assert not res.met and len(res.fallback) == len(plan.int8_nodes())
    with pytest.raises(Cancelled):
        sensitivity(ev, ranges, plan, cancel=lambda: True)
    with pytest.raises(WorkbenchError, match="Cannot read the target"):
        auto_mixed_precision(ev, ranges, plan, "fast please")


def test_fp16_base_plans_can_be_ranked_and_searched(setup):
    info, ev, ranges = setup
    plan = PrecisionPlan.default(info, base="fp16")
    table = sensitivity(ev, ranges, plan, samples=8)
    assert set(table["node"]) == set(plan.int8_nodes())
    res = auto_mixed_precision(ev, ranges, plan, "cosine>=0.0", ranking=table)
    assert res.met and res.fallback == []
    assert res.plan.fp16_nodes() == plan.fp16_nodes()  # the FP16 base is kept


def test_scorers_share_one_emulation_per_model_and_merge_batches(setup):
    from workbench.evaluate.emulate import merge_batches
    from workbench.search.scoring import PlanScorer

    info, ev, ranges = setup
    plan = PrecisionPlan.default(info)
    a, b = PlanScorer(ev, ranges, None, plan), PlanScorer(ev, ranges, 8, plan)
    assert a.switch is b.switch  # one session per model (and kind), not stored on the evaluator
    assert not any("switch" in k for k in vars(ev))
    assert len(ev.batches) > 1 and len(a.batches) == 1  # 24 samples in one session call
    one_call = a.score(plan)
    per_batch = a.switch.run(ev.batches, a.flags(plan))[ev.output_names[0]]
    merged = a.switch.run(merge_batches(ev.batches), a.flags(plan))[ev.output_names[0]]
    np.testing.assert_array_equal(per_batch, merged)
    # the emulation scores what the exported file scores (independent path: build + run the file)
    assert one_call["sqnr_db"] == pytest.approx(ev.evaluate(plan, ranges, per_layer=False).summary()["sqnr_db"],
                                                abs=1e-3)
    assert a.calls == 1 and a.run_seconds > 0
