"""What a step is judged by: the exported model's outputs on the held-out samples against FP32.

One :class:`Score` per measured state: the output SQNR over all held-out samples (what the table
shows), the SQNR of each interleaved fold of the samples and of each sample (so that a decision
can ask whether a gain holds on every fold and exceeds the spread of the per-sample gains), how
many samples keep FP32's arg-max everywhere on a class-like output (a classifier's [N, C] or a
sequence's [N, T, C] logits: top-1 / exact-line agreement), and the user's metric.

The decision itself is not made here: :func:`workbench.improve.apply_steps` takes it as ``keep``
(the workbench's rule lives in :mod:`workbench.search.improve_steps`); :func:`gain_rule` is the
plain default for direct callers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .runner import sqnr

#: Interleaved folds of the held-out samples a kept step must gain on each of.
FOLDS = 2
#: Cap of a per-output SQNR (dB): an exact output does not outweigh the others.
SQNR_CAP = 200.0


@dataclass
class Score:
    """The exported model on the held-out samples.

    Attributes:
        sqnr: output SQNR in dB (mean over the model outputs, each over all samples).
        metric: the user's metric (higher is better; None without one).
        folds: the SQNR of each interleaved fold (samples k, k + F, k + 2F, ...).
        signal, noise: (outputs, samples) energies of the FP32 outputs and of the errors, per
            output with a batch axis and sample: the SQNR of any subset of the samples (folds,
            the jackknife of :func:`gain_noise`).
        agree: samples whose class-like outputs keep FP32's arg-max at every position (None: no
            class-like output).
    """

    sqnr: float
    metric: float | None = None
    folds: list = field(default_factory=list)
    signal: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    noise: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    agree: int | None = None

    @property
    def num_samples(self) -> int:
        return int(self.signal.shape[1]) if self.signal.ndim == 2 else 0

    def subset_sqnr(self, keep: np.ndarray) -> float:
        """The output SQNR (dB, mean over the outputs with a batch axis) of the samples ``keep``
        (an index or boolean mask)."""
        return float(np.mean([_db(s, n) for s, n in zip(self.signal[:, keep].sum(axis=1),
                                                        self.noise[:, keep].sum(axis=1))]))

    def as_row(self) -> dict:
        """The score as a row of :class:`workbench.search.scoring.Objective` (``sqnr_db``,
        ``fold_sqnr_db``, ``metric``)."""
        row = {"sqnr_db": self.sqnr, "fold_sqnr_db": list(self.folds)}
        if self.metric is not None:
            row["metric"] = self.metric
        return row


def _rows(runs: list, name: str, sizes: list) -> np.ndarray | None:
    """Output ``name`` of every batch stacked sample by sample (None: no batch axis)."""
    parts = []
    for run, n in zip(runs, sizes):
        v = np.asarray(run[name])
        if v.ndim == 0 or v.shape[0] != n:
            return None
        parts.append(v)
    return np.concatenate(parts).astype(np.float64)


def class_like(shape: tuple) -> bool:
    """[N, C] or [N, T, C] with C > 1: class scores (a classifier, a CTC/sequence head)."""
    return len(shape) in (2, 3) and shape[-1] > 1


def _db(signal: float, noise: float) -> float:
    if noise == 0.0:
        return SQNR_CAP
    return min(10.0 * math.log10(signal / noise), SQNR_CAP) if signal > 0 else -SQNR_CAP


def score_outputs(reference: list, runs: list, sizes: list, metric=None, folds: int = FOLDS) -> Score:
    """The :class:`Score` of ``runs`` (per held-out batch, output name -> array) against
    ``reference`` (the FP32 outputs of the same batches); ``sizes``: samples per batch;
    ``metric(reference, runs)``: the user's metric or None; ``folds``: interleaved folds."""
    total = int(sum(sizes))
    per_output, signal, noise, agree = [], [], [], None
    for name in reference[0]:
        r, t = _rows(reference, name, sizes), _rows(runs, name, sizes)
        if r is None or t is None:  # no batch axis: judged as a whole only
            rr = np.concatenate([np.ravel(x[name]) for x in reference])
            tt = np.concatenate([np.ravel(x[name]) for x in runs])
            per_output.append(min(sqnr(rr, tt), SQNR_CAP))
            continue
        per_output.append(min(sqnr(r, t), SQNR_CAP))
        signal.append(np.sum(r.reshape(total, -1) ** 2, axis=1))
        noise.append(np.sum((r - t).reshape(total, -1) ** 2, axis=1))
        if class_like(r.shape):
            same = (np.argmax(r, -1) == np.argmax(t, -1)).reshape(total, -1).all(axis=1)
            agree = (agree if agree is not None else np.ones(total, bool)) & same
    score = Score(float(np.mean(per_output)), float(metric(reference, runs)) if metric is not None else None,
                  signal=np.asarray(signal, np.float64).reshape(len(signal), total),
                  noise=np.asarray(noise, np.float64).reshape(len(noise), total),
                  agree=None if agree is None else int(agree.sum()))
    if signal and folds > 1 and total >= folds:
        idx = np.arange(total)
        score.folds = [score.subset_sqnr(idx % folds == k) for k in range(folds)]
    return score


def gain_noise(before: Score, after: Score) -> float:
    """The noise of comparing two scores of the same samples: the jackknife standard error (dB) of
    the output-SQNR gain (leave one sample out; 0 with fewer than three samples). A gain carried
    by one or two samples, whose errors dominate the sums, has a large one."""
    n = min(before.num_samples, after.num_samples)
    if n < 3:
        return 0.0
    keep = ~np.eye(n, dtype=bool)
    gains = np.array([after.subset_sqnr(keep[i]) - before.subset_sqnr(keep[i]) for i in range(n)])
    return float(math.sqrt((n - 1) / n * np.sum((gains - gains.mean()) ** 2)))


def sample_gains(before: Score, after: Score) -> np.ndarray:
    """Each sample's SQNR gain (dB, mean over the outputs with a batch axis) from ``before`` to ``after``."""
    if not before.num_samples or before.num_samples != after.num_samples:
        return np.zeros(0)

    def per_sample(sc):
        return np.array([[_db(s, n) for s, n in zip(sig, noi)] for sig, noi in zip(sc.signal, sc.noise)])

    return np.mean(per_sample(after) - per_sample(before), axis=0)


def gain_rule(min_gain_db: float = 0.1):
    """The plain decision (for direct callers of :func:`~workbench.improve.apply_steps`): the
    user's metric decides when it differs; else a whole-set SQNR gain of ``min_gain_db``.
    Returns ``keep(before, after) -> (bool, reason)``."""

    def keep(before: Score, after: Score):
        mb, ma = before.metric, after.metric
        if mb is not None and ma is not None and not math.isclose(ma, mb, rel_tol=1e-9, abs_tol=1e-12):
            return ma > mb, "" if ma > mb else "the metric drops"
        ok = after.sqnr >= before.sqnr + min_gain_db
        return ok, "" if ok else "no held-out gain"

    return keep
