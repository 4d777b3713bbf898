"""Downstream-only runs and the full-run threshold: when a full run is faster than a checkpoint's
new sessions would pay back (``min_full_run_s``, default
:data:`~workbench.evaluate.downstream.MIN_FULL_RUN_S`), every trial runs the whole graph; above it,
the first trial (timed) runs whole and the rest downstream. The outputs equal full runs either way."""
import numpy as np

import realistic_models as R
from workbench.calib.collect import collect_statistics
from workbench.calib.ranges import compute_ranges
from workbench.evaluate.downstream import DownstreamRuns
from workbench.evaluate.emulate import SCALE, SwitchableModel, merge_batches
from workbench.graph.model import ModelInfo
from workbench.precision.plan import PrecisionPlan


def _trials(kind="detector", n=6):
    spec = R.MODELS[kind]
    info = ModelInfo(spec.build())
    data = R.ArrayData(info, spec.data(n, seed=2))
    ranges = compute_ranges(collect_statistics(info, data, progress=False), "minmax")
    switch = SwitchableModel(info)
    flags = switch.flags(PrecisionPlan.default(info), ranges)
    batches = merge_batches(list(data.iter_batches(4)), 64)
    names = [o.name for o in info.outputs]
    probe = DownstreamRuns(switch, batches, names, min_full_run_s=0)
    tensor = [t for t in switch.tensors if probe.checkpoint(t) is not None][-1]  # served by a checkpoint
    trials = []
    for f in (0.5, 0.8, 1.3):
        s = flags[SCALE].copy()
        s[switch.tensor_index[tensor]] *= f
        trials.append({**flags, SCALE: s})
    return switch, batches, names, tensor, trials


def _same_as_full(switch, batches, names, trials, got):
    for trial, out in zip(trials, got):
        full = switch.run(batches, trial, names)
        assert all(np.array_equal(out[n], full[n]) for n in names)


def _walk(runs, flags, tensor, trials):
    first = runs.run(flags)  # the first run is a full run, timed
    runs.settle(flags)
    return first, [runs.run(t, tensor) for t in trials]


def test_a_fast_full_run_means_every_trial_runs_in_full():
    switch, batches, names, tensor, trials = _trials()
    runs = DownstreamRuns(switch, batches, names, min_full_run_s=60.0)  # no full run is that slow
    _, got = _walk(runs, trials[1], tensor, trials)
    assert runs.full_run_s is not None and runs.full_run_s < 60.0
    assert runs.full_runs == 4 and runs.partial_runs == 0 and runs.cuts == []
    assert list(runs._sessions) == [None]  # one session: the whole graph
    _same_as_full(switch, batches, names, trials, got)


def test_above_the_threshold_trials_run_downstream():
    switch, batches, names, tensor, trials = _trials()
    runs = DownstreamRuns(switch, batches, names, min_full_run_s=1e-9)  # every full run is "slow"
    _, got = _walk(runs, trials[1], tensor, trials)
    assert runs.full_runs == 1 and runs.partial_runs == 3
    _same_as_full(switch, batches, names, trials, got)
