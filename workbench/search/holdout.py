"""The samples an output-aware search is judged on.

``auto`` ranges (:mod:`workbench.search.autorange`) compare candidate amax values by the network's
output. Two things matter for that to generalise:

* held-out samples: the evaluation data when the user gives it, else calibration samples kept
  out of the histograms (:func:`split_holdout`);
* the samples holding each tensor's extremes. A threshold below a tensor's calibration max
  clips values that may be rare (a detector's text pixels, a transformer's special tokens); a
  held-out set without them only sees the resolution gained, never the values lost.
  :func:`extreme_samples` finds the samples where each searched tensor peaks and
  :class:`SearchSet` adds them to the held-out samples, so a clipping choice is judged on the
  values it clips. The result says which samples were used. The calibration pass records the
  peaks (``Statistics.peaks``); given them, only those samples' feeds are read from the data.
  Without them, one extra FP32 pass over the calibration data finds them.
"""
from __future__ import annotations

import hashlib

import numpy as np

from ..data import CalibrationData
from ..errors import WorkbenchError
from ..evaluate.evaluator import first_samples
from ..evaluate.rows import concat_rows
from ..graph.feeds import per_sample_rows

#: Held-out share of the calibration data when no evaluation data is given, and its bounds.
HOLDOUT_SHARE = 0.25
HOLDOUT_MIN, HOLDOUT_MAX = 4, 32
#: Below this many calibration samples nothing is held out (the search then uses them all, said so).
SPLIT_MIN = 16
#: The most calibration samples added for their extremes.
MAX_EXTREME_SAMPLES = 8


class SampleSlice(CalibrationData):
    """Samples ``start`` .. ``stop - 1`` of another data source (in its order)."""

    def __init__(self, data: CalibrationData, start: int, stop: int):
        super().__init__(data.model)
        self.data, self.start, self.stop = data, int(start), int(stop)
        self.kind = f"{data.describe()}, samples {start + 1}-{stop}"

    def __len__(self) -> int:
        return self.stop - self.start

    def _iter_samples(self):
        i = 0
        for feed in self.data.iter_batches(8):
            n = len(next(iter(feed.values())))
            for r in range(n):
                if self.start <= i < self.stop:
                    yield f"sample {i + 1}", {k: v[r] for k, v in feed.items()}
                i += 1
            if i >= self.stop:
                return

    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.data.fingerprint()}:{self.start}:{self.stop}".encode()).hexdigest()[:16]

    def describe(self) -> str:
        return self.kind


def split_holdout(data: CalibrationData, share: float = HOLDOUT_SHARE) -> tuple:
    """(histogram part, held-out part) of ``data``: the last ``share`` of its samples (at least
    4, at most 32) are held out for the search. With fewer than :data:`SPLIT_MIN` samples
    nothing is held out: both parts are ``data`` (``held_out_from_histograms`` tells)."""
    n = data.num_samples()
    if n is None:
        n = sum(len(next(iter(f.values()))) for f in data.iter_batches(8))
    if n < SPLIT_MIN:
        return data, data
    k = int(min(HOLDOUT_MAX, max(HOLDOUT_MIN, round(share * n))))
    return SampleSlice(data, 0, n - k), SampleSlice(data, n - k, n)


def held_out_from_histograms(histogram_part, held_part) -> bool:
    """Whether :func:`split_holdout` really held samples out (False for small data sets)."""
    return histogram_part is not held_part


def extreme_samples(model, data: CalibrationData, tensors: list, most: int = MAX_EXTREME_SAMPLES,
                    batch_size: int = 8, peaks: dict | None = None) -> list:
    """Single-sample feeds of ``data`` where the ``tensors`` reach their largest |x|, at most
    ``most`` of them: the samples peaking the most tensors first (ties: the earlier sample),
    returned in data order.

    Args:
        peaks: ``Statistics.peaks`` of statistics collected on ``data`` (tensor -> (max |x|,
            sample index)). When it holds every one of ``tensors``, the samples are chosen from
            it and only their feeds are read from ``data`` (no model run); otherwise (older
            statistics, a tensor without a batch axis) one FP32 pass over ``data`` finds them.
    """
    if peaks is not None and all(t in peaks for t in tensors):
        return _feeds_at(data, _most_voted([peaks[t][1] for t in dict.fromkeys(tensors)], most), batch_size)
    from ..backends.ort import OrtRunner

    inputs = {s.name for s in model.inputs}
    fetch = [t for t in tensors if t not in inputs]
    runner = OrtRunner(model.model, output_names=fetch or None).activate() if fetch else None
    best: dict = {}   # tensor -> (absmax, sample index)
    kept: dict = {}   # sample index -> feed
    i = 0
    try:
        for feed in data.iter_batches(batch_size):
            n = len(next(iter(feed.values())))
            values = dict(runner.infer(feed)) if runner is not None else {}
            values.update({t: feed[t] for t in tensors if t in inputs})
            for t in tensors:
                rows = per_sample_rows(values[t], n)
                if rows is None:  # no batch axis (a shape or constant-like tensor): no sample peaks it
                    continue
                v = np.abs(rows.astype(np.float32))
                v[~np.isfinite(v)] = 0
                peak = v.max(axis=1) if v.size else np.zeros(n)
                r = int(np.argmax(peak))
                if t not in best or peak[r] > best[t][0]:
                    best[t] = (float(peak[r]), i + r)
                    if i + r not in kept:
                        kept[i + r] = {k: a[r:r + 1].copy() for k, a in feed.items()}
            live = {idx for _, idx in best.values()}
            kept = {idx: f for idx, f in kept.items() if idx in live}
            i += n
    finally:
        if runner is not None:
            runner.close()
    return [kept[idx] for idx in _most_voted([idx for _, idx in best.values()], most)]


