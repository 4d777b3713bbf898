"""``workbench demo``: the whole pipeline on the bundled sample, from the command line.

It calibrates through the one calibration path (:func:`workbench.search.calibration.calibrate`,
default method and hold-out rule, as ``quantize --eval-data`` does: statistics from every
calibration photo, ranges judged on the evaluation photos) and every "met" it prints is the
verdict of :mod:`workbench.search.file_check` on the TensorRT file as written to disk.
"""
from __future__ import annotations

import time
from pathlib import Path

from .executor_args import ExecutorArgs

EXECUTOR = ExecutorArgs()


def _new_folder(base: str) -> Path:
    """``base`` if it does not exist yet, else ``base_2``, ``base_3``, ... (never reuse a folder;
    it is created only when the whole result is written)."""
    path, i = Path(base), 2
    while path.exists():
        path, i = Path(f"{base}_{i}"), i + 1
    return path


def cmd_demo(args) -> int:
    from ..export import export_result_files
    from ..outputs.names import recipe_path
    from ..outputs.recipe import write_recipe
    from ..outputs.writer import ResultWriter, input_paths
    from ..sample import sample_paths
    from ..validate import check_positive_int
    from .common import report_written_files

    check_positive_int(args.samples, "--samples", allow_none=True)
    EXECUTOR.validate(args)
    paths = sample_paths()
    out = _new_folder(args.output)
    kinds = ("qdq", "ort", "cpu_uint8")
    files = [out / "statistics.npz"] + export_result_files(out / "model", kinds)
    result = ResultWriter(files + [recipe_path(out / "model")],
                          inputs=input_paths(("the sample model", paths["model"]),
                                             ("the sample photos", paths["calib"]),
                                             ("the sample photos", paths["eval"])), what="demo result")
    with result, EXECUTOR.parse(args) as executor:
        stats, evaluator, model, ranges, res, results = _run(args, paths, out, kinds, result, executor)
        EXECUTOR.print_reruns(executor)
        from .recipe_args import demo_recipe

        write_recipe(result, recipe_path(out / "model"),
                     demo_recipe(args, out / "model", model, paths, stats, evaluator, ranges, res.plan), files)
    report_written_files(evaluator, {k: v for k, v in results.items() if k != "qdq"})
    check = check_written_file(evaluator, res.target, results["qdq"].onnx_path)
    print(f"{results['qdq'].onnx_path.name}: {check.describe()}")
    if res.met != check.met:  # the file on disk is what counts
        print(f"note: the search's in-memory build said the target was {'met' if res.met else 'missed'}; "
              "the written file's verdict above is the one that holds.")
    print(f"{'Target met' if check.met else 'Target NOT met'} ({res.target.text}) by the written TensorRT file "
          f"{results['qdq'].onnx_path.name} on all {check.samples} evaluation photos, {check.semantics}.")
    fp32 = evaluator.fp32_latency()
    print("\n== ONNX Runtime CPU latency, as deployed (not a proxy for TensorRT speed)")
    for kind in ("ort", "cpu_uint8"):
        lat = evaluator.measure_latency(str(results[kind].onnx_path))
        print(f"{results[kind].onnx_path.name}: " + ", ".join(
            f"batch {b}: {v.median_ms:.1f} ms (FP32 {fp32[b].median_ms:.1f} ms)" for b, v in lat.items()))
    print(f"\nEverything is in {out}/. Next: `workbench lab` for the interactive workbench.")
    return 0


def check_written_file(evaluator, target, path: Path):
    """The verdict of :mod:`workbench.search.file_check` on the file at ``path`` as written: every
    evaluation sample, exact ONNX semantics, the figure on the samples the search did not choose on."""
    from ..graph.semantics import EXACT, describe
    from ..search.file_check import judge_outputs, selection_split

    outputs = evaluator.run(str(path), optimization=EXACT)
    return judge_outputs(evaluator, outputs, target, selection_split(evaluator.num_samples), semantics=describe(EXACT))


