"""CLI commands that build and judge quantized models: quantize, evaluate, sensitivity, autoprec."""
from __future__ import annotations

import argparse
import json
from contextlib import contextmanager
from pathlib import Path

from .backends.cli import add_backend_argument
from .cli import add_data_args, open_data_from_args
from .errors import WorkbenchError


def _add_eval_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("evaluation data (held out from calibration; same preprocessing)")
    src = g.add_mutually_exclusive_group(required=required)
    src.add_argument("--eval-data", metavar="DIR", help="folder of evaluation images or arrays")
    src.add_argument("--eval-data-loader-script", metavar="FILE.py[:FUNC]", help="evaluation data loader")
    g.add_argument("--eval-samples", type=int, default=None, help="use at most N evaluation samples")
    _add_metric_arg(g)


def _add_metric_arg(g) -> None:
    g.add_argument("--metric-script", metavar="FILE.py[:FUNC]",
                   help="your accuracy metric: FUNC(outputs, labels=None) -> float, higher is better "
                        "(default FUNC: metric); reported as 'metric' and usable in --target 'metric>=X'")


def _add_calib_args(p: argparse.ArgumentParser) -> None:
    from .ranges import DEFAULT_METHOD, METHODS

    g = p.add_argument_group("calibration")
    g.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                   help=f"range method (default {DEFAULT_METHOD}, the most accurate on the sample; "
                        "'entropy' is TensorRT's EntropyCalibration2 as published, 'entropy_zero_fix' "
                        "the pytorch-quantization/ModelOpt variant)")
    g.add_argument("--percentile", type=float, default=99.99, help="p for --method percentile")
    g.add_argument("--ranges", metavar="ranges.json", help="reuse ranges from `workbench calibrate` "
                   "(checked against the model) instead of calibrating")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _add_plan_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("precision plan")
    g.add_argument("--plan", metavar="plan.json", help="start from a saved plan")
    g.add_argument("--base", choices=["fp32", "fp16"], default="fp32",
                   help="precision of nodes that are not INT8 (default fp32)")
    g.add_argument("--int8", action="append", default=[], metavar="PATTERN",
                   help="regex of node names to run in INT8 (repeatable)")
    g.add_argument("--fp16", action="append", default=[], metavar="PATTERN",
                   help="regex of node names to keep in FP16 (repeatable)")
    g.add_argument("--fp32", action="append", default=[], metavar="PATTERN",
                   help="regex of node names to keep in FP32 (repeatable)")
    g.add_argument("--op-fp16", action="append", default=[], metavar="OP", help="op type to keep in FP16")
    g.add_argument("--op-fp32", action="append", default=[], metavar="OP", help="op type to keep in FP32")


def ranges_from_args(args, model):
    """Calibrate (or load --ranges) and return Ranges for ``model``."""
    from .collect import collect_statistics
    from .errors import StaleError
    from .ranges import Ranges, compute_ranges

    if args.ranges:
        ranges = Ranges.load(args.ranges)
        if ranges.model_fingerprint and ranges.model_fingerprint != model.fingerprint():
            raise StaleError(f"'{args.ranges}' was calibrated for another model; recalibrate.")
        return ranges.with_method(args.method) if args.method != ranges.method else ranges
    data = open_data_from_args(args, model)
    stats = collect_statistics(model, data, batch_size=args.batch_size, progress=not args.quiet)
    return compute_ranges(stats, args.method, args.percentile)


def plan_from_args(args, model, ranges):
    """The default plan (or --plan) with the --int8/--fp16/--fp32 and --op-* overrides applied."""
    from .plan import PrecisionPlan

    plan = PrecisionPlan.load(args.plan, model) if args.plan else PrecisionPlan.default(model, args.base)
    for op in args.op_fp16:
        plan.set_op_type(op, "fp16")
    for op in args.op_fp32:
        plan.set_op_type(op, "fp32")
    for pattern in args.int8:
        plan.set_pattern(pattern, "int8")
    for pattern in args.fp16:
        plan.set_pattern(pattern, "fp16")
    for pattern in args.fp32:
        plan.set_pattern(pattern, "fp32")
    return plan.with_fp16_safety(model, ranges)


def load_metric(spec: str | None):
    """``FILE.py[:FUNC]`` -> FUNC (default ``metric``), called as ``FUNC(outputs, labels=None)``
    with ``outputs`` {output name: array over the evaluation samples, in data order}; it returns
    a float, higher is better (e.g. accuracy against labels the script loads itself)."""
    if not spec:
        return None
    from .data import load_function

    return load_function(spec, default="metric", what="metric script")


def evaluator_from_args(args, model):
    """An Evaluator on --eval-data (or, with a note, on the calibration data)."""
    from .evaluate import Evaluator

    metric_fn = load_metric(getattr(args, "metric_script", None))
    if args.eval_data or args.eval_data_loader_script:
        data = open_data_from_args(args, model, prefix="eval-", limit=args.eval_samples)
    else:
        print("note: no --eval-data given; evaluating on the calibration data (optimistic).")
        data = open_data_from_args(args, model, limit=args.eval_samples or args.samples)
    return Evaluator(model, data, batch_size=args.batch_size, metric_fn=metric_fn)


