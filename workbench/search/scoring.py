"""Scoring many configurations fast: the switchable emulation model, FP32 reference outputs, and
what "better" means.

Sensitivity, automatic mixed precision, the ``auto`` range search and range sensitivity all
evaluate many configurations (a plan, a set of amax values) on the same held-out samples. A
:class:`PlanScorer` holds one emulation session per model (:func:`switchable_model`), the
samples merged into as few session calls as memory allows, and the FP32 reference, so one
configuration costs one emulated pass and nothing else. An :class:`Objective` turns a score row
into a comparable key: output SQNR by default, the user's metric, or the metric of a target.

Independent configurations (sensitivity rows, a sweep's points, a tensor's candidates) go
through :meth:`PlanScorer.score_many`, which hands them to an executor
(:mod:`workbench.search.executor`: in-process, local worker processes or a dask cluster); the
executor returns raw outputs and the metrics are computed here, so they do not depend on who ran
them.
"""
from __future__ import annotations

import math
import weakref

import numpy as np

from ..evaluate.emulate import SCALE, TENSOR_FLAGS, SwitchableModel, merge_batches, needs_all_fp16
from ..errors import WorkbenchError
from ..evaluate.evaluator import first_samples
from ..evaluate.metrics import Comparer, Target

#: Rows per session call when the samples are merged (bounded to keep activations in memory).
MAX_ROWS_PER_RUN = 64

_MODELS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def switchable_model(model, all_fp16: bool = False, threads: int | None = None) -> SwitchableModel:
    """The emulation model of ``model`` (a ModelInfo), built once per model and kind, then shared
    by every scorer (its ONNX Runtime session too)."""
    per_model = _MODELS.setdefault(model, {})
    key = (bool(all_fp16), threads)
    if key not in per_model:
        per_model[key] = SwitchableModel(model, all_fp16=all_fp16, threads=threads)
    return per_model[key]


def cancelled(cancel) -> bool:
    """Whether ``cancel`` (a threading.Event, a callable or None) asks to stop."""
    if cancel is None:
        return False
    return cancel.is_set() if hasattr(cancel, "is_set") else bool(cancel())


class ObjectiveUndefined(WorkbenchError):
    """The objective is NaN on the samples (e.g. NaN inputs): no candidate can be ranked."""


class Objective:
    """What a search maximises: ``"sqnr"`` (output SQNR in dB, the default), ``"metric"`` (the
    evaluator's user metric), or a :class:`~workbench.evaluate.metrics.Target` (its metric, in its
    direction). Ties on the primary value are broken by output SQNR.

    Args:
        what: "sqnr", "metric", a Target or a target text such as "top1>=0.99".
    """

    def __init__(self, what="sqnr"):
        self.target = None
        if isinstance(what, Target) or (isinstance(what, str) and what not in ("sqnr", "metric")):
            self.target = what if isinstance(what, Target) else Target(what)
            self.key, self.sign = self.target.key, (1.0 if self.target.op in (">", ">=") else -1.0)
        else:
            self.key, self.sign = ("sqnr_db" if what == "sqnr" else "metric"), 1.0
        self.label = {"sqnr_db": "output SQNR", "metric": "user metric"}.get(self.key, self.key)
        if self.target is not None:
            self.label = f"{self.key} (target {self.target.text})"

    def value(self, row: dict) -> float:
        v = row.get(self.key)
        if isinstance(v, float) and math.isnan(v):
            raise ObjectiveUndefined(f"The objective '{self.label}' is not a number on these samples (NaN/Inf "
                                     "in the FP32 or quantized outputs), so candidates cannot be compared.")
        if v is None:
            raise WorkbenchError(f"The objective '{self.label}' needs '{self.key}', which this evaluation "
                                 f"does not give (it has: {', '.join(sorted(row))}).")
        return float(v)

    def key_of(self, row: dict) -> tuple:
        """A tuple that compares greater for better rows."""
        return (self.sign * self.value(row), float(row.get("sqnr_db", -math.inf)))

    def better(self, new: dict, old: dict, min_gain_db: float = 0.0) -> bool:
        """Whether ``new`` beats ``old``: a higher primary value (by ``min_gain_db`` when the
        primary is the SQNR), or an equal primary and an SQNR higher by ``min_gain_db``."""
        (p_new, s_new), (p_old, s_old) = self.key_of(new), self.key_of(old)
        folds = list(zip(new.get("fold_sqnr_db", ()), old.get("fold_sqnr_db", ())))
        if self.key == "sqnr_db":
            # on every fold too: a change that helps some samples and hurts others is fitting them
            return _gain(p_new, p_old) > min_gain_db and all(_gain(a, b) > 0 for a, b in folds)
        if p_new != p_old:
            return p_new > p_old
        return _gain(s_new, s_old) > min_gain_db and all(_gain(a, b) > 0 for a, b in folds)

    def as_good(self, new: dict, old: dict, tolerance_db: float) -> bool:
        """Whether ``new`` is at most ``tolerance_db`` (of SQNR) worse than ``old`` (and not worse
        on a user metric or target metric)."""
        (p_new, s_new), (p_old, s_old) = self.key_of(new), self.key_of(old)
        if self.key == "sqnr_db":
            return _gain(p_new, p_old) >= -tolerance_db
        return p_new >= p_old and _gain(s_new, s_old) >= -tolerance_db

    def describe(self, row: dict) -> str:
        if self.key == "sqnr_db":
            return f"{row['sqnr_db']:.2f} dB"
        return f"{self.key} {self.value(row):.4g}, {row.get('sqnr_db', math.nan):.2f} dB"


