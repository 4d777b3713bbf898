"""The one calibration path: statistics -> ranges, with one default method and one hold-out rule.

The CLI (``calibrate``, ``quantize``, ``autoprec``, ``demo``), the :class:`~workbench.session.Session`
and the app call :func:`calibrate`; nothing else decides where a search is judged.

The hold-out rule (:func:`hold_out`):

* evaluation data given: statistics from every calibration sample, searches and the guards
  judged on the evaluation samples;
* no evaluation data: the last quarter of the calibration samples (4 to 32 of them,
  :func:`~workbench.search.holdout.split_holdout`) is held out; the choice (each tensor's
  method or candidate) is made with statistics from the others, whatever the method, so every
  method reads the same histograms and a method switch needs no new inference. The chosen
  candidates are then read from the statistics of every calibration sample (the histograms
  continued over the held-out ones: ``Statistics.extended``,
  :func:`~workbench.search.candidates.refit`), so no sample is lost to the ranges;
* fewer than 16 calibration samples: nothing can be held out; everything is judged on the
  samples the statistics come from, and the result says so (optimistic).

The default method is the registry's :data:`~workbench.calib.registry.DEFAULT_METHOD` (``auto``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..calib import registry
from ..errors import WorkbenchError
from .holdout import held_out_from_histograms, split_holdout
from .autorange import AutoRangeResult, NothingToChoose, auto_ranges
from .scoring import PlanScorer
from ..calib.ranges import compute_ranges


@dataclass(frozen=True)
class HoldOut:
    """Where calibration takes its statistics and where it is judged.

    Attributes:
        histogram_data: the samples the statistics come from.
        judge_data: the samples searches, guards and builds are judged on.
        description: the phrase every output uses for ``judge_data``.
        optimistic: True when ``judge_data`` is (part of) ``histogram_data``.
        from_evaluation_data: True when ``judge_data`` is the user's evaluation data.
    """

    histogram_data: object
    judge_data: object
    description: str
    optimistic: bool
    from_evaluation_data: bool

    @property
    def kind(self) -> str:
        """``description`` without its count ("evaluation samples", ...), for texts that count."""
        head, _, rest = self.description.partition(" ")
        return rest if head.isdigit() else self.description

    def note(self) -> str:
        """One sentence for the user, e.g. printed by the CLI and shown by the app."""
        if self.from_evaluation_data:
            return f"Ranges and builds are judged on {self.description}."
        if self.optimistic:
            return (f"No evaluation data and too few calibration samples to hold any out: ranges and builds are "
                    f"judged on {self.description}, the samples the statistics come from (optimistic). "
                    "Give evaluation data.")
        return (f"No evaluation data: ranges and builds are judged on {self.description}; "
                "each tensor's method is chosen with statistics from the others, then read from all of them.")


def _count(data) -> int:
    n = data.num_samples()
    if n is None:
        n = sum(len(next(iter(f.values()))) for f in data.iter_batches(8))
    return int(n)


def hold_out(data, eval_data=None) -> HoldOut:
    """The hold-out rule (see the module docstring) for calibration ``data`` and optional
    ``eval_data`` (both :class:`~workbench.data.CalibrationData`)."""
    if eval_data is not None:
        return HoldOut(data, eval_data, f"{_count(eval_data)} evaluation samples", False, True)
    hist, held = split_holdout(data)
    if held_out_from_histograms(hist, held):
        return HoldOut(hist, held, f"{_count(held)} calibration samples held out from the range choice", False, False)
    return HoldOut(data, data, f"{_count(data)} calibration samples", True, False)


@dataclass
class Calibration:
    """What :func:`calibrate_ranges` decided: the ranges, the guard warnings, the auto search (or
    None) and each histogram method's score (when an evaluator was given)."""

    ranges: Ranges
    notes: list
    auto: AutoRangeResult | None = None
    method_scores: dict | None = None