@contextmanager
def progress_bar(desc: str, unit: str, quiet: bool = False):
    """A tqdm bar driven by ``progress(done, total)`` callbacks (None when ``quiet``)."""
    if quiet:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(desc=desc, unit=unit)

    def update(done: int, total: int | None) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def _search_inputs(args):
    """Model, ranges, plan and evaluator for the sensitivity / autoprec commands."""
    from .model import ModelInfo

    model = ModelInfo.from_path(args.model)
    ranges = ranges_from_args(args, model)
    return model, ranges, plan_from_args(args, model, ranges), evaluator_from_args(args, model)


def new_outputs(args, *paths) -> None:
    """Refuse to replace existing files unless --overwrite (outputs go to new paths)."""
    existing = [str(p) for p in paths if p is not None and Path(p).exists()]
    if existing and not getattr(args, "overwrite", False):
        raise WorkbenchError(f"{', '.join(existing)} already exist(s); choose a new output path or pass --overwrite.")


def _print_table(df, title: str) -> None:
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 4):
        print(title)
        print(df.to_string(index=False))


def _write_json(path, obj) -> None:
    from ._io import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=1, default=str))


def cmd_quantize(args) -> int:
    from .export import export_model
    from .model import ModelInfo

    out = Path(args.output)
    ort_out = out.with_name(out.stem + ".ort" + out.suffix)
    cpu_out = out.with_name(out.stem + ".cpu_uint8" + out.suffix)
    new_outputs(args, out, None if args.no_eval_variant else ort_out, cpu_out if args.cpu_uint8 else None)
    model = ModelInfo.from_path(args.model)
    ranges = ranges_from_args(args, model)
    plan = plan_from_args(args, model, ranges)
    result = export_model(model, ranges, plan, out, variant="trt")
    print(f"INT8 nodes: {len(plan.int8_nodes())}, FP16: {len(plan.fp16_nodes())}, "
          f"FP32: {len(plan.nodes_with('fp32'))}")
    print(result.describe() if hasattr(result, "describe") else result)
    if not args.no_eval_variant:
        export_model(model, ranges, plan, ort_out, variant="ort", calibration_cache=False)
        print(f"For ONNX Runtime evaluation (FP16 emulated on CPU): {ort_out}")
    if args.cpu_uint8:
        export_model(model, ranges, plan, cpu_out, variant="cpu_uint8", calibration_cache=False)
        print(f"For ONNX Runtime CPU deployment (uint8 activations): {cpu_out}")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import Evaluator
    from .model import ModelInfo, load_model

    new_outputs(args, args.json)
    fp32 = ModelInfo.from_path(args.fp32_model)
    quant = load_model(args.quant_model)
    data = open_data_from_args(args, fp32)
    evaluator = Evaluator(fp32, data, batch_size=args.batch_size, metric_fn=load_metric(args.metric_script))
    if args.backend == "trt":
        from .backends import get_runner

        runner = get_runner(args.quant_model, backend="trt")
        outputs = {}
        chunks = [runner.infer(feed) for feed in evaluator.batches]
        import numpy as np

        outputs = {n: np.concatenate([c[n] for c in chunks]) for n in evaluator.output_names}
        table = evaluator.compare(outputs)
        result = {"backend": "trt", "outputs": table.to_dict(orient="records")}
        _print_table(table, f"TensorRT outputs vs FP32 (ONNX Runtime) on {evaluator.num_samples} samples")
    else:
        res = evaluator.evaluate_model(quant, latency=args.latency,
                                       optimization="all" if args.ort_fused else "disable")
        _print_table(res.outputs, f"Quantized vs FP32 on {evaluator.num_samples} samples (ONNX Runtime CPU)")
        result = {"backend": "ort", "samples": evaluator.num_samples,
                  "outputs": res.outputs.to_dict(orient="records")}
        if args.latency:
            fp = evaluator.fp32_latency()
            result["latency"] = {}
            for b, lat in res.latency.items():
                ratio = fp[b].median_ms / lat.median_ms
                speed = f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"
                print(f"batch {b}: quantized {lat.median_ms:.2f} ms, FP32 {fp[b].median_ms:.2f} ms "
                      f"(quantized {speed} than FP32); {lat.note}")
                result["latency"][b] = {"quantized": lat.to_dict(), "fp32": fp[b].to_dict()}
    if args.json:
        _write_json(args.json, result)
        print(f"Wrote {args.json}")
    return 0


def cmd_sensitivity(args) -> int:
    from ._io import atomic_write_text
    from .sensitivity import sensitivity

    new_outputs(args, args.output)
    model, ranges, plan, evaluator = _search_inputs(args)
    with progress_bar("Sensitivity", "node", args.quiet) as progress:
        table = sensitivity(evaluator, ranges, plan, samples=args.sens_samples, progress=progress)
    atomic_write_text(args.output, table.to_csv(index=False))
    _print_table(table.head(15), f"Most sensitive nodes ({table.attrs['samples']} samples; "
                                 f"all-INT8 baseline SQNR {table.attrs['baseline']['sqnr_db']:.1f} dB)")
    print(f"Wrote {args.output}")
    return 0


