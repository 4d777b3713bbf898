"""Downstream-only runs of the switchable emulation equal full runs, bit for bit.

A range search tries several scales of one tensor with everything else fixed; the part of the
graph before the first node reading that scale is computed once (at a checkpoint) and only the
rest runs. These tests walk every tensor of small models of the judged kinds, change earlier
tensors' scales between walks (the cached checkpoint must then be recomputed), and compare
every output with a full run of the same switches.
"""
import numpy as np
import pytest

import realistic_models as R
from workbench.calib.collect import collect_statistics
from workbench.calib.ranges import compute_ranges
from workbench.evaluate.downstream import DownstreamRuns
from workbench.evaluate.emulate import SCALE, SwitchableModel, merge_batches
from workbench.graph.model import ModelInfo
from workbench.precision.plan import PrecisionPlan


def _setup(kind, n=6):
    spec = R.MODELS[kind]
    info = ModelInfo(spec.build())
    data = R.ArrayData(info, spec.data(n, seed=2))
    ranges = compute_ranges(collect_statistics(info, data, progress=False), "minmax")
    switch = SwitchableModel(info)
    plan = PrecisionPlan.default(info)
    flags = switch.flags(plan, ranges)
    batches = merge_batches(list(data.iter_batches(4)), 64)
    return switch, flags, batches, [o.name for o in info.outputs]


@pytest.mark.parametrize("kind", ["detector", "transformer", "recognizer", "classifier"])
def test_every_tensor_every_trial_equals_a_full_run(kind):
    switch, flags, batches, names = _setup(kind)
    runs = DownstreamRuns(switch, batches, names, min_full_run_s=0)  # checkpoints even on small models
    current = dict(flags)
    rng = np.random.default_rng(0)
    for t in switch.tensors:
        i = switch.tensor_index[t]
        trials = []
        for f in (0.5, 0.8, 1.3):
            s = current[SCALE].copy()
            s[i] *= f
            trials.append({**current, SCALE: s})
        got = runs.run_many(t, trials)
        for trial, out in zip(trials, got):
            full = switch.run(batches, trial, names)
            for n in names:
                assert np.array_equal(out[n], full[n]), (kind, t, n)
        # accept one trial as the search does: later tensors see the changed switches
        current = trials[int(rng.integers(0, 3))]
    assert runs.partial_runs > 0  # checkpoints served some tensors (the rest ran in full)


def test_a_changed_earlier_switch_invalidates_the_checkpoint():
    switch, flags, batches, names = _setup("detector")
    runs = DownstreamRuns(switch, batches, names, min_full_run_s=0)  # checkpoints even on small models
    late = [t for t in switch.tensors if runs.checkpoint(t) is not None][-1]
    c = runs.checkpoint(late)
    runs.run_many(late, [flags])
    kept_key = runs._kept[c][0]
    changed = dict(flags)
    changed[SCALE] = flags[SCALE] * 0.7  # every scale, also those read before the checkpoint
    out = runs.run_many(late, [changed])[0]
    assert runs._kept[c][0] != kept_key  # recomputed under the new switches
    full = switch.run(batches, changed, names)
    assert all(np.array_equal(out[n], full[n]) for n in names)


def test_a_checkpoint_over_the_budget_falls_back_to_full_runs():
    switch, flags, batches, names = _setup("detector")
    runs = DownstreamRuns(switch, batches, names, budget_bytes=1024, min_full_run_s=0)
    t = [t for t in switch.tensors if runs.checkpoint(t) is not None][-1]
    out = runs.run_many(t, [flags])[0]
    assert runs.partial_runs == 0 and runs.full_runs == 1
    full = switch.run(batches, flags, names)
    assert all(np.array_equal(out[n], full[n]) for n in names)