def calibrate_ranges(stats, method: str = registry.DEFAULT_METHOD, *, evaluator=None, plan=None,
                     params: dict | None = None, calibration_data=None, objective="sqnr",
                     samples: int | None = None, held_out: str = "evaluation samples", progress=None,
                     cancel=None, executor=None) -> Calibration:
    """Ranges of ``method`` with the collapse guards applied: the one entry point of the CLI and
    the Session.

    ``auto`` runs :func:`auto_ranges` (``evaluator`` required). A histogram method is computed
    from ``stats``; with an ``evaluator`` every method is also scored at the output (one run
    each) so a forced method far below min-max is named (:func:`~workbench.search.range_checks.guard_forced_method`).
    ``executor``: where the ``auto`` search's runs go (:mod:`workbench.search.executor`; None: here).
    """
    from ..precision.plan import PrecisionPlan
    from .range_checks import guard_forced_method, check_ranges, score_methods
    from .scoring import ObjectiveUndefined

    if registry.get_method(method).output_aware:
        if evaluator is None:
            raise WorkbenchError("The 'auto' range method judges each tensor's amax by the network's output: "
                                 "it needs held-out samples (evaluation data, or calibration samples held out).")
        try:
            res = auto_ranges(evaluator, stats, plan, params=params, objective=objective, samples=samples,
                              held_out=held_out, calibration_data=calibration_data, progress=progress,
                              cancel=cancel, executor=executor)
        except (ObjectiveUndefined, NothingToChoose) as exc:  # NaN inputs the user allowed; no INT8 tensor
            base = registry.BASE_METHOD
            fallback = calibrate_ranges(stats, base, params=params)
            return Calibration(fallback.ranges, [f"{exc} Using '{base}' ranges instead of 'auto'."]
                               + fallback.notes, None, None)
        return Calibration(res.ranges, res.notes, res, res.method_scores)
    ranges = compute_ranges(stats, method, params=params)
    scores = None
    if evaluator is not None:
        plan = plan if plan is not None else PrecisionPlan.default(evaluator.model)
        scorer = PlanScorer(evaluator, ranges, samples, plan)
        used = [t for t in scorer.switch.int8_inputs(scorer.flags(plan)["wb_int8"]) if t in ranges]
        scores = score_methods(scorer, plan, ranges, used)
        ranges, _ = guard_forced_method(method, scores, ranges, tensors=used)
    ranges, _ = check_ranges(ranges)  # their notes are ranges.notes
    return Calibration(ranges, list(ranges.notes), None, scores)


@dataclass
class CalibrationResult:
    """What :func:`calibrate` produced.

    Attributes:
        stats: the per-tensor statistics (:class:`~workbench.calib.stats.Statistics`).
        ranges: the ranges of ``method`` with the collapse guards' flags.
        method: the method used (``auto`` may fall back to the base method; ``notes`` say why).
        notes: warnings for the user (collapse guards, fallbacks).
        auto: the auto search (:class:`~workbench.search.autorange.AutoRangeResult`) or None.
        method_scores: each histogram method's score at the output (when judged), or None.
        holdout: where the statistics come from and where ranges were judged.
        evaluator: the :class:`~workbench.evaluate.Evaluator` over ``holdout.judge_data``.
    """

    stats: object
    ranges: object
    method: str
    notes: list = field(default_factory=list)
    auto: object = None
    method_scores: dict | None = None
    holdout: HoldOut | None = None
    evaluator: object = None


def judge(model, holdout: HoldOut, *, batch_size: int = 8, metric_fn=None, labels=None, max_samples=None):
    """The :class:`~workbench.evaluate.Evaluator` over ``holdout.judge_data`` (FP32 reference once)."""
    from ..evaluate.evaluator import Evaluator

    return Evaluator(model, holdout.judge_data, batch_size=batch_size, metric_fn=metric_fn, labels=labels,
                     max_samples=max_samples)


def choose_ranges(stats, method: str = registry.DEFAULT_METHOD, *, evaluator=None, holdout: HoldOut | None = None,
                  plan=None, params: dict | None = None, objective="sqnr", auto_samples: int | None = None,
                  progress=None, cancel=None, executor=None) -> CalibrationResult:
    """Ranges of ``method`` from existing ``stats`` (a method switch: no new inference), judged
    on ``evaluator`` (over ``holdout.judge_data``) when given; ``auto`` needs it. ``executor``:
    where the ``auto`` search's runs go (:mod:`workbench.search.executor`; None: in this process)."""
    registry.check_method_name(method, "The calibration method")
    calibration_data = holdout.histogram_data if holdout is not None else None
    described = holdout.kind if holdout is not None else "evaluation samples"
    outcome = calibrate_ranges(stats, method, evaluator=evaluator, plan=plan, params=params,
                               calibration_data=calibration_data, objective=objective, samples=auto_samples,
                               held_out=described, progress=progress, cancel=cancel, executor=executor)
    used = outcome.ranges.method  # auto falls back to the base method when it cannot judge (notes say why)
    ranges = outcome.ranges
    if getattr(stats, "extended", None) is not None:  # chosen on a split: read from every sample
        from .candidates import refit

        ranges = refit(ranges, stats.extended, params=ranges.params)
    return CalibrationResult(stats, ranges, used, list(outcome.notes), outcome.auto,
                             outcome.method_scores, holdout, evaluator)


