"""The accuracy steps (:mod:`workbench.improve`) on the one calibration path.

:func:`improve` runs equalization, smoothing, weight rounding and bias correction on top of the
calibrated ranges with the one hold-out rule of :mod:`workbench.search.calibration`: statistics
of rescaled tensors come from ``holdout.histogram_data`` (read with the range method each tensor
was calibrated with), and each step is kept only when the exported Q/DQ model's output improves
on the evaluator's samples (``holdout.judge_data`` or the user's evaluation data: where the auto
ranges were judged), with exact ONNX semantics against the original FP32 model.

The result's :attr:`Improvement.model` is the improved FP32 graph as a :class:`ModelInfo` whose
fingerprint and path are the original's: export it with :attr:`Improvement.ranges` and the same
plan, and the written Q/DQ file is the improved one (changed initializers only, same op types)
and still names the original model as its source.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import WorkbenchError
from ..graph.model import ModelInfo
from ..improve import STEPS
from ..improve.rounding import MAX_ROWS
from ..improve.scores import Score, gain_noise, sample_gains
from .scoring import Objective, cancelled

#: The step names in the order they run (the CLI's ``--no-<name>`` flags, the app's toggles).
STEP_NAMES = tuple(STEPS)
#: Held-out SQNR gain (dB) a step needs at least, on the whole (each fold must gain too).
MIN_GAIN_DB = 0.1
#: A step's gain must also exceed this many standard errors of the per-sample gains.
NOISE_FACTOR = 1.0


def held_out_rule(min_gain_db: float = MIN_GAIN_DB, noise_factor: float = NOISE_FACTOR):
    """The workbench's decision on a step, ``keep(before, after) -> (kept, reason)`` over two
    :class:`~workbench.improve.scores.Score` of the held-out samples (for
    :func:`workbench.improve.apply_steps`). A step is kept only when

    * it loses no sample's FP32 arg-max on a class-like output (top-1, an exact CTC line), and
      no user metric;
    * the user's metric rises, or (metric equal or none) the output SQNR rises by ``min_gain_db``
      and by ``noise_factor`` times the noise of the comparison (the jackknife standard error of
      the gain, :func:`~workbench.improve.scores.gain_noise`), and on every interleaved fold of
      the samples: :meth:`Objective.better <workbench.search.scoring.Objective.better>`, the rule
      the auto ranges keep a change by (a gain that holds on some samples and not on others is
      fitting them);
    * at least as many samples gain as lose (a whole-set gain made by the few samples whose
      errors dominate the sums, while most samples lose, does not generalise).
    """

    def keep(before: Score, after: Score):
        if before.agree is not None and after.agree is not None and after.agree < before.agree:
            return False, (f"loses FP32's arg-max on {before.agree - after.agree} held-out sample(s) "
                           f"({before.agree} -> {after.agree} agree)")
        with_metric = before.metric is not None and after.metric is not None
        if with_metric and after.metric < before.metric:
            return False, f"the metric drops ({before.metric:.4g} -> {after.metric:.4g})"
        noise = noise_factor * gain_noise(before, after)
        need = max(min_gain_db, noise)
        per_sample = sample_gains(before, after)
        up, down = int(np.sum(per_sample > 0)), int(np.sum(per_sample < 0))
        if Objective("metric" if with_metric else "sqnr").better(after.as_row(), before.as_row(), need):
            if up >= down or (with_metric and after.metric > before.metric):
                return True, ""
            return False, f"most held-out samples lose ({down} lose, {up} gain)"
        folds = ", ".join(f"{a - b:+.2f}" for a, b in zip(after.folds, before.folds))
        return False, (f"no held-out gain: {after.sqnr - before.sqnr:+.2f} dB (folds {folds or '-'}; "
                       f"needs +{need:.2f} dB on the whole, > 0 on each fold)")

    return keep


class ImprovedModel(ModelInfo):
    """The improved FP32 graph of ``original``: same nodes and op types, changed initializers.

    Its :meth:`fingerprint` and ``path`` are the original's: plans, ranges and the exported
    file's source record stay bound to the model the user gave (what the improved Q/DQ file is
    compared with)."""

    def __init__(self, model, original: ModelInfo):
        super().__init__(model, original.path)
        self.original = original

    def fingerprint(self) -> str:
        return self.original.fingerprint()


@dataclass
class Improvement:
    """What :func:`improve` produced.

    Attributes:
        model: the model to export (an :class:`ImprovedModel`; the original ModelInfo when no
            step was kept).
        ranges: the ranges to export with (re-calibrated tensors of a kept rescaling replaced).
        rows: the step table (:class:`workbench.improve.StepRow`, one per requested step).
        judged_on: the phrase naming the samples the steps were judged on.
        requested: the step names that were tried.
        seconds: wall time of :func:`improve`.
        cancelled: stopped by ``cancel``: the steps finished before it are applied, the rest say
            "cancelled" (a partial result).
    """

    model: ModelInfo
    ranges: object
    rows: list
    judged_on: str
    requested: list = field(default_factory=list)
    seconds: float = 0.0
    cancelled: bool = False
    saved_details: dict | None = None  # layer_details() of a result restored from a project

    def applied(self) -> list:
        """Names of the steps that were kept."""
        return [r.step for r in self.rows if r.applied]

    def table(self) -> list:
        """One dict per step: step, layers (count), SQNR and metric before/after, applied, reason,
        seconds (the CLI prints it, the app shows it)."""
        out = []
        for r in self.rows:
            d = r.as_dict()
            d["layers"] = len(r.layers)
            out.append(d)
        return out

    def record(self) -> dict:
        """What the written plan records under ``"steps"``: requested, applied, and each row
        (with the layers touched), so a result can be reproduced."""
        out = {"requested": list(self.requested), "applied": self.applied(), "judged_on": self.judged_on,
               "rows": [_json_row(r) for r in self.rows]}
        if self.cancelled:
            out["cancelled"] = True
        return out

    def layer_details(self) -> dict:
        """Node -> per-layer data of the kept steps: ``weight_sqnr_nearest`` / ``weight_sqnr_rounded``
        (dB, FP32 weight vs its INT8 grid values, round-to-nearest vs the chosen rounding) and
        ``bias_shift`` (the largest |per-channel shift| bias correction removed)."""
        if self.saved_details is not None:
            return {node: dict(d) for node, d in self.saved_details.items()}
        out: dict = {}
        for r in self.rows:
            if not r.applied:
                continue
            for lr in r.details.get("layers", []) if r.step == "rounding" else []:
                out.setdefault(lr.node, {}).update(weight_sqnr_nearest=float(lr.weight_sqnr_nearest),
                                                   weight_sqnr_rounded=float(lr.weight_sqnr))
            for node, shift in (r.details.get("shifts", {}) if r.step == "bias_correction" else {}).items():
                out.setdefault(node, {})["bias_shift"] = float(np.max(np.abs(shift))) if np.size(shift) else 0.0
        return out


def _json_row(row) -> dict:
    d = row.as_dict()
    for k in ("sqnr_before", "sqnr_after", "metric_before", "metric_after"):
        if d[k] is not None:
            d[k] = round(float(d[k]), 4) if np.isfinite(d[k]) else None
    return d


def check_steps(steps) -> list:
    """The step names of ``steps`` (None: all) in the order they run; WorkbenchError naming an
    unknown one and listing the steps."""
    if steps is None:
        return list(STEP_NAMES)
    if isinstance(steps, str) or not all(isinstance(s, str) for s in steps):
        raise WorkbenchError(f"steps must be a list of step names such as ['rounding'], got {steps!r}; "
                             f"the steps are: {', '.join(STEP_NAMES)}.")
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise WorkbenchError(f"Unknown accuracy step(s) {unknown}; the steps are: {', '.join(STEP_NAMES)}.")
    return [s for s in STEP_NAMES if s in steps]


def range_method_calibrate(ranges, histogram_data, *, params: dict | None = None, batch_size: int = 8):
    """``calibrate(model, batches, tensors) -> {tensor: amax}`` for :func:`workbench.improve.apply_steps`:
    statistics of ``tensors`` in the rescaled ``model`` over ``histogram_data`` (the one hold-out
    rule's statistics samples; ``batches`` are the same samples), each read with the candidate
    its range in ``ranges`` was chosen with (``percentile@99.99``, ``minmax*0.5``, a method name)."""
    from ..calib.collect import collect_statistics
    from ..calib.ranges import compute_ranges
    from ..calib.registry import BASE_METHOD

    def calibrate(model, batches, tensors):
        import onnx

        proto = onnx.ModelProto()
        proto.CopyFrom(model)
        stats = collect_statistics(ModelInfo(proto), histogram_data, tensors=list(tensors), batch_size=batch_size,
                                   progress=False)
        fresh = compute_ranges(stats, params=params)
        out = {}
        for t in tensors:
            old = ranges.get(t) if ranges is not None else None
            label = (old.chosen if old is not None and old.chosen else getattr(ranges, "method", BASE_METHOD))
            out[t] = _amax_of(label, stats.collectors[t], fresh.tensors[t].amax_by_method, BASE_METHOD)
        return out

    return calibrate


def _amax_of(label: str, collector, by_method: dict, base: str) -> float:
    """The amax of candidate ``label`` (as :mod:`workbench.search.autorange` names them) for new statistics."""
    for part in str(label).split("="):
        if part in by_method:
            return float(by_method[part])
        try:
            if part.startswith("percentile@"):
                return float(collector.compute_amax("percentile", percentile=float(part[len("percentile@"):])))
            if part.startswith("minmax*"):
                return float(by_method["minmax"]) * float(part[len("minmax*"):])
        except ValueError:
            continue
    return float(by_method[base])


def improve(model_info: ModelInfo, ranges, plan, holdout, evaluator, *, steps=None, strict: bool = False,
            batch_size: int = 8, params: dict | None = None, min_gain_db: float = MIN_GAIN_DB, clip: str = "skip",
            rounding_rows: int = MAX_ROWS, progress=None, cancel=None) -> Improvement:
    """Try the accuracy ``steps`` on top of ``ranges``; keep each only when the held-out check improves.

    Args:
        model_info: the FP32 model the ranges belong to.
        ranges: its :class:`~workbench.calib.ranges.Ranges` (the plan's amax overrides apply on top).
        plan: the :class:`~workbench.precision.PrecisionPlan` to export with.
        holdout: the :class:`~workbench.search.calibration.HoldOut` of the calibration; statistics
            of rescaled tensors come from ``holdout.histogram_data``.
        evaluator: the :class:`~workbench.evaluate.Evaluator` the ranges were judged on; its
            samples judge every step (its user metric, when it has one, decides; SQNR otherwise).
        steps: names of :data:`STEP_NAMES` to try (None: all).
        strict: a step named in ``steps`` that cannot apply raises WorkbenchError naming it and
            the reason (default False: it is skipped with a one-line reason in its row).
        batch_size / params: batch size and range-method parameters for the re-calibration.
        min_gain_db: the held-out SQNR gain a step needs (see :func:`held_out_rule`).
        clip: "skip" or "apply" for equalization through Clip/Relu6.
        rounding_rows: rows per layer weight rounding fits on (the CPU budget knob).
        progress: ``progress(done, total)`` per unit of work (a layer of weight rounding or bias
            correction, a smoothing strength, a measurement; see :func:`workbench.improve.apply_steps`),
            so that a progress bar shows layers done, rate and ETA.
        cancel: a ``threading.Event`` (or callable): WorkbenchError when set before the steps
            start; set while they run, it stops between layers: the steps finished are kept and the
            result is partial (:attr:`Improvement.cancelled`, "cancelled" in the table).
    """
    from ..improve import apply_steps

    wanted = check_steps(steps)
    if model_info is None or ranges is None or plan is None or holdout is None:
        raise WorkbenchError("The accuracy steps need a model, its ranges, a plan and the calibration's hold-out: "
                             "calibrate first.")
    if cancelled(cancel):
        raise WorkbenchError("The accuracy steps were cancelled before they started.")
    started = time.perf_counter()
    judged_on = holdout.description if holdout.judge_data is not None else f"{evaluator.num_samples} evaluation samples"
    if holdout.optimistic:
        judged_on += " (the samples the statistics come from: optimistic)"
    if not wanted:
        return Improvement(model_info, ranges, [], judged_on, [], 0.0)
    overrides = dict(plan.amax_overrides)
    amax = {t: float(overrides.get(t, r.amax)) for t, r in ranges.tensors.items()}
    amax.update({t: float(a) for t, a in overrides.items()})
    data = holdout.histogram_data
    calib = list(data.iter_batches(batch_size))
    metric = _metric_of(evaluator)
    res = apply_steps(model_info.model, amax, calib, plan={e.node: e.precision.value for e in plan},
                      holdout=list(evaluator.batches), steps=wanted, metric=metric,
                      calibrate=range_method_calibrate(ranges, data, params=params, batch_size=batch_size),
                      keep=held_out_rule(min_gain_db), strict=strict and steps is not None, clip=clip,
                      rounding_rows=rounding_rows, progress=progress, cancel=cancel)
    seconds = time.perf_counter() - started
    if not res.applied():
        return Improvement(model_info, ranges, res.rows, judged_on, wanted, seconds, res.cancelled)
    changed = {t: a for t, a in res.amax.items() if t in ranges.tensors and t not in overrides
               and not np.isclose(a, ranges.tensors[t].amax, rtol=1e-7, atol=0.0)}
    new_ranges = ranges.with_amax(changed, reasons={t: "re-calibrated after " + "/".join(res.applied())
                                                    for t in changed}) if changed else ranges
    return Improvement(ImprovedModel(res.model, model_info), new_ranges, res.rows, judged_on, wanted, seconds,
                       res.cancelled)


def _metric_of(evaluator):
    """``metric(reference_runs, runs)`` over the evaluator's user metric (None without one)."""
    if getattr(evaluator, "metric_fn", None) is None:
        return None

    def metric(_reference, runs):
        outputs = {name: np.concatenate([np.asarray(r[name]) for r in runs]) for name in runs[0]}
        return evaluator.user_metric(outputs)

    return metric


__all__ = ["MIN_GAIN_DB", "STEP_NAMES", "ImprovedModel", "Improvement", "check_steps", "held_out_rule", "improve", "range_method_calibrate"]
