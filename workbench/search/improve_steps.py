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

#: The step names in the order they run (the CLI's ``--no-<name>`` flags, the app's toggles).
STEP_NAMES = tuple(STEPS)


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
    """

    model: ModelInfo
    ranges: object
    rows: list
    judged_on: str
    requested: list = field(default_factory=list)
    seconds: float = 0.0

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
        return {"requested": list(self.requested), "applied": self.applied(), "judged_on": self.judged_on,
                "rows": [_json_row(r) for r in self.rows]}

    def layer_details(self) -> dict:
        """Node -> per-layer data of the kept steps: ``weight_sqnr_nearest`` / ``weight_sqnr_rounded``
        (dB, FP32 weight vs its INT8 grid values, round-to-nearest vs the chosen rounding) and
        ``bias_shift`` (the largest |per-channel shift| bias correction removed)."""
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
            batch_size: int = 8, params: dict | None = None, min_gain_db: float = 0.1, clip: str = "skip",
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
        min_gain_db: the held-out SQNR gain a step needs (when no user metric decides).
        clip: "skip" or "apply" for equalization through Clip/Relu6.
        rounding_rows: rows per layer weight rounding fits on (the CPU budget knob).
        progress: ``progress(done, total)`` before and after the steps; cancel: a
            ``threading.Event`` checked before they start (WorkbenchError when set).
    """
    from ..improve import apply_steps

    wanted = check_steps(steps)
    if model_info is None or ranges is None or plan is None or holdout is None:
        raise WorkbenchError("The accuracy steps need a model, its ranges, a plan and the calibration's hold-out: "
                             "calibrate first.")
    if cancel is not None and cancel.is_set():
        raise WorkbenchError("The accuracy steps were cancelled before they started.")
    started = time.perf_counter()
    judged_on = holdout.description if holdout.judge_data is not None else f"{evaluator.num_samples} evaluation samples"
    if holdout.optimistic:
        judged_on += " (the samples the statistics come from: optimistic)"
    if not wanted:
        return Improvement(model_info, ranges, [], judged_on, [], 0.0)
    if progress:
        progress(0, 1)
    overrides = dict(plan.amax_overrides)
    amax = {t: float(overrides.get(t, r.amax)) for t, r in ranges.tensors.items()}
    amax.update({t: float(a) for t, a in overrides.items()})
    data = holdout.histogram_data
    calib = list(data.iter_batches(batch_size))
    metric = _metric_of(evaluator)
    res = apply_steps(model_info.model, amax, calib, plan={e.node: e.precision.value for e in plan},
                      holdout=list(evaluator.batches), steps=wanted, metric=metric,
                      calibrate=range_method_calibrate(ranges, data, params=params, batch_size=batch_size),
                      min_gain_db=min_gain_db, strict=strict and steps is not None, clip=clip,
                      rounding_rows=rounding_rows)
    if progress:
        progress(1, 1)
    seconds = time.perf_counter() - started
    if not res.applied():
        return Improvement(model_info, ranges, res.rows, judged_on, wanted, seconds)
    changed = {t: a for t, a in res.amax.items() if t in ranges.tensors and t not in overrides
               and not np.isclose(a, ranges.tensors[t].amax, rtol=1e-7, atol=0.0)}
    new_ranges = ranges.with_amax(changed, reasons={t: "re-calibrated after " + "/".join(res.applied())
                                                    for t in changed}) if changed else ranges
    return Improvement(ImprovedModel(res.model, model_info), new_ranges, res.rows, judged_on, wanted, seconds)


def _metric_of(evaluator):
    """``metric(reference_runs, runs)`` over the evaluator's user metric (None without one)."""
    if getattr(evaluator, "metric_fn", None) is None:
        return None

    def metric(_reference, runs):
        outputs = {name: np.concatenate([np.asarray(r[name]) for r in runs]) for name in runs[0]}
        return evaluator.user_metric(outputs)

    return metric


__all__ = ["STEP_NAMES", "ImprovedModel", "Improvement", "check_steps", "improve", "range_method_calibrate"]
