"""``workbench sensitivity`` (rank INT8 nodes) and ``workbench autoprec`` (mixed precision to a target)."""
from __future__ import annotations

from .args import CalibArgs, DataArgs, EvalArgs, ExecutorArgs, OutputArgs, PlanArgs
from .common import cli_inputs, output_stem, print_table, progress_bar, report_written_files, result_for
from .recipe_args import cli_recipe, write_recipe

_data = DataArgs()
_eval = EvalArgs()
_calib = CalibArgs()
_plan = PlanArgs()
_executor = ExecutorArgs()


def _validate(args) -> None:
    """Refuse bad numbers before any work (calibration would otherwise run first)."""
    from ..evaluate.metrics import Target
    from ..validate import check_nonnegative_int, check_positive_int

    _data.validate(args)
    _eval.data.validate(args)
    _calib.validate(args)
    _executor.validate(args)
    check_positive_int(args.sens_samples, "--sens-samples")
    if hasattr(args, "latency_points"):
        check_nonnegative_int(args.latency_points, "--latency-points")
    if hasattr(args, "target"):
        Target(args.target)


def _search_inputs(args, executor):
    """Model, ranges, plan and evaluator for the sensitivity / autoprec commands (the auto range
    search, when it runs, on ``executor`` too)."""
    from ..graph.model import ModelInfo

    model = ModelInfo.from_path(args.model)
    ranges = _calib.parse(args, model, _data, eval_args=_eval, plan_args=_plan, executor=executor)
    return model, ranges, _plan.parse(args, model, ranges), _eval.parse(args, model)


def cmd_sensitivity(args) -> int:
    from .._io import atomic_write_text
    from ..outputs.csvsafe import dataframe_csv
    from ..search.sensitivity import sensitivity

    _validate(args)
    with result_for(args, [args.output], "sensitivity table") as result, _executor.parse(args) as executor:
        model, ranges, plan, evaluator = _search_inputs(args, executor)
        with progress_bar("Sensitivity", "node", args.quiet) as progress:
            table = sensitivity(evaluator, ranges, plan, samples=args.sens_samples, progress=progress,
                                executor=executor)
        _executor.print_reruns(executor)
        atomic_write_text(result.path(args.output), dataframe_csv(table))
    print_table(table.head(15), f"Most sensitive nodes ({table.attrs['samples']} samples; "
                                f"all-INT8 baseline SQNR {table.attrs['baseline']['sqnr_db']:.1f} dB)")
    print(f"Wrote {args.output}")
    return 0


def cmd_autoprec(args) -> int:
    from .._io import atomic_write_text
    from ..outputs.csvsafe import dataframe_csv
    from ..export import export_result, export_result_files, export_result_stale
    from ..search.sensitivity import auto_mixed_precision

    _validate(args)
    stem = output_stem(args)
    from ..outputs import names

    curve_path = names.curve_path(stem)
    files = export_result_files(stem, ("qdq", "ort")) + [curve_path]
    written = files + [names.recipe_path(stem)]
    with result_for(args, written, "mixed-precision result",
                    optional=export_result_stale(stem, ("qdq", "ort"), written=written, inputs=cli_inputs(args))) \
            as out, _executor.parse(args) as executor:
        model, ranges, plan, evaluator = _search_inputs(args, executor)
        with progress_bar("Mixed-precision search", "step", args.quiet) as progress:
            res = auto_mixed_precision(evaluator, ranges, plan, args.target,
                                       sensitivity_samples=args.sens_samples,
                                       latency_points=args.latency_points, progress=progress, executor=executor)
        _executor.print_reruns(executor)
        cols = [c for c in ("n_fallback", "n_int8", "top1_agreement", "near_ties", "sqnr_db", "cosine",
                            "meets_target", "latency_ms_b1", "measured_on", "chosen") if c in res.curve]
        print_table(res.curve[cols], f"Trade-off curve (target {res.target.text}; emulated rows are the "
                                     "search's, the last row is the written file)")
        for note in res.notes:
            print(f"note: {note}")
        results = export_result(model, ranges, res.plan, stem, kinds=("qdq", "ort"), result=out)
        atomic_write_text(out.path(curve_path), dataframe_csv(res.curve))
        write_recipe(out, names.recipe_path(stem), cli_recipe(args, stem, model, ranges, res.plan, _data, _eval, _calib,
                                                             target=args.target), files)
    written = report_written_files(evaluator, results)
    # the claim, on the file as written to disk (exact ONNX semantics, every evaluation sample)
    met = res.target.met(written["qdq"])
    print(res.describe())
    print(f"{'Target met' if met else 'Target NOT met'} ({res.target.text}) by the written file "
          f"{results['qdq'].onnx_path.name} on all {evaluator.num_samples} evaluation samples, exact ONNX "
          f"semantics; {len(res.fallback)} node(s) out of INT8.")
    print(f"Wrote {', '.join(str(r.onnx_path) for r in results.values())}, {results['qdq'].plan_path} "
          f"and {curve_path}")
    return 0 if met else 1


def _search_parser(sub, name: str, help: str, description: str):
    """A sensitivity/autoprec parser: model, calibration and evaluation data, calibration and plan."""
    p = sub.add_parser(name, help=help, description=description)
    p.add_argument("model", help="FP32 ONNX model")
    _data.add(p)
    _eval.add(p, _data)
    _calib.add(p)
    _plan.add(p)
    _executor.add(p)
    return p


def register(sub) -> None:
    """Add ``sensitivity`` and ``autoprec`` to the ``workbench`` CLI."""
    p = _search_parser(sub, "sensitivity", "rank INT8 nodes by the error each one brings",
                       "Per INT8 node: output SQNR when only it is INT8, and the gain when only it "
                       "returns to FP16. Writes a CSV, most sensitive first.")
    p.add_argument("--sens-samples", type=int, default=16, help="evaluation samples per score (default 16)")
    OutputArgs("table.csv", "output CSV (new file)").add(p)
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
    OutputArgs("OUT.onnx", "output model path (new file)").add(p)
    p.set_defaults(func=cmd_autoprec)