def _gain(new: float, old: float) -> float:
    if new == old:
        return 0.0
    if math.isinf(new) or math.isinf(old):
        return math.inf if new > old else -math.inf
    return new - old


class PlanScorer:
    """Scores plans quickly: switchable emulation model + cached FP32 reference outputs.

    Args:
        evaluator: the Evaluator with the evaluation batches and FP32 reference.
        ranges: calibrated ranges (tensor -> object with ``.amax``).
        samples: use the first N evaluation samples (None: all).
        plan: a plan the scorer will see (an FP16-base plan needs FP16 switches on every node).
        threads: the cores the emulation's runs use (None: all; :mod:`workbench.backends.lanes`).
        folds: also report the output SQNR of this many interleaved subsets of the samples
            (``fold_sqnr_db``) and their metric rows (``fold_rows``), for searches that must not
            fit a few samples (``fold_rows=False``: only their SQNR, all a range search compares).
        executor: where :meth:`score_many` runs (:mod:`workbench.search.executor`; default here).
    """

    def __init__(self, evaluator, ranges, samples: int | None = None, plan=None, threads: int | None = None,
                 folds: int = 1, executor=None, fold_rows: bool = True):
        from .executor import InProcess

        self.evaluator = evaluator
        self.executor = executor if executor is not None else InProcess()
        self._bound = None
        self.folds = max(1, int(folds))
        self.fold_rows = fold_rows
        self.ranges = ranges
        targets = set(evaluator.model.facts.targets)
        all_fp16 = plan is not None and bool(needs_all_fp16(plan, targets))
        self.switch = switchable_model(evaluator.model, all_fp16, threads)
        batches, n = first_samples(evaluator.batches, samples)
        self.batches = merge_batches(batches, MAX_ROWS_PER_RUN)
        self.num_samples = n
        self.output = evaluator.output_names[0]
        self.reference = evaluator.reference[self.output][:n]
        # the reference, then each fold's rows, prepared once for every configuration's metrics
        folds = range(self.folds) if self.folds > 1 else ()
        self._compare = [Comparer(self.reference)] + [Comparer(self.reference[k::self.folds]) for k in folds]
        self.names = evaluator.output_names if evaluator.metric_fn is not None else [self.output]
        self.calls = 0
        self.run_seconds = 0.0

    def flags(self, plan, amax: dict | None = None, tensors_off=()) -> dict:
        """The emulation inputs for ``plan`` with the scorer's ranges, ``amax`` overrides
        (tensor -> amax) and ``tensors_off`` (tensors left unquantized)."""
        return self.switch.flags(plan, self.ranges, amax, tensors_off)

    def score_flags(self, flags: dict) -> dict:
        """Metrics of the first output for prepared emulation inputs (see :meth:`flags`)."""
        return self.score_many([flags])[0]

    def row(self, got: dict) -> dict:
        """The metrics of emulated outputs ``got`` (first output; user metric; folds)."""
        test = got[self.output]
        row = self._compare[0].compare(test)
        if self.folds > 1:  # interleaved folds: a search keeps only changes that hold on each
            row["fold_sqnr_db"] = [self.fold_sqnr(got, k) for k in range(self.folds)]
            if self.fold_rows:
                row["fold_rows"] = [self._compare[1 + k].compare(test[k::self.folds]) for k in range(self.folds)]
        if self.evaluator.metric_fn is not None:
            row["metric"] = self.evaluator.user_metric(got, self.num_samples)
        return row

    def fold_sqnr(self, got: dict, k: int) -> float:
        """Output SQNR (first output) of fold ``k`` of emulated outputs ``got`` (its rows
        ``k::folds``; the other rows are not read)."""
        return float(self._compare[1 + k].sqnr(got[self.output][k::self.folds]))

    def score(self, plan, amax: dict | None = None, tensors_off=()) -> dict:
        """Metrics of the first output for ``plan`` (cosine, sqnr_db, top1_agreement, ...), plus
        ``metric`` when the evaluator has a user metric function."""
        return self.score_flags(self.flags(plan, amax, tensors_off))

    def score_scales(self, flags: dict, scales: np.ndarray, tensors_on: np.ndarray | None = None) -> dict:
        """Score ``flags`` with another scale vector (and per-tensor switches): the inner step of
        the range searches, which change nothing else."""
        trial = dict(flags)
        trial[SCALE] = scales
        if tensors_on is not None:
            trial[TENSOR_FLAGS] = tensors_on
        return self.score_flags(trial)

    def score_many(self, configs: list, on_row=None, cancel=None, labels=None) -> list:
        """Score independent prepared emulation inputs on the scorer's executor; returns their
        rows in order. ``on_row(i, row)`` as each comes back; ``cancel`` raises Cancelled between
        evaluations; ``labels`` name them when one has to re-run."""
        import time

        if self._bound is None:
            self._bound = self.executor.bind(self.switch, self.batches, self.names)
        rows: dict = {}

        def done(i, got):
            self.calls += 1
            rows[i] = self.row(got)
            if on_row is not None:
                on_row(i, rows[i])

        started = time.perf_counter()
        try:
            self._bound.run_many(list(configs), done, cancel, labels)
        finally:
            self.run_seconds += time.perf_counter() - started
        return [rows[i] for i in range(len(configs))]


__all__ = ["MAX_ROWS_PER_RUN", "Objective", "PlanScorer", "cancelled", "switchable_model"]
