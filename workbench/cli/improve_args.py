"""The accuracy-step options of ``workbench quantize`` (one argument group, :class:`ImproveArgs`)."""
from __future__ import annotations

import argparse

from ..improve.rounding import MAX_ROWS
from ..search.improve_steps import STEP_NAMES


def _flag(step: str) -> str:
    return "--no-" + step.replace("_", "-")


class ImproveArgs:
    """``--no-improve`` and ``--no-<step>`` for each accuracy step (:data:`STEP_NAMES`), and the
    rounding budget. By default every step is tried and kept only when it improves the output on
    the samples the ranges were judged on."""

    def add(self, parser: argparse.ArgumentParser) -> None:
        from ..improve import STEPS

        g = parser.add_argument_group(
            "accuracy steps", "tried after calibration, each kept only when the exported model's output improves "
                              "on the held-out samples (exact ONNX semantics)")
        g.add_argument("--no-improve", action="store_true", help="no accuracy step at all")
        for name, step in STEPS.items():
            g.add_argument(_flag(name), dest=f"no_{name}", action="store_true", help=f"skip {step.title}")
        g.add_argument("--rounding-rows", type=int, default=MAX_ROWS, metavar="N",
                       help=f"input rows per layer weight rounding fits on: its CPU budget (default {MAX_ROWS}); "
                            "a layer with more weights per channel than rows is left to nearest rounding")

    @staticmethod
    def steps(args) -> list:
        """The steps asked for (all but the ``--no-<step>`` ones; none with ``--no-improve``)."""
        if getattr(args, "no_improve", False):
            return []
        return [s for s in STEP_NAMES if not getattr(args, f"no_{s}", False)]

    def validate(self, args) -> None:
        from ..validate import check_positive_int

        check_positive_int(getattr(args, "rounding_rows", MAX_ROWS), "--rounding-rows")

    def run(self, args, model, ranges, plan, calib_args, eval_args, data_args, *, imported=None):
        """Try the steps on ``model`` with ``ranges`` and ``plan`` where the calibration judged its
        ranges (or, with --ranges, by the same hold-out rule); print the table, record it in
        ``plan.steps``; return the :class:`~workbench.search.improve_steps.Improvement` (None: no step asked)."""
        from ..search.calibration import hold_out
        from ..search.improve_steps import improve

        wanted = self.steps(args)
        if not wanted:
            return None
        if imported is not None or model.has_qdq():
            print("note: accuracy steps skipped: the model is already quantized; its own scales are kept.")
            return None
        outcome = getattr(calib_args, "outcome", None)
        if outcome is not None and outcome.evaluator is not None and outcome.evaluator.model is model:
            holdout, evaluator = outcome.holdout, outcome.evaluator
        else:  # --ranges: no calibration ran here; the same hold-out rule
            evaluator = eval_args.parse(args, model)
            eval_data = eval_args.data.parse(args, model) if eval_args.data.given(args) else None
            holdout = hold_out(data_args.parse(args, model, limit=args.samples), eval_data)
        result = improve(model, ranges, plan, holdout, evaluator, steps=wanted, batch_size=args.batch_size,
                         params=calib_args.params(args), rounding_rows=args.rounding_rows)
        print_steps(result)
        plan.steps = result.record()
        return result


def print_steps(result) -> None:
    """The step table: step, layers touched, output SQNR and metric before/after, kept or why not, seconds."""
    def f(v):
        return "-" if v is None else f"{v:.2f}"

    print(f"Accuracy steps (output vs FP32 on {result.judged_on}, exact ONNX semantics; {result.seconds:.1f} s):")
    print(f"  {'step':<16} {'layers':>6} {'SQNR dB':>15} {'metric':>15} {'seconds':>7}  kept")
    for r in result.table():
        sq = f"{f(r['sqnr_before'])} -> {f(r['sqnr_after'])}"
        me = f"{f(r['metric_before'])} -> {f(r['metric_after'])}" if r["metric_before"] is not None else "-"
        kept = "applied" if r["applied"] else "skipped"
        print(f"  {r['step']:<16} {r['layers']:>6} {sq:>15} {me:>15} {r['seconds']:>7.1f}  {kept}"
              + (f": {r['reason']}" if r["reason"] else ""))