def _run(args, paths, out: Path, kinds, result, executor=None):
    """Calibrate, compare methods, search and export (staged in ``result``)."""
    import pandas as pd

    from ..calib.ranges import METHODS
    from ..calib.registry import DEFAULT_METHOD
    from ..data import PRESETS, open_data
    from ..evaluate.evaluator import Evaluator
    from ..export import export_result
    from ..graph.model import ModelInfo
    from ..precision.plan import PrecisionPlan
    from ..search.calibration import calibrate, choose_ranges
    from ..search.sensitivity import auto_mixed_precision
    from .common import progress_bar

    pd.set_option("display.width", 160)
    print(f"== Sample: {paths['model'].name}, calibration photos {paths['calib']}, evaluation photos {paths['eval']}")
    model = ModelInfo.from_path(paths["model"])
    pre = PRESETS[paths["preset"]]
    calib = open_data(paths["calib"], model, preprocess=pre, limit=args.samples)
    evaluator = Evaluator(model, open_data(paths["eval"], model, preprocess=pre))
    plan = PrecisionPlan.default(model)
    # the one calibration path: its default method and hold-out rule, as `quantize --eval-data`
    with progress_bar(f"{DEFAULT_METHOD} ranges", "run") as bar:
        outcome = calibrate(model, calib, method=DEFAULT_METHOD, evaluator=evaluator, plan=plan,
                            collect_progress=True, search_progress=bar, executor=executor)
    stats = outcome.stats
    print(f"Collected histograms of {len(stats.collectors)} tensors on {stats.num_samples} photos "
          f"in {getattr(stats, 'seconds', 0.0):.1f} s; saving them to {out / 'statistics.npz'}")
    print(f"note: {outcome.holdout.note()}")
    if outcome.auto is not None:
        print(f"{DEFAULT_METHOD} ranges: {outcome.auto.summary()}")
    for note in outcome.notes:
        print(f"WARNING: {note}")
    stats.save(result.path(out / "statistics.npz"))

    print(f"\n== Default plan: {len(plan.int8_nodes())} INT8 nodes of {len(plan)}; each method on "
          f"{evaluator.num_samples} held-out photos (the TensorRT Q/DQ file, exact ONNX semantics, vs FP32)")
    rows = []
    for method in (*METHODS, DEFAULT_METHOD):
        ranges = outcome.ranges if method == DEFAULT_METHOD else choose_ranges(
            stats, method, evaluator=evaluator, holdout=outcome.holdout, plan=plan).ranges
        s = evaluator.evaluate(plan, ranges, per_layer=False, variant="trt").summary()  # the TensorRT file
        rows.append({"method": method, "top1_agreement": s["top1_agreement"], "cosine": s["cosine"],
                     "sqnr_db": s["sqnr_db"], "default": "<-" if method == DEFAULT_METHOD else ""})
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))

    ranges = outcome.ranges
    print(f"\n== Automatic mixed precision to {args.target} (most sensitive nodes to FP16)")
    t0 = time.perf_counter()
    with progress_bar("Mixed-precision search", "step") as progress:
        res = auto_mixed_precision(evaluator, ranges, plan, args.target, progress=progress, executor=executor)
    cols = [c for c in ("n_fallback", "n_int8", "top1_agreement", "near_ties", "sqnr_db", "cosine", "meets_target",
                        "measured_on") if c in res.curve]
    print(res.curve[cols].drop_duplicates(["n_fallback", "measured_on"]).to_string(
        index=False, float_format=lambda v: f"{v:.4f}"))
    convs = [n for n in res.plan.int8_nodes() if res.plan[n].op_type == "Conv"]
    for note in res.notes:
        print(f"note: {note}")
    print(f"Search done in {time.perf_counter() - t0:.1f} s: {len(res.fallback)} node(s) in FP16 "
          f"({', '.join(res.fallback) or '-'}), chosen on {res.search_samples} samples; {len(convs)} of "
          f"{model.op_counts.get('Conv', 0)} Conv nodes stay INT8. The verdict follows, on the file as written.")

    print("\n== Export")
    results = export_result(model, ranges, res.plan, out / "model", kinds=kinds, result=result)
    print(results["qdq"].describe())
    return stats, evaluator, model, ranges, res, results


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the bundled sample (CLI demo)",
                       description="Calibrate the bundled EfficientNet-Lite0 on its photos, compare the "
                                   "range methods, search a mixed-precision plan to a target, export "
                                   "the TensorRT Q/DQ model and report ONNX Runtime accuracy and latency.")
    p.add_argument("-o", "--output", default="workbench_demo",
                   help="output folder (a new one: _2, _3... is appended if it exists)")
    p.add_argument("--samples", type=int, default=None, help="calibration photos to use (default all 64)")
    p.add_argument("--target", default="top1>=0.99", help="accuracy target for the search")
    EXECUTOR.add(p)
    p.set_defaults(func=cmd_demo)