def extend_statistics(model, stats, holdout: HoldOut, data, *, batch_size: int = 8, progress=None, cancel=None):
    """``stats`` (from ``holdout.histogram_data``) with ``extended`` set: the same histograms
    continued over the held-out samples, so over all of ``data`` (the calibration data). Does
    nothing when nothing was held out of ``data`` (evaluation data given, or too few samples)."""
    from ..calib.collect import collect_statistics

    if holdout.from_evaluation_data or holdout.optimistic or stats.extended is not None:
        return stats
    stats.extended = collect_statistics(model, holdout.judge_data, tensors=list(stats.collectors),
                                        batch_size=batch_size, progress=progress if progress is not None else False,
                                        cancel=cancel, extend=stats, whole=data)
    return stats


def calibrate(model, data, *, method: str = registry.DEFAULT_METHOD, eval_data=None, evaluator=None,
              params: dict | None = None, plan=None, tensors="default", batch_size: int = 8, statistics=None,
              objective="sqnr", auto_samples: int | None = None, metric_fn=None, labels=None,
              collect_progress=None, search_progress=None, cancel=None, executor=None) -> CalibrationResult:
    """Calibrate ``model`` on ``data``: the one path of the CLI, the Session and the app.

    Args:
        model: :class:`~workbench.graph.ModelInfo`.
        data / eval_data: :class:`~workbench.data.CalibrationData` (``eval_data`` optional).
        method: a range method of the registry (default ``auto``).
        evaluator: an :class:`~workbench.evaluate.Evaluator` over the user's evaluation data,
            already built (its FP32 reference is computed once); None: one is built over
            ``eval_data`` or, without it, by the hold-out rule.
        params: range-method parameters (registry names, e.g. ``{"percentile": 99.99}``).
        plan: the precision plan searches judge under (None: the default plan), or a function
            of the base method's ranges returning it (a plan whose FP16 safety reads ranges).
        tensors: what to observe (:func:`~workbench.calib.collect.tensors_to_observe`).
        statistics: reuse these :class:`~workbench.calib.stats.Statistics`, or a function of the
            histogram data returning them (e.g. loading a file checked against its fingerprint);
            None: collect.
        objective / auto_samples: what ``auto`` maximises and on how many samples.
        metric_fn / labels: the user's metric for the evaluator.
        collect_progress: ``(done, total)`` while collecting statistics (or True for a bar, False).
        search_progress: ``(done, total)`` while ``auto`` searches.
        cancel: a ``threading.Event``; statistics collection raises ``Cancelled``, the auto
            search keeps its partial choice (``result.auto.cancelled``).
        executor: where the auto search's independent runs go (:mod:`workbench.search.executor`:
            local worker processes, a dask cluster); None: in this process. The ranges are the
            same whichever runs them.
    """
    from ..calib.collect import collect_statistics

    if evaluator is not None:  # built by the caller over its evaluation data
        if evaluator.model is not model:
            raise WorkbenchError("The evaluator given to calibrate() belongs to another model.")
        holdout = HoldOut(data, None, f"{evaluator.num_samples} evaluation samples", False, True)
    else:
        holdout = hold_out(data, eval_data)
    if callable(statistics):
        statistics = statistics(holdout.histogram_data)
    if statistics is None:
        statistics = collect_statistics(model, holdout.histogram_data, tensors=tensors, batch_size=batch_size,
                                        progress=collect_progress if collect_progress is not None else False,
                                        cancel=cancel)
    statistics = extend_statistics(model, statistics, holdout, data, batch_size=batch_size, cancel=cancel)
    if evaluator is None:
        evaluator = judge(model, holdout, batch_size=batch_size, metric_fn=metric_fn, labels=labels)
    if callable(plan):
        plan = plan(compute_ranges(statistics, params=params))
    return choose_ranges(statistics, method, evaluator=evaluator, holdout=holdout, plan=plan, params=params,
                         objective=objective, auto_samples=auto_samples, progress=search_progress, cancel=cancel,
                         executor=executor)


__all__ = ["Calibration", "CalibrationResult", "calibrate_ranges", "HoldOut", "calibrate", "choose_ranges",
           "extend_statistics", "hold_out", "judge"]