def cmd_autoprec(args) -> int:
    from .export import export_model
    from .sensitivity import auto_mixed_precision

    out = Path(args.output)
    curve_path = out.with_name(out.stem + ".curve.csv")
    new_outputs(args, out, curve_path)
    model, ranges, plan, evaluator = _search_inputs(args)
    with progress_bar("Mixed-precision search", "step", args.quiet) as progress:
        res = auto_mixed_precision(evaluator, ranges, plan, args.target, sensitivity_samples=args.sens_samples,
                                   latency_points=args.latency_points, progress=progress)
    cols = [c for c in ("n_fallback", "n_int8", "top1_agreement", "sqnr_db", "cosine", "meets_target",
                        "latency_ms_b1", "chosen") if c in res.curve]
    _print_table(res.curve[cols], f"Trade-off curve (target {res.target.text})")
    print(("Target met" if res.met else "Target NOT met even with every node in FP16") +
          f" with {len(res.fallback)} node(s) out of INT8: {', '.join(res.fallback) or '-'}")
    export_model(model, ranges, res.plan, out, variant="trt")
    final = evaluator.evaluate(res.plan, ranges, per_layer=False)
    _print_table(final.outputs, "Exported model (ONNX Runtime, FP16 emulated) vs FP32")
    from ._io import atomic_write_text

    atomic_write_text(curve_path, res.curve.to_csv(index=False))
    print(f"Wrote {out} and {curve_path}")
    return 0 if res.met else 1


def _search_parser(sub, name: str, help: str, description: str):
    """A sensitivity/autoprec parser: model, calibration and evaluation data, calibration and plan."""
    p = sub.add_parser(name, help=help, description=description)
    p.add_argument("model", help="FP32 ONNX model")
    add_data_args(p)
    _add_eval_args(p)
    _add_calib_args(p)
    _add_plan_args(p)
    return p


def register(sub) -> None:
    """Add quantize / evaluate / sensitivity / autoprec to the ``workbench`` CLI."""
    p = sub.add_parser("quantize", help="write a Q/DQ ONNX model for TensorRT (plus plan and cache)",
                       description="Calibrate (or reuse --ranges), apply the precision plan and write "
                                   "OUT.onnx with explicit Q/DQ and FP16 layers for TensorRT, "
                                   "OUT.ort.onnx for ONNX Runtime evaluation, OUT.plan.json and the "
                                   "calibration cache.")
    p.add_argument("model", help="FP32 ONNX model")
    add_data_args(p)
    _add_calib_args(p)
    _add_plan_args(p)
    p.add_argument("--cpu-uint8", action="store_true", help="also write the uint8 CPU deployment variant")
    p.add_argument("--no-eval-variant", action="store_true", help="do not write OUT.ort.onnx")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="output model path (new file)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("evaluate", help="compare a quantized model with its FP32 model",
                       description="Run both models on the data and report cosine, SQNR, max abs error "
                                   "and top-1 agreement per output (and CPU latency with --latency).")
    p.add_argument("fp32_model")
    p.add_argument("quant_model")
    add_data_args(p)
    add_backend_argument(p)
    p.add_argument("--latency", action="store_true", help="measure median latency at batch 1 and 8")
    _add_metric_arg(p)
    p.add_argument("--json", metavar="OUT.json", help="also write the results as JSON")
    p.add_argument("--ort-fused", action="store_true",
                   help="compute accuracy with ONNX Runtime's fused QDQ kernels, as a CPU deployment runs "
                        "the model (use for *.cpu_uint8.onnx); default: the Q/DQ graph's exact ONNX "
                        "semantics, which is what TensorRT computes")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=cmd_evaluate)

    p = _search_parser(sub, "sensitivity", "rank INT8 nodes by the error each one brings",
                       "Per INT8 node: output SQNR when only it is INT8, and the gain when only it "
                       "returns to FP16. Writes a CSV, most sensitive first.")
    p.add_argument("--sens-samples", type=int, default=16, help="evaluation samples per score (default 16)")
    p.add_argument("-o", "--output", required=True, metavar="table.csv")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=cmd_sensitivity)

    p = _search_parser(sub, "autoprec", "automatic mixed precision to an accuracy target",
                       "Falls back the most sensitive INT8 nodes to FP16 until the target holds on the "
                       "evaluation data. TARGET is METRIC OP VALUE with METRIC top1 (top-1 agreement with "
                       "FP32), top5, cosine, sqnr (dB), max_abs_error or metric (--metric-script), OP one of "
                       ">= > <= <, e.g. 'top1>=0.99' or 'sqnr>=30'. Exit status 1 when the target cannot be met.")
    p.add_argument("--target", default="top1>=0.99", help="accuracy target (default top1>=0.99)")
    p.add_argument("--sens-samples", type=int, default=16, help="evaluation samples for the ranking")
    p.add_argument("--latency-points", type=int, default=4,
                   help="curve points whose ONNX Runtime CPU latency is measured (default 4)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_autoprec)
