"""``workbench calibrate`` and ``workbench check-cache``."""
from __future__ import annotations

from pathlib import Path

from ..errors import WorkbenchError
from .args import CalibArgs, DataArgs, EvalArgs, ExecutorArgs, OutputArgs

CALIB_FILES = ("ranges.json", "ranges.csv", "calibration.cache", "calibration.cache.json", "statistics.npz")
EXPLAIN_FILE = "ranges_explain.csv"

_data = DataArgs()
_calib = CalibArgs(reuse_ranges=False)
_eval = EvalArgs()
_executor = ExecutorArgs()


def cmd_calibrate(args) -> int:
    from ..backends import trt_cache
    from ..calib import registry
    from .common import print_table, result_for
    from .qdq import ModelScaleArgs, clipping_summary

    _data.validate(args)
    _eval.data.validate(args)
    _calib.validate(args)
    _executor.validate(args)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise WorkbenchError(f"Output path '{out}' exists and is not a folder (-o names the output folder).")
    names = CALIB_FILES + ((EXPLAIN_FILE,) if args.explain else ())
    files = {name: out / name for name in names}
    # one result, one folder: an older run's explanation is removed when this run writes none
    stale = [] if args.explain else [out / EXPLAIN_FILE]
    with result_for(args, files.values(), "calibration result", folder=out, optional=stale) as result:
        model, qm = ModelScaleArgs().open(args)  # a Q/DQ model: its recovered FP32 graph
        data = _data.parse(args, model)
        tensors = ModelScaleArgs.tensors(qm) if args.tensors == "default" else args.tensors
        with _executor.parse(args) as executor:
            outcome = _calib.run(args, model, data, tensors, _eval, statistics=args.statistics, executor=executor)
        _executor.print_reruns(executor)
        stats = _calib.stats
        ranges = ModelScaleArgs.ranges(qm, outcome.ranges)
        stats.save(result.path(files["statistics.npz"]))
        ranges.save(result.path(files["ranges.json"]))
        ranges.write_csv(result.path(files["ranges.csv"]))
        trt_cache.write_calibration_cache(
            result.path(files["calibration.cache"]), ranges.scales(),
            algorithm=registry.cache_algorithm(outcome.method), provenance={
                "model": str(args.model), "model_fingerprint": model.fingerprint(),
                "data_fingerprint": data.fingerprint(), "method": outcome.method,
                "num_samples": stats.num_samples, "judged_on": outcome.holdout.description})
        if args.explain:
            table = _explain(args, model, ranges)
            from .._io import atomic_write_text
            from ..outputs.csvsafe import dataframe_csv

            atomic_write_text(result.path(files[EXPLAIN_FILE]), dataframe_csv(table))
    bad = stats.nonfinite_tensors()
    print(f"Calibrated {len(ranges.tensors)} tensors on {stats.num_samples} samples in "
          f"{stats.seconds:.1f} s ({outcome.method}).")
    if bad:
        print(f"WARNING: {len(bad)} tensors had NaN/Inf values: " + ", ".join(list(bad)[:10]))
    if qm is not None:  # the model's own scales against this calibration
        print("\n".join(clipping_summary(qm, stats)))
    if args.explain:
        cols = ["rank", "tensor", "chosen", "amax", "minmax_amax", "cost_db", "minmax_cost_db", "flags"]
        print_table(table[cols].head(15), f"Which tensor's threshold costs the most at the output "
                                          f"(output SQNR {table.attrs['baseline']['sqnr_db']:.1f} dB)")
        for row in table.head(5).itertuples():
            print(f"  {row.tensor}: {row.sentence}")
    print(f"Wrote {out}/: " + ", ".join(names))
    return 0


def _explain(args, model, ranges):
    """Range sensitivity on the held-out samples (the evaluation data, or the calibration
    samples the auto search held out, or, for a single method without --eval-data, the
    calibration data, said so)."""
    from ..search.range_checks import range_sensitivity
    from .common import progress_bar

    evaluator = _calib.evaluator
    if evaluator is None:
        evaluator = _eval.parse(args, model)
    with progress_bar("Range sensitivity", "run", args.quiet) as bar:
        return range_sensitivity(evaluator, ranges, samples=args.auto_samples, progress=bar)


_cache_data = DataArgs(required=False)


def cmd_check_cache(args) -> int:
    from ..backends.trt_cache import check_calibration_cache
    from ..outputs.names import sidecar_path
    from .qdq import read_if_quantized

    _cache_data.validate(args)
    model, _ = read_if_quantized(args.model)  # a Q/DQ model was calibrated as its recovered graph
    dfp = _cache_data.parse(args, model).fingerprint() if _cache_data.given(args) else None
    cache = check_calibration_cache(args.cache, model, data_fingerprint=dfp)
    head = f"'{args.cache}' ({cache.algorithm}, TensorRT {cache.version}): {len(cache.scales)} tensors"
    if not sidecar_path(args.cache).exists():
        print(f"{head}; every tensor exists in '{args.model}', but there is no provenance file "
              f"'{sidecar_path(args.cache)}', so whether it was calibrated for this model's weights "
              "(rather than another model of the same architecture) and this data cannot be checked. "
              "Recalibrate with `workbench calibrate` to get a checkable cache.")
        return 1
    print(f"{head}, consistent with '{args.model}'" + (" and the data" if dfp else "") + ".")
    return 0


def register(sub) -> None:
    p = sub.add_parser("calibrate", help="collect activation statistics and compute per-tensor ranges",
                       description="Run the FP32 model on calibration data, stream per-tensor |x| "
                                   "histograms and write ranges.json, ranges.csv, calibration.cache "
                                   "(TensorRT format) and statistics.npz into OUTDIR.")
    p.add_argument("model", help="FP32 ONNX model file")
    _data.add(p)
    _eval.add(p, _data)
    _calib.add(p)
    _executor.add(p)
    p.add_argument("--explain", action="store_true",
                   help=f"also rank the INT8 input tensors by what their threshold costs at the output "
                        f"(range sensitivity: float vs chosen vs min-max amax, the rest as chosen); writes "
                        f"{EXPLAIN_FILE}")
    p.add_argument("--tensors", choices=["default", "quantizable", "all"], default="default",
                   help="observe the inputs of nodes INT8 in the default plan (default), of every "
                        "INT8-capable node, or every float tensor")
    p.add_argument("--statistics", metavar="FILE", help="reuse a saved statistics.npz (checked for staleness)")
    OutputArgs("OUTDIR", "output folder").add(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("check-cache", help="check that a calibration cache belongs to a model (and data)",
                       description="Exit 0 when the cache's provenance file (CACHE.json) shows it was made "
                                   "for this model (and data); 2 with the reason when it is stale (another "
                                   "model, or other calibration data); 1 when it cannot be checked (no "
                                   "provenance file: only its tensor names could be compared).")
    p.add_argument("cache", help="calibration cache file")
    p.add_argument("model", help="the FP32 ONNX model it should belong to")
    _cache_data.add(p)
    p.set_defaults(func=cmd_check_cache)
