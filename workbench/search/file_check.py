"""A search's claim is about the file it writes.

Searches choose on the switchable emulation (fast, one session for every plan), then the
plan they return is judged here on the TensorRT Q/DQ model the exporter writes for it (the
"trt" variant, built in memory exactly as :func:`workbench.export.export_result` writes it),
run with exact ONNX semantics on every evaluation sample.

Samples the search did not choose on (:func:`selection_split`): with enough evaluation samples,
every third one is kept out of the choice (sensitivity, sweep, refinement), so the figure on
them says whether the choice carries over; they still take part in the final check on the file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..evaluate.metrics import Target, compare_outputs

#: Fewest samples kept out of the choice for their figure to be reported (else all are used).
MIN_UNSEEN = 8
#: Every this-many-th sample is kept out of the choice.
UNSEEN_EVERY = 3


def selection_split(n: int) -> tuple | None:
    """(indices chosen on, indices not chosen on) of ``n`` evaluation samples, or None when too
    few would be kept out (fewer than :data:`MIN_UNSEEN`): then the search uses them all."""
    unseen = np.arange(UNSEEN_EVERY - 1, n, UNSEEN_EVERY)
    if len(unseen) < MIN_UNSEEN:
        return None
    return np.setdiff1d(np.arange(n), unseen), unseen


class SampleSubset:
    """The rows ``indices`` of an Evaluator's samples, as the Evaluator-like object a
    :class:`~workbench.search.scoring.PlanScorer` reads (model, batches, reference, output_names,
    metric_fn, num_samples, user_metric)."""

    def __init__(self, evaluator, indices, description: str = ""):
        self.evaluator = evaluator
        self.model = evaluator.model
        self.output_names = evaluator.output_names
        self.metric_fn = evaluator.metric_fn
        self.indices = np.asarray(indices, dtype=np.int64)
        self.num_samples = len(self.indices)
        self.description = description or f"{self.num_samples} of {evaluator.num_samples} evaluation samples"
        keep = set(self.indices.tolist())
        self.batches, start = [], 0
        for feed in evaluator.batches:
            n = len(next(iter(feed.values())))
            rows = [r for r in range(n) if start + r in keep]
            if rows:
                self.batches.append({k: v[rows] for k, v in feed.items()})
            start += n
        self.reference = {k: np.asarray(v)[self.indices] for k, v in evaluator.reference.items()}

    def user_metric(self, outputs: dict, num_samples: int | None = None) -> float:
        return subset_metric(self.evaluator, outputs, self.indices[:num_samples])


def subset_metric(evaluator, outputs: dict, indices) -> float:
    """The evaluator's user metric on the samples ``indices`` (outputs given for those samples);
    NaN when its labels cannot be indexed by sample."""
    labels = evaluator.labels
    if labels is not None:
        try:
            labels = np.asarray(labels)[np.asarray(indices)]
        except Exception:
            return math.nan
    try:
        return float(evaluator.metric_fn(outputs, labels))
    except Exception:
        return math.nan


@dataclass
class FileCheck:
    """A plan judged on its written TensorRT file (exact ONNX semantics).

    Attributes:
        summary: metrics of the first output on every evaluation sample (plus ``metric``).
        met: whether ``target`` holds there.
        samples: how many samples.
        unseen: the same metrics on the samples the search did not choose on (None: it chose
            on all of them); ``unseen_samples`` their count.
        near_ties: samples whose top-1 margin in the file is below the emulation's noise.
        emulation_gap: the largest per-sample difference between the emulation and the file,
            relative to the sample's largest |output| (None when not compared).
    """

    target: Target
    summary: dict
    met: bool
    samples: int
    unseen: dict | None = None
    unseen_samples: int = 0
    near_ties: int = 0
    emulation_gap: float | None = None
    semantics: str = ""
    notes: list = field(default_factory=list)

    def figure(self, row: dict | None = None) -> str:
        row = self.summary if row is None else row
        key = self.target.key
        value = row.get(key, math.nan)
        text = f"{key} {value:.4f}"
        if key != "sqnr_db" and "sqnr_db" in row:
            text += f", SQNR {row['sqnr_db']:.2f} dB"
        return text

    def describe(self) -> str:
        """Plain sentences: what the written file scores, where, and whether the target holds."""
        head = (f"Written TensorRT file: {self.figure()} on all {self.samples} evaluation samples "
                f"({self.semantics}): target {self.target.text} {'met' if self.met else 'NOT met'}.")
        if self.unseen is not None:
            head += (f" On the {self.unseen_samples} samples the search did not choose on: "
                     f"{self.figure(self.unseen)}.")
        if self.near_ties:
            head += (f" {self.near_ties} sample(s) are near-ties (top-1 margin below the emulation's "
                     f"noise): ask 'top1_margin' instead of 'top1' to count them as misses.")
        return head


def check_file(evaluator, ranges, plan, target, split=None, emulated: dict | None = None) -> FileCheck:
    """Build the TensorRT file of ``plan`` (in memory, as it is written) and judge it on every
    evaluation sample of ``evaluator`` with exact ONNX semantics.

    Args:
        target: a Target or its text.
        split: (chosen, unseen) sample indices from :func:`selection_split`, for the figure on
            the unseen samples; None when the search chose on all of them.
        emulated: the emulation's outputs for the same plan and samples (first output), to
            report how far the file is from them.
    """
    from ..export import build_quantized
    from ..graph.semantics import EXACT, describe

    target = target if isinstance(target, Target) else Target(target)
    proto = build_quantized(evaluator.model, ranges, plan, variant="trt")
    outputs = evaluator.run(proto, optimization=EXACT)
    return judge_outputs(evaluator, outputs, target, split, emulated, describe(EXACT))


def judge_outputs(evaluator, outputs: dict, target: Target, split=None, emulated=None,
                  semantics: str = "") -> FileCheck:
    """The :class:`FileCheck` of a file's ``outputs`` (every evaluation sample)."""
    name = evaluator.output_names[0]
    ref, got = np.asarray(evaluator.reference[name]), np.asarray(outputs[name])
    summary = compare_outputs(ref, got)
    if evaluator.metric_fn is not None:
        summary["metric"] = evaluator.user_metric(outputs)
    unseen, n_unseen = None, 0
    if split is not None:
        idx = split[1]
        unseen = compare_outputs(ref[idx], got[idx])
        if evaluator.metric_fn is not None:
            unseen["metric"] = subset_metric(evaluator, {k: np.asarray(v)[idx] for k, v in outputs.items()}, idx)
        n_unseen = len(idx)
    gap = None
    if emulated is not None and np.shape(emulated) == got.shape and len(got):
        scale = np.abs(got.astype(np.float64)).reshape(len(got), -1).max(axis=1)
        diff = np.abs(np.asarray(emulated, np.float64) - got).reshape(len(got), -1).max(axis=1)
        gap = float(np.max(diff / np.where(scale > 0, scale, 1.0)))
    return FileCheck(target, summary, bool(target.met(summary)), len(got), unseen, n_unseen,
                     int(summary.get("near_ties", 0)), gap, semantics)


__all__ = ["FileCheck", "MIN_UNSEEN", "SampleSubset", "check_file", "judge_outputs", "selection_split",
           "subset_metric"]
