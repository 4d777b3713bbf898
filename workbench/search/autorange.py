"""``auto`` ranges: per tensor, the amax that gives the best network output on held-out data.

No single range method suits every model (DESIGN.md): percentile and mse clip a detector's
rare large activations, which are its signal; published entropy collapses on ReLU6 tensors;
min-max wastes resolution where a few irrelevant outliers sit. ``auto`` lets the output decide,
tensor by tensor:

1. Candidates per INT8 input tensor (:func:`candidates`): the amax of every histogram method of
   the registry, the percentiles :data:`AUTO_PERCENTILES` (99.9, 99.99, 99.999) and min-max
   scaled by :data:`MINMAX_STEPS` (1/sqrt 2, 1/2, 1/(2 sqrt 2), 1/4); candidates within 1 % of
   each other count once (the first in that order keeps its name).
2. Every histogram method applied to all tensors is scored as a whole (one run each); the
   search starts from the best of them.
3. Coordinate descent in graph order: for each tensor, the candidates next to the current
   choice (sorted by amax) are tried with the rest as chosen so far (one emulated run each,
   :class:`~workbench.search.scoring.PlanScorer`); the search walks on in the direction that improves
   and keeps a change only when it beats the current choice by ``min_gain_db`` on the whole
   and on each of two interleaved halves of the samples (changes that fit a few samples are
   not kept); on a tie the candidate clipping less wins. ``exhaustive=True`` tries every
   candidate; ``sweeps`` passes.

Only tensors whose scale the plan's graph reads are searched: a residual input the exporter
leaves float for these INT8 states changes nothing in the file. In process, the runs use the
emulation of this one plan (:class:`~workbench.evaluate.fixed_plan.FixedPlanModel`: no switches)
and compute only the graph after the changed tensor's first reader
(:class:`~workbench.evaluate.downstream.DownstreamRuns`), bit for bit a full run's outputs; a
candidate that clips more than the current choice is run on the first half of the samples first
and dropped when it does not gain there (the rule above would reject it; its record then has no
score, only ``first_fold_sqnr_db``).

The objective is output SQNR (first output) by default, or the user's metric, or a target's
metric (:class:`~workbench.search.scoring.Objective`), measured on held-out samples: the evaluation
data when given, else calibration samples kept out of the histograms (:mod:`workbench.search.holdout`);
the result says which. Progress is reported as ``progress(done, total)``; ``cancel`` stops the
search between runs and keeps the choices made so far.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

from ..calib import registry
from ..errors import WorkbenchError
from ..calib.ranges import Ranges, compute_ranges
from .candidates import (AUTO_PERCENTILES, MINMAX_STEPS, SAME_AMAX, candidate_record, candidates, cut_row,
                         half_row, label_of, row_score)
from .holdout import SearchSet, extreme_samples
from ..evaluate.emulate import SCALE, needs_all_fp16
from ..evaluate.downstream import DownstreamRuns
from ..evaluate.fixed_plan import FixedPlanModel
from .executor import InProcess
from .scoring import Objective, PlanScorer, cancelled, switchable_model

#: Gain (dB of the objective's SQNR) a candidate needs over the current choice to replace it.
MIN_GAIN_DB = 0.05
#: A candidate clipping less than the current choice replaces it when it scores within this.
TIE_DB = 0.02


class NothingToChoose(WorkbenchError):
    """No INT8 node of the plan reads a calibrated tensor: ``auto`` has no threshold to choose."""


@dataclass
class AutoRangeResult:
    """The outcome of :func:`auto_ranges`.

    Attributes:
        ranges: the chosen ranges (``method`` "auto"; per tensor ``chosen``, ``reason``,
            ``candidates`` with their scores; ``search`` holds the summary below).
        method_scores: histogram method -> its score row with every tensor at that method.
        start_method: the best of them, where the search started.
        final: the score row of the chosen ranges.
        changed: tensors whose amax differs from the base method's.
        evaluations: emulated runs; seconds: wall time; run_seconds: time inside the runs.
        cancelled: True when the search was stopped (the ranges hold the choices so far).
        held_out: what the samples were.
    """

    ranges: Ranges
    objective: Objective
    method_scores: dict
    start_method: str
    final: dict
    base_method: str
    changed: list
    searched: list
    evaluations: int = 0
    seconds: float = 0.0
    run_seconds: float = 0.0
    cancelled: bool = False
    held_out: str = ""
    samples: int = 0
    notes: list = field(default_factory=list)

    def summary(self) -> str:
        """One line: e.g. "37 of 60 tensors changed from mse; output SQNR 3.8 -> 13.2 dB"."""
        base = self.method_scores.get(self.base_method)
        o = self.objective
        head = f"{len(self.changed)} of {len(self.searched)} tensors changed from {self.base_method}"
        if base is not None:
            head += f"; {o.label} {o.describe(base)} -> {o.describe(self.final)}"
        if self.start_method != self.base_method:
            head += f" (best single method: {self.start_method}, {o.describe(self.method_scores[self.start_method])})"
        head += f"; {self.evaluations} runs in {self.seconds:.1f} s on {self.held_out}"
        return head + (" [cancelled: partial result]" if self.cancelled else "")


def _score_row(row: dict) -> dict:
    return {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in row.items()}


def auto_ranges(evaluator, stats, plan=None, *, params: dict | None = None, objective="sqnr",
                base: str = registry.BASE_METHOD, samples: int | None = None, sweeps: int = 1,
                min_gain_db: float = MIN_GAIN_DB, held_out: str = "evaluation samples",
                calibration_data=None, folds: int = 2, exhaustive: bool = False, progress=None,
                cancel=None, executor=None) -> AutoRangeResult:
    """Choose every INT8 input tensor's amax by the network's output (see the module docstring).

    Args:
        evaluator: an :class:`~workbench.evaluate.Evaluator` over the held-out samples.
        stats: the calibration :class:`~workbench.calib.stats.Statistics` (histograms).
        plan: the precision plan whose INT8 inputs are searched (default: the default plan).
        params: range-method parameters (registry names).
        objective: "sqnr", "metric", a target text ("top1>=0.99") or an Objective.
        base: the histogram method the summary compares with (``mse``).
        samples: use the first N held-out samples (None: all).
        sweeps: passes of coordinate descent (1; a second rarely changes much).
        min_gain_db: the objective gain a candidate needs to replace the current choice.
        held_out: what the evaluator's samples are, for the record.
        folds: interleaved subsets of the samples a change must improve on each of (2).
        exhaustive: try every candidate of every tensor (default: the neighbours of the current
            choice along amax, walking on while the objective improves; about a third of the runs).
        calibration_data: the data the histograms came from; when given, the samples where the
            searched tensors peak are added to the held-out ones (:mod:`workbench.search.holdout`), so
            a clipping candidate is judged on the values it clips (recommended).
        progress: ``progress(done, total)`` after each run.
        cancel: a threading.Event or callable; stops between runs, keeping the partial result.
        executor: where independent runs go (:mod:`workbench.search.executor`): the methods'
            scores, a tensor's two neighbouring candidates.
    """
    from ..precision.plan import PrecisionPlan

    started = time.perf_counter()
    objective = objective if isinstance(objective, Objective) else Objective(objective)
    model = evaluator.model
    plan = plan if plan is not None else PrecisionPlan.default(model)
    per_method = compute_ranges(stats, base, params=params)
    sm = switchable_model(model, bool(needs_all_fp16(plan, model.facts.targets)))
    plan_flags = sm.flags(plan, per_method)
    fixed = FixedPlanModel(sm, plan_flags)  # this plan's emulation: only the Q/DQ the exporter places
    overrides = dict(plan.amax_overrides)  # manual thresholds stay as the user set them
    inputs = [t for t in sm.int8_inputs(plan_flags["wb_int8"]) if t in per_method and t not in overrides]
    read = fixed.tensors_read()  # a residual input the exporter leaves float is not searched
    used = [t for t in inputs if t in read]
    if not used:
        raise NothingToChoose("The plan has no INT8 node reading a calibrated tensor: nothing for 'auto' to choose.")
    # the samples holding each tensor's peak: recorded while collecting when the statistics are
    # of this data (no extra pass), else found by one FP32 pass over it
    peaks = stats.peaks if calibration_data is not None and getattr(stats, "peaks", None) \
        and stats.data_fingerprint == calibration_data.fingerprint() else None
    # (where the INT8 nodes' inputs peak, those left float included: the residual stream's extremes)
    extra = extreme_samples(model, calibration_data, inputs, peaks=peaks) if calibration_data is not None else []
    samples_set = SearchSet(evaluator, extra, held_out, samples)
    held_out = f"{samples_set.held_out} {samples_set.description}"
    scorer = PlanScorer(samples_set, per_method, None, plan, folds=folds, executor=executor, fold_rows=False)
    flags = scorer.flags(plan)
    # in process: the emulation of this plan (no switches) and only the graph after a changed
    # tensor's first reader runs (bit-equal to full runs of the switchable model)
    fast = DownstreamRuns(fixed, scorer.batches, scorer.names, folds=scorer.folds) \
        if isinstance(scorer.executor, InProcess) else None
    # a candidate clipping more than the current choice that does not gain on the first fold is
    # rejected by the fold rule whatever the rest says: in process only that fold runs; on an
    # executor the full row is cut to the same record (the result is the same wherever it ran)
    race = scorer.folds > 1 and objective.key == "sqnr_db" and not exhaustive
    cands = {t: candidates(stats.collectors[t], per_method[t].amax_by_method, base) for t in used}
    search = [t for t in used if len(cands[t]) > 1]
    methods = list(registry.histogram_methods())
    done = 0
    stop = False
    # runs still expected (the neighbour walk's length is known only as it goes)
    remaining = [sweeps * sum(len(cands[t]) - 1 if exhaustive else min(2, len(cands[t]) - 1) for t in search)]

    def run_many(amaxes: list, tensor: str | None = None, base_row: dict | None = None) -> list:
        """Score independent amax sets in one batch (the executor may run them in parallel);
        sets that differ from the current choice in ``tensor`` only run downstream of it. With
        ``base_row`` (the current choice's), a set that clips ``tensor`` more is first run on the
        first fold only and dropped when it does not gain there: the fold rule would reject it
        anyway (:meth:`Objective.better`); its row is then :func:`half_row`."""
        nonlocal done
        trials = [config(amax) for amax in amaxes]

        def one_done(i, row):
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, done + max(remaining[0] - 1, 0) + max(len(methods) - done, 0))
            remaining[0] = max(remaining[0] - (1 if done > len(methods) else 0), 0)

        if fast is not None:
            rows = []
            for i, (amax, trial) in enumerate(zip(amaxes, trials)):
                started_runs = time.perf_counter()
                row = None
                if races(amax, tensor, base_row) and fast.splits:
                    half = scorer.fold_sqnr(fast.run(trial, tensor, fold=0), 0)
                    if not half > base_row["fold_sqnr_db"][0]:
                        row = half_row(half)
                if row is None:
                    row = cut_row(scorer.row(fast.run(trial, tensor)), races(amax, tensor, base_row), base_row)
                scorer.run_seconds += time.perf_counter() - started_runs
                scorer.calls += 1
                rows.append(row)
                one_done(i, row)
            return [_score_row(r) for r in rows]
        rows = scorer.score_many(trials, one_done)
        return [_score_row(cut_row(row, races(amax, tensor, base_row), base_row)) for amax, row in zip(amaxes, rows)]

    def config(amax: dict) -> dict:  # the emulation's inputs for these amax (the rest: base ranges)
        return {**flags, SCALE: sm.scales(_AmaxView(amax, per_method), overrides)}

    def races(amax: dict, tensor, base_row) -> bool:  # a method (tensor None), or a candidate clipping more
        return race and base_row is not None and (tensor is None or amax[tensor] < current[tensor])

    method_scores = {}
    if cancelled(cancel):
        stop = True
    else:
        # min-max and the base method in full; another method can only be the start by beating
        # min-max on each fold (_start_method): it is raced against min-max on the first fold
        first = [m for m in methods if m in ("minmax", base)]
        rest = [m for m in methods if m not in first]
        rows = dict(zip(first, run_many([{t: per_method[t].amax_by_method[m] for t in used} for m in first])))
        rows.update(zip(rest, run_many([{t: per_method[t].amax_by_method[m] for t in used} for m in rest],
                                       None, rows.get("minmax"))))
        method_scores = {m: rows[m] for m in methods}
    if not method_scores:
        start = base
        current = {t: per_method[t].amax_by_method[base] for t in used}
        best_row = None
    else:
        start = _start_method(method_scores, objective, min_gain_db)
        current = {t: per_method[t].amax_by_method[start] for t in used}
        best_row = method_scores[start]
        if fast is not None:
            fast.settle(config(current))
    chosen = {t: label_of(cands[t], current[t], start) for t in used}
    for t in used:  # a merged label ("mse=percentile@99.99") stands for the start method's own amax
        cands[t][chosen[t]] = current[t]
    reasons = {t: f"best single method ({start})" for t in used}
    scores = {t: {} for t in used}
    for sweep in range(sweeps if not stop else 0):
        improved = False
        for k, t in enumerate(search):
            remaining[0] = (len(search) - k) * (2 if exhaustive is False else 1) + (sweeps - sweep - 1) * len(search)
            tried = {chosen[t]: best_row}
            order = sorted(cands[t], key=cands[t].get)

            def score(label):
                score_all([label])
                return tried[label]

            def score_all(labels):
                todo = [k for k in labels if k not in tried]
                if todo:
                    if cancelled(cancel):
                        raise _Stop
                    tried.update(zip(todo, run_many([{**current, t: cands[t][k]} for k in todo], t, best_row)))

            try:
                if exhaustive:
                    score_all(order)
                    best = max(tried, key=lambda k: objective.key_of(tried[k]))
                else:  # neighbours along amax; walk on while the objective improves
                    i = order.index(chosen[t])
                    best, step = chosen[t], 0
                    score_all([order[j] for j in (i + 1, i - 1) if 0 <= j < len(order)])  # one batch
                    for j in (i + 1, i - 1):
                        if 0 <= j < len(order) and objective.better(score(order[j]), tried[best], min_gain_db):
                            best, step = order[j], j - i
                    while step and 0 <= order.index(best) + step < len(order):
                        nxt = order[order.index(best) + step]
                        if not objective.better(score(nxt), tried[best], min_gain_db):
                            break
                        best = nxt
            except _Stop:
                stop = True
                best = max(tried, key=lambda k: objective.key_of(tried[k]))
            scores[t].update(tried)
            if best == chosen[t] or not objective.better(tried[best], best_row, min_gain_db):
                # no clear gain: a candidate that clips less and scores as well is the safer choice
                # (unseen data may exceed what these samples show; clipping is what fails)
                safer = [k for k in tried if cands[t][k] > current[t] * (1 + SAME_AMAX)
                         and objective.as_good(tried[k], best_row, TIE_DB)]
                best = max(safer, key=lambda k: cands[t][k]) if safer else chosen[t]
            if best != chosen[t]:
                reasons[t] = (f"{best}: {objective.label} {objective.describe(best_row)} -> "
                              f"{objective.describe(tried[best])} (instead of {chosen[t]})")
                current[t], chosen[t], best_row = cands[t][best], best, tried[best]
                improved = True
                if fast is not None:
                    fast.settle(config(current))
            elif len(tried) > 1:
                reasons[t] = f"kept {chosen[t]}: best of {len(tried)} candidates tried"
            if stop:
                break
        if stop or not improved:
            break
    for t in used:
        if t not in search:
            reasons[t] = "every candidate within 1 % of the others"
    final = best_row if best_row is not None else {"sqnr_db": math.nan}
    ranges = per_method.with_amax(current, method="auto", chosen=chosen, reasons=reasons)
    tensors = dict(ranges.tensors)
    for t, r in tensors.items():
        if t in used:
            tensors[t] = replace(r, clipped_fraction=float(stats.collectors[t].clipped_fraction(current[t])),
                                 candidates={k: candidate_record(a, scores[t].get(k), objective) for k, a in cands[t].items()})
        else:
            why = "manual override in the plan" if t in overrides else "not read with Q/DQ by an INT8 node of the plan"
            tensors[t] = replace(r, chosen=base, reason=why)
    changed = [t for t in used if abs(current[t] - per_method[t].amax_by_method[base]) >
               SAME_AMAX * max(current[t], per_method[t].amax_by_method[base])]
    result = AutoRangeResult(ranges, objective, method_scores, start, final, base, changed, used,
                             scorer.calls, time.perf_counter() - started, scorer.run_seconds, stop,
                             held_out, scorer.num_samples)
    ranges.tensors = tensors
    ranges.search = {
        "objective": objective.label, "held_out": held_out, "samples": scorer.num_samples,
        "base_method": base, "start_method": start, "sweeps": sweeps, "min_gain_db": min_gain_db,
        "method_scores": {m: None if r.get("dropped_on_first_fold") else r.get("sqnr_db") for m, r in method_scores.items()},
        "method_objective": {m: row_score(r, objective) for m, r in method_scores.items()},
        "final": {k: v for k, v in final.items() if isinstance(v, float)},
        "changed": len(changed), "searched": len(used), "evaluations": scorer.calls,
        "seconds": result.seconds, "cancelled": stop,
        "candidates": "every histogram method's amax, percentiles " + ", ".join(f"{p:g}" for p in AUTO_PERCENTILES)
                      + ", min-max x " + ", ".join(f"{f:.3g}" for f in MINMAX_STEPS),
        "summary": result.summary(),
    }
    from .range_checks import check_ranges

    result.ranges, result.notes = check_ranges(ranges, tensors=used)
    return result


def _start_method(method_scores: dict, objective, min_gain_db: float) -> str:
    """Where the search starts: min-max (it clips nothing) unless a method beats it by the rule
    every change obeys (by ``min_gain_db`` on the whole and on each fold); then the best of
    those that do. A method that wins on some held-out samples and loses on others is fitting
    them, and on unseen data the clipping is what fails."""
    safe = "minmax"
    if safe not in method_scores:
        return max(method_scores, key=lambda m: objective.key_of(method_scores[m]))
    beat = [m for m in method_scores if m == safe or objective.better(method_scores[m], method_scores[safe], min_gain_db)]
    return max(beat, key=lambda m: objective.key_of(method_scores[m]))


class _Stop(Exception):
    """Cancel requested between two runs."""


class _AmaxView:
    """``ranges``-like view: ``amax`` (tensor -> value) over ``base`` ranges."""

    def __init__(self, amax: dict, base):
        self.amax, self.base = amax, base

    def __contains__(self, name):
        return name in self.amax or name in self.base

    def __getitem__(self, name):
        if name in self.amax:
            return _Amax(self.amax[name])
        return self.base[name]


@dataclass(frozen=True)
class _Amax:
    amax: float
