"""Downstream-only runs of the emulation equal full runs of the switchable model, bit for bit.

A range search tries several scales of one tensor with everything else fixed; the part of the
graph before the first node reading that scale is taken from a checkpoint of the current
configuration and only the rest runs. These tests walk every tensor of small models of the
judged kinds on the plan's fixed emulation (:class:`FixedPlanModel`) and on the switchable model
itself, accept trials between walks (the checkpoints then come from the accepted run), split
runs into folds, and compare every output with a full run of the switchable model.
"""
import numpy as np
import pytest

import realistic_models as R
from workbench.calib.collect import collect_statistics
from workbench.calib.ranges import compute_ranges
from workbench.evaluate.downstream import DownstreamRuns
from workbench.evaluate.emulate import SCALE, SwitchableModel, merge_batches
from workbench.evaluate.fixed_plan import FixedPlanModel
from workbench.graph.model import ModelInfo
from workbench.precision.plan import PrecisionPlan


def _setup(kind, n=7):
    spec = R.MODELS[kind]
    info = ModelInfo(spec.build())
    data = R.ArrayData(info, spec.data(n, seed=2))
    ranges = compute_ranges(collect_statistics(info, data, progress=False), "minmax")
    switch = SwitchableModel(info)
    plan = PrecisionPlan.default(info)
    flags = switch.flags(plan, ranges)
    batches = merge_batches(list(data.iter_batches(4)), 64)
    return switch, flags, batches, [o.name for o in info.outputs]


def _same(a, b, names):
    return all(np.array_equal(a[n], b[n]) for n in names)


@pytest.mark.parametrize("fixed", [True, False], ids=["fixed-plan", "switchable"])
@pytest.mark.parametrize("kind", ["detector", "transformer", "recognizer", "classifier"])
def test_every_tensor_every_trial_equals_a_full_run(kind, fixed):
    switch, flags, batches, names = _setup(kind)
    model = FixedPlanModel(switch, flags) if fixed else switch
    runs = DownstreamRuns(model, batches, names, folds=2, min_full_run_s=0)  # checkpoints even on small models
    current = dict(flags)
    assert _same(runs.run(current), switch.run(batches, current, names), names)
    runs.settle(current)
    rng = np.random.default_rng(0)
    for k, t in enumerate(switch.tensors):
        i = switch.tensor_index[t]
        trials = []
        for f in (0.5, 0.8, 1.3):
            s = current[SCALE].copy()
            s[i] *= f
            trials.append({**current, SCALE: s})
        for trial in trials:
            full = switch.run(batches, trial, names)
            if k % 2:  # first fold first, then the rest
                half = runs.run(trial, t, fold=0)
                assert all(np.array_equal(half[n][0::2], full[n][0::2]) for n in names), (kind, t)
            assert _same(runs.run(trial, t), full, names), (kind, t)
        # accept one trial as the search does: later tensors start from its checkpoints
        current = trials[int(rng.integers(0, 3))]
        runs.settle(current)
    assert runs.partial_runs > 0  # checkpoints served some tensors (the rest ran in full)
    assert runs.cuts


def test_an_unsettled_change_before_the_checkpoint_is_recomputed():
    switch, flags, batches, names = _setup("detector")
    model = FixedPlanModel(switch, flags)
    runs = DownstreamRuns(model, batches, names, min_full_run_s=0)
    runs.run(flags)
    runs.settle(flags)
    late = [t for t in switch.tensors if runs.checkpoint(t) is not None][-1]
    changed = dict(flags)
    changed[SCALE] = flags[SCALE] * 0.7  # every scale, also those read before the checkpoint
    out = runs.run(changed, late)  # not what settle() said: the checkpoint's key differs
    assert _same(out, switch.run(batches, changed, names), names)
    assert runs.partial_runs == 1


def test_checkpoints_over_the_budget_are_dropped_and_runs_stay_exact():
    switch, flags, batches, names = _setup("detector")
    runs = DownstreamRuns(FixedPlanModel(switch, flags), batches, names, budget_bytes=1024, min_full_run_s=0)
    t = switch.tensors[-1]
    out = runs.run(flags, t)
    assert runs.cuts == [] and runs.partial_runs == 0 and runs.full_runs == 1
    assert _same(out, switch.run(batches, flags, names), names)