def _most_voted(indices: list, most: int) -> list:
    """The (at most ``most``) sample indices named most often in ``indices`` (one vote per
    tensor peaking there; ties: the earlier sample), in increasing order."""
    votes: dict = {}
    for idx in indices:
        votes[idx] = votes.get(idx, 0) + 1
    return sorted(sorted(votes, key=lambda idx: (-votes[idx], idx))[:most])


def _feeds_at(data: CalibrationData, indices: list, batch_size: int) -> list:
    """Single-sample feeds of ``data`` at the increasing sample ``indices``, read without
    running the model (stops after the last one)."""
    wanted, found, i = set(indices), {}, 0
    if not wanted:
        return []
    for feed in data.iter_batches(batch_size):
        n = len(next(iter(feed.values())))
        for idx in sorted(wanted.intersection(range(i, i + n))):
            found[idx] = {k: a[idx - i:idx - i + 1].copy() for k, a in feed.items()}
        i += n
        if len(found) == len(wanted):
            break
    missing = sorted(wanted.difference(found))
    if missing:
        raise WorkbenchError(
            f"The recorded peaks name calibration sample {missing[0] + 1}, but {data.describe()} has only "
            f"{i} samples: the statistics were collected on other data; recollect them on this data."
        )
    return [found[idx] for idx in indices]


class SearchSet:
    """An Evaluator-like set of samples for a search: the evaluator's held-out samples plus
    ``extra`` single-sample feeds (the FP32 reference is computed for those here). A user
    metric sees the evaluator's samples only (its labels belong to them).

    Attributes read by :class:`~workbench.search.scoring.PlanScorer`: model, batches, reference,
    output_names, metric_fn, num_samples, user_metric.
    """

    def __init__(self, evaluator, extra: list = (), description: str = "held-out samples",
                 samples: int | None = None):
        from ..backends.lanes import ort_lanes
        from ..evaluate.emulate import merge_batches
        from ..graph.semantics import EXACT

        self.evaluator = evaluator
        self.model = evaluator.model
        self.output_names = evaluator.output_names
        self.metric_fn = evaluator.metric_fn
        self.batches, self.held_out = first_samples(evaluator.batches, samples)
        self.extra = len(extra)
        self.reference = {k: np.asarray(v)[:self.held_out] for k, v in evaluator.reference.items()}
        if extra:
            merged = merge_batches(list(extra))
            # one-thread sessions over parts of the rows (no pool left spinning beside the search's runs)
            lanes = ort_lanes(self.model.model, optimization=EXACT, spinning=False)
            outs = [dict(zip(self.output_names, lanes.run(self.output_names, f))) for f in merged]
            self.batches += merged
            for name in self.output_names:
                self.reference[name] = concat_rows([self.reference[name]] + [o[name] for o in outs])
        self.num_samples = self.held_out + self.extra
        self.description = description + (f" + {self.extra} calibration samples holding the tensors' extremes"
                                           if self.extra else "")

    def user_metric(self, outputs: dict, num_samples: int | None = None) -> float:
        n = min(self.held_out, num_samples if num_samples is not None else self.held_out)
        return self.evaluator.user_metric({k: np.asarray(v)[:n] for k, v in outputs.items()}, n)


__all__ = ["HOLDOUT_SHARE", "MAX_EXTREME_SAMPLES", "SPLIT_MIN", "SampleSlice", "SearchSet", "extreme_samples",
           "held_out_from_histograms", "split_holdout"]
