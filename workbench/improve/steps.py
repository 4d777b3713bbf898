"""The step table: try each accuracy step, keep it only when the held-out output improves.

Each step is one registry entry (name, what it does, function). :func:`apply_steps` runs the
requested steps in the registry's order (equalize, smooth, rounding, bias_correction: the two
FP32 rescalings first, because calibration and the weight-level steps must see the rescaled
model), measures the exported Q/DQ model (exact ONNX semantics) on held-out batches against the
*original* FP32 model before and after each step, and returns one row per step.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import onnx

from ..errors import Cancelled
from . import adapter
from .bias import correct_bias
from .equalize import equalize, smooth
from .rounding import MAX_ROWS, round_weights
from .layers import quantized_layers
from .runner import ExactRunner, output_sqnr, split_holdout
from .scores import FOLDS, Score, gain_rule, score_outputs


class Skip(Exception):
    """A step cannot apply; the message is the one-line reason for the table."""


@dataclass
class StepRow:
    """One row of the table. SQNR in dB of the model outputs against the original FP32 model on
    the held-out batches; ``metric_*``: the user's metric (None without one); ``applied``:
    the step was kept; ``reason``: why not (or a note); ``details``: per-layer data."""

    step: str
    layers: list = field(default_factory=list)
    sqnr_before: float | None = None
    sqnr_after: float | None = None
    metric_before: float | None = None
    metric_after: float | None = None
    applied: bool = False
    reason: str = ""
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"step": self.step, "layers": list(self.layers), "sqnr_before": self.sqnr_before,
                "sqnr_after": self.sqnr_after, "metric_before": self.metric_before,
                "metric_after": self.metric_after, "applied": self.applied, "reason": self.reason,
                "seconds": round(self.seconds, 3)}


@dataclass
class ImproveResult:
    """``model``: the FP32 model to export (with ``amax`` and the same plan) -- its Q/DQ export is
    the improved model; ``fp32_model``: the function-preserving rescaled model (the target of
    the weight-level steps); ``rows``: the step table; ``holdout``: how many batches judged it."""

    model: onnx.ModelProto
    amax: dict
    rows: list
    fp32_model: onnx.ModelProto
    holdout: int = 0
    cancelled: bool = False

    def applied(self) -> list:
        return [r.step for r in self.rows if r.applied]

    def table(self) -> str:
        """The rows as plain text (one line per step)."""
        def f(v):
            return "-" if v is None else f"{v:.2f}"
        lines = [f"{'step':<16} {'layers':>6} {'SQNR before':>11} {'after':>7} {'metric before':>13} "
                 f"{'after':>7} {'applied':>7}  reason"]
        for r in self.rows:
            lines.append(f"{r.step:<16} {len(r.layers):>6} {f(r.sqnr_before):>11} {f(r.sqnr_after):>7} "
                         f"{f(r.metric_before):>13} {f(r.metric_after):>7} {'yes' if r.applied else 'no':>7}  {r.reason}")
        lines.append(f"(output SQNR vs FP32 on {self.holdout} held-out sample(s), exact ONNX semantics)"
                     + (" [cancelled: partial result]" if self.cancelled else ""))
        return "\n".join(lines)


@dataclass
class _State:
    fp32: onnx.ModelProto
    model: onnx.ModelProto
    amax: dict


@dataclass
class _Context:
    calib: list
    holdout: list
    plan: dict | None
    reference: list
    metric: Callable | None
    calibrate: Callable
    options: dict
    sizes: list = field(default_factory=list)
    tick: Callable = lambda node=None: None  # after each layer / alpha: progress, then cancel

    def measure(self, state: "_State") -> Score:
        """The exported Q/DQ model of ``state`` on the held-out batches (exact ONNX semantics)."""
        qdq = adapter.build_qdq(state.model, state.amax, self.plan)
        outs = ExactRunner(qdq).run_all(self.holdout)
        return score_outputs(self.reference, outs, self.sizes, self.metric, self.options.get("folds", FOLDS))


@dataclass(frozen=True)
class Step:
    """A registry entry: ``name`` (the CLI's ``--no-<name>``), ``title`` and ``run(state, ctx)``
    returning (new state, layers touched, note, details) or raising :class:`Skip`."""

    name: str
    title: str
    run: Callable


def minmax_calibrate(model: onnx.ModelProto, batches: list, tensors: list) -> dict:
    """Default re-calibration of the tensors a rescaling changed: max |x| over ``batches``
    (after equalization no channel is an outlier, so the plain max is the range)."""
    run = ExactRunner(model, extra=tensors)
    out: dict = {}
    for batch in batches:
        for t, v in run.run(batch, tensors).items():
            out[t] = max(out.get(t, 0.0), float(np.max(np.abs(v))) if v.size else 0.0)
    return {t: v if v > 0 else 1.0 for t, v in out.items()}


def _rescaled(state: _State, ctx: _Context, res) -> _State:
    changed = [t for t in res.changed if t in state.amax]
    amax = dict(state.amax)
    if changed:
        amax.update(ctx.calibrate(res.model, ctx.calib, changed))
    return _State(res.model, res.model, amax)


def _run_equalize(state: _State, ctx: _Context):
    res = equalize(state.fp32, ctx.calib, clip=ctx.options.get("clip", "skip"))
    if not res.pairs:
        why = next(iter(res.skipped.values()), "no Conv -> [Relu] -> Conv pair in the model")
        raise Skip(f"nothing to equalize: {why}" if res.skipped else why)
    note = ""
    details = {"pairs": res.pairs, "skipped": res.skipped}
    if res.changes_fp32:
        fp = ExactRunner(res.model).run_all(ctx.holdout)
        details["fp32_sqnr"] = output_sqnr(ctx.reference, fp)
        note = f"FP32 output changed through Clip: {details['fp32_sqnr']:.1f} dB vs the original"
    elif res.skipped:
        note = f"{len(res.skipped)} pair(s) left alone (e.g. {next(iter(res.skipped.values()))})"
    return _rescaled(state, ctx, res), list(res.pairs), note, details


def _run_smooth(state: _State, ctx: _Context):
    best = None
    tried = {}
    for alpha in ctx.options.get("alphas", (0.25, 0.5, 0.75)):
        res = smooth(state.fp32, ctx.calib, alpha)
        if not res.pairs:
            why = next(iter(res.skipped.values()), None)
            raise Skip("no MatMul/Gemm input comes from a LayerNormalization, MatMul or Gemm whose "
                       "channels can be rescaled" + (f" ({why})" if why else ""))
        cand = _rescaled(state, ctx, res)
        sq = ctx.measure(cand).sqnr
        tried[alpha] = sq
        ctx.tick()
        if best is None or sq > best[0]:
            best = (sq, alpha, cand, res)
    _, alpha, cand, res = best
    return cand, list(res.pairs), f"alpha={alpha} (held-out SQNR per alpha: " + ", ".join(
        f"{a}: {v:.2f}" for a, v in tried.items()) + ")", {"alpha": alpha, "alphas": tried, "pairs": res.pairs}


def _run_rounding(state: _State, ctx: _Context):
    res = round_weights(state.model, state.amax, ctx.calib, ctx.plan, reference=state.fp32,
                        max_rows=ctx.options.get("rounding_rows", MAX_ROWS), on_layer=ctx.tick)
    if not res.layers:
        raise Skip("no INT8 layer with a weight it can handle" +
                   (f" ({next(iter(res.skipped.values()))})" if res.skipped else ""))
    flipped = sum(r.flipped for r in res.layers)
    return (replace(state, model=res.model), [r.node for r in res.layers], f"{flipped} weight(s) rounded the other way",
            {"layers": res.layers, "skipped": res.skipped})


def _run_bias(state: _State, ctx: _Context):
    res = correct_bias(state.model, state.amax, ctx.calib, ctx.plan, reference=state.fp32, on_layer=ctx.tick)
    if not res.shifts:
        raise Skip("no INT8 layer with a bias it can correct" +
                   (f" ({next(iter(res.skipped.values()))})" if res.skipped else ""))
    return (replace(state, model=res.model), list(res.shifts), "",
            {"shifts": res.shifts, "skipped": res.skipped})


#: The steps in the order they run.
STEPS = {s.name: s for s in (
    Step("equalize", "cross-layer equalization (Conv -> [Relu] -> Conv)", _run_equalize),
    Step("smooth", "SmoothQuant-style smoothing of MatMul/Gemm inputs", _run_smooth),
    Step("rounding", "weight rounding (floor/ceil per weight, layer output error)", _run_rounding),
    Step("bias_correction", "bias correction (per-channel mean shift)", _run_bias),
)}


def apply_steps(model: onnx.ModelProto, amax: dict, batches: list, *, plan: dict | None = None,
                holdout: list | None = None, steps=None, metric: Callable | None = None,
                calibrate: Callable | None = None, min_gain_db: float = 0.1, keep: Callable | None = None,
                strict: bool = False, clip: str = "skip", alphas=(0.25, 0.5, 0.75),
                rounding_rows: int = MAX_ROWS, folds: int = FOLDS, progress: Callable | None = None,
                cancel=None) -> ImproveResult:
    """Try each step, keep it when the held-out check improves; return the model and the table.

    Args:
        model: the FP32 model (not modified); amax: tensor -> amax of its calibrated ranges.
        batches: calibration batches (input name -> array); the last quarter is held out when
            ``holdout`` is not given.
        plan: node -> "int8"/"fp16"/"fp32" (None: the workbench's default plan).
        holdout: held-out batches for the check (default: split from ``batches``).
        steps: names from :data:`STEPS` to try (default all), always run in registry order.
        metric: ``metric(reference_outputs, outputs) -> float`` (higher is better), both lists of
            output name -> array per held-out batch; when given it decides, SQNR breaks ties.
        calibrate: ``calibrate(model, batches, tensors) -> {tensor: amax}`` for the tensors a
            rescaling changed (default :func:`minmax_calibrate`); pass the workbench's own
            range method so that the step is judged with the ranges it will be exported with.
        min_gain_db: SQNR gain a step needs to be kept by the default ``keep``.
        keep: ``keep(before, after) -> (kept, reason)`` over two :class:`~workbench.improve.scores.Score`
            (default :func:`~workbench.improve.scores.gain_rule`; the workbench's rule, gains on
            every fold and above the noise, is :func:`workbench.search.improve_steps.held_out_rule`).
        strict: raise WorkbenchError when a step named in ``steps`` cannot apply.
        clip: "skip" or "apply" for equalization through Clip/Relu6 (see :func:`equalize`).
        alphas: smoothing strengths tried. rounding_rows: rows per layer for weight rounding.
        folds: interleaved folds of the held-out samples each score reports (``Score.folds``).
        progress: ``progress(done, total)`` after each layer of rounding / bias correction, each
            smoothing strength and each measurement.
        cancel: a ``threading.Event`` (or callable) checked between layers: the step running is
            dropped, the steps finished before it are kept and the result says ``cancelled``.
    """
    wanted = list(STEPS) if steps is None else list(steps)
    unknown = [s for s in wanted if s not in STEPS]
    if unknown:
        raise adapter.WorkbenchError(f"Unknown step(s) {unknown}; the steps are: {', '.join(STEPS)}.")
    keep = keep or gain_rule(min_gain_db)
    calib, held = split_holdout(list(batches), holdout)
    state = _State(model, model, dict(amax))
    rows = [StepRow(name) for name in STEPS if name in wanted]
    sizes = [len(next(iter(b.values()))) if b else 0 for b in held or []]
    result = ImproveResult(model, dict(amax), rows, model, int(sum(sizes)))
    if not held:
        return _skip_all(result, "no data left for a hold-out (give holdout= or at least 2 calibration batches)",
                         strict and steps is not None)
    clock = _Progress(progress, cancel)
    try:
        reference = ExactRunner(model).run_all(held)
        ctx = _Context(calib, held, plan, reference, metric, calibrate or minmax_calibrate,
                       {"clip": clip, "alphas": tuple(alphas), "rounding_rows": rounding_rows, "folds": folds},
                       sizes, clock.tick)
        clock.plan(rows, len(quantized_layers(adapter.build_qdq(model, amax, plan), model)), len(ctx.options["alphas"]))
        current = ctx.measure(state)
    except Exception as exc:  # noqa: BLE001 (one line in the table, never a traceback)
        return _skip_all(result, f"cannot measure the quantized model: {_one_line(exc)}", strict and steps is not None)
    for row in rows:
        t0 = time.perf_counter()
        row.sqnr_before, row.metric_before = current.sqnr, current.metric
        try:
            clock.check()
            new, row.layers, row.reason, row.details = STEPS[row.step].run(state, ctx)
            after = ctx.measure(new)
            row.sqnr_after, row.metric_after = after.sqnr, after.metric
            row.applied, why = keep(current, after)
            row.details["judged"] = {"before": current, "after": after, "why": why}
            if row.applied:
                state, current = new, after
            else:
                row.reason = (why or "no held-out gain") + (f"; {row.reason}" if row.reason else "")
        except Cancelled:
            result.cancelled = True
        except Skip as exc:
            row.reason = str(exc)
        except Exception as exc:  # noqa: BLE001
            row.reason = _one_line(exc)
        row.seconds = time.perf_counter() - t0
        if result.cancelled:
            break
        clock.step_done(row.step)
        if strict and steps is not None and row.sqnr_after is None:
            raise adapter.WorkbenchError(f"Step '{row.step}' cannot apply to this model: {row.reason}")
    if result.cancelled:
        for row in rows:
            if not row.applied and not row.reason:
                row.reason = ("cancelled while it ran (the steps before it are kept)" if row.seconds
                              else "cancelled before it ran")
    result.model, result.amax, result.fp32_model = state.model, state.amax, state.fp32
    return result


class _Progress:
    """Units of work of the steps (a layer of rounding or bias correction, a smoothing strength, a
    measurement): ``progress(done, total)`` after each, ``cancel`` checked between them."""

    def __init__(self, progress, cancel):
        self.progress, self.cancel = progress, cancel
        self.done, self.total, self.ends = 0, 0, {}

    def plan(self, rows: list, layers: int, alphas: int) -> None:
        units = {"equalize": 1, "smooth": alphas + 1, "rounding": layers + 1, "bias_correction": layers + 1}
        for row in rows:
            self.total += units.get(row.step, 1)
            self.ends[row.step] = self.total
        self._report()

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)

    def check(self) -> None:
        c = self.cancel
        if c is not None and (c.is_set() if hasattr(c, "is_set") else bool(c())):
            raise Cancelled("the accuracy steps were cancelled")

    def tick(self, node=None) -> None:
        self.done += 1
        self._report()
        self.check()

    def step_done(self, step: str) -> None:
        self.done = self.ends.get(step, self.done)
        self._report()


def _skip_all(result: ImproveResult, reason: str, strict: bool) -> ImproveResult:
    if strict:
        raise adapter.WorkbenchError(f"Step '{result.rows[0].step}' cannot apply: {reason}")
    for row in result.rows:
        row.reason = reason
    return result


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else type(exc).__name__
    return msg if isinstance(exc, adapter.WorkbenchError) else f"{type(exc).__name__}: {msg}"