def test_checkpoints_sit_where_tensors_are_small():
    switch, flags, batches, names = _setup("classifier")
    runs = DownstreamRuns(FixedPlanModel(switch, flags), batches, names, checkpoints=2, min_full_run_s=0)
    from workbench.evaluate.downstream_graph import cut_sizes

    cands = runs._cut_candidates
    sizes = cut_sizes(runs.model.proto, batches, cands)
    assert all(v is not None for v in sizes.values())
    runs.checkpoint(switch.tensors[0])
    half = len(cands) // 2
    assert runs.cuts[0] == min(reversed(cands[:half]), key=sizes.get)


def test_the_fixed_plan_model_refuses_another_plan():
    from workbench.errors import InternalError

    switch, flags, batches, names = _setup("classifier")
    model = FixedPlanModel(switch, flags)
    other = dict(flags)
    other["wb_int8"] = ~flags["wb_int8"]
    with pytest.raises(InternalError):
        model.run(batches, other, names)


def test_whole_runs_outlive_one_fold_runs_and_filled_checkpoints_are_kept():
    """A search scores its methods (two whole runs, then three on the first fold only) and starts
    from the first: its checkpoints are still there. A checkpoint computed for a trial (fill) is
    the current configuration's and serves the next trials without another fill."""
    switch, flags, batches, names = _setup("classifier", n=8)
    runs = DownstreamRuns(FixedPlanModel(switch, flags), batches, names, folds=2, min_full_run_s=0)
    configs = [{**flags, SCALE: flags[SCALE] * np.float32(f)} for f in (1.0, 0.9, 0.8, 0.7, 0.6)]
    runs.run(configs[0])
    runs.run(configs[1])
    for c in configs[2:]:
        runs.run(c, fold=0)
    runs.settle(configs[0])
    assert set(runs._store) == set(runs.cuts)
    late = [t for t in switch.tensors if runs.checkpoint(t) is not None][-1]
    i = switch.tensor_index[late]
    trials = []
    for f in (0.5, 0.6, 0.7, 0.8, 0.9, 1.1):  # more trials than runs kept (KEEP_RECENT)
        s = configs[0][SCALE].copy()
        s[i] *= f
        trials.append({**configs[0], SCALE: s})
    runs._store = {}  # the current values lost (as when a whole run was dropped for memory)
    for trial in trials:
        half = runs.run(trial, late, fold=0)
        full = switch.run(batches, trial, names)
        assert all(np.array_equal(half[n][0::2], full[n][0::2]) for n in names)
    assert runs.fills == 1


@pytest.mark.parametrize("lanes", [1, 2])
def test_folds_and_lanes_never_run_one_row_cut_from_a_batch(lanes):
    """ONNX Runtime reduces a one-row call in another order (the transformer's mean pooling):
    a batch of 3 samples in two folds (2 + 1) runs as one part of both folds, 7 samples in two
    lanes per fold as 2 + 2 and 3, and every run, of one fold or all, equals a full run."""
    from workbench.backends.lanes import MIN_PART_ROWS

    for n in (3, 7):
        switch, flags, batches, names = _setup("transformer", n=n)
        batches = merge_batches(batches, 64)
        switch.threads = lanes
        runs = DownstreamRuns(FixedPlanModel(switch, flags), batches, names, folds=2, min_full_run_s=0)
        assert all(len(rows) >= MIN_PART_ROWS for _, _, rows, _ in runs.parts)
        if n == 3:
            assert [f for _, f, _, _ in runs.parts] == [None]
        trial = {**flags, SCALE: flags[SCALE] * np.float32(0.8)}
        full = switch.run(batches, trial, names)
        half = runs.run(trial, switch.tensors[-1], fold=0)
        assert all(np.array_equal(half[k][0::2], full[k][0::2]) for k in names)
        assert _same(runs.run(trial, switch.tensors[-1]), full, names)
