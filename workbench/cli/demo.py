"""``workbench demo``: the whole pipeline on the bundled sample, from the command line."""
from __future__ import annotations

import time
from pathlib import Path


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
    paths = sample_paths()
    out = _new_folder(args.output)
    kinds = ("qdq", "ort", "cpu_uint8")
    files = [out / "statistics.npz"] + export_result_files(out / "model", kinds)
    result = ResultWriter(files + [recipe_path(out / "model")],
                          inputs=input_paths(("the sample model", paths["model"]),
                                             ("the sample photos", paths["calib"]),
                                             ("the sample photos", paths["eval"])), what="demo result")
    with result:
        stats, evaluator, model, ranges, res, results = _run(args, paths, out, kinds, result)
        from .recipe_args import demo_recipe

        write_recipe(result, recipe_path(out / "model"),
                     demo_recipe(args, out / "model", model, paths, stats, evaluator, ranges, res.plan), files)
    written = report_written_files(evaluator, results)
    met = res.target.met(written["qdq"])  # the claim, on the TensorRT file as written
    print(f"{'Target met' if met else 'Target NOT met'} ({res.target.text}) by the written TensorRT file "
          f"{results['qdq'].onnx_path.name} on all {evaluator.num_samples} evaluation photos, exact ONNX semantics.")
    fp32 = evaluator.fp32_latency()
    print("\n== ONNX Runtime CPU latency, as deployed (not a proxy for TensorRT speed)")
    for kind in ("ort", "cpu_uint8"):
        lat = evaluator.measure_latency(str(results[kind].onnx_path))
        print(f"{results[kind].onnx_path.name}: " + ", ".join(
            f"batch {b}: {v.median_ms:.1f} ms (FP32 {fp32[b].median_ms:.1f} ms)" for b, v in lat.items()))
    print(f"\nEverything is in {out}/. Next: `workbench lab` for the interactive workbench.")
    return 0


def _run(args, paths, out: Path, kinds, result):
    """Calibrate, compare methods, search and export (staged in ``result``)."""
    import pandas as pd

    from ..calib.collect import collect_statistics
    from ..data import PRESETS, open_data
    from ..evaluate.evaluator import Evaluator
    from ..export import export_result
    from ..graph.model import ModelInfo
    from ..precision.plan import PrecisionPlan
    from ..calib.ranges import DEFAULT_METHOD, METHODS, compute_ranges
    from ..search.sensitivity import auto_mixed_precision
    from .common import progress_bar

    pd.set_option("display.width", 160)
    print(f"== Sample: {paths['model'].name}, calibration photos {paths['calib']}, evaluation photos {paths['eval']}")
    model = ModelInfo.from_path(paths["model"])
    pre = PRESETS[paths["preset"]]
    calib = open_data(paths["calib"], model, preprocess=pre, limit=args.samples)
    stats = collect_statistics(model, calib, progress=True)
    print(f"Collected histograms of {len(stats.collectors)} tensors on {stats.num_samples} photos "
          f"in {stats.seconds:.1f} s; saving them to {out / 'statistics.npz'}")
    stats.save(result.path(out / "statistics.npz"))

    evaluator = Evaluator(model, open_data(paths["eval"], model, preprocess=pre))
    plan = PrecisionPlan.default(model)
    print(f"\n== Default plan: {len(plan.int8_nodes())} INT8 nodes of {len(plan)}; each method on "
          f"{evaluator.num_samples} held-out photos (the TensorRT Q/DQ file, exact ONNX semantics, vs FP32)")
    rows = []
    for method in METHODS:
        ranges = compute_ranges(stats, method)
        s = evaluator.evaluate(plan, ranges, per_layer=False, variant="trt").summary()  # the TensorRT file
        rows.append({"method": method, "top1_agreement": s["top1_agreement"], "cosine": s["cosine"],
                     "sqnr_db": s["sqnr_db"], "default": "<-" if method == DEFAULT_METHOD else ""})
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))

    ranges = compute_ranges(stats, DEFAULT_METHOD)
    print(f"\n== Automatic mixed precision to {args.target} (most sensitive nodes to FP16)")
    t0 = time.perf_counter()
    with progress_bar("Mixed-precision search", "step") as progress:
        res = auto_mixed_precision(evaluator, ranges, plan, args.target, progress=progress)
    cols = [c for c in ("n_fallback", "n_int8", "top1_agreement", "near_ties", "sqnr_db", "cosine", "meets_target",
                        "measured_on") if c in res.curve]
    print(res.curve[cols].drop_duplicates(["n_fallback", "measured_on"]).to_string(
        index=False, float_format=lambda v: f"{v:.4f}"))
    convs = [n for n in res.plan.int8_nodes() if res.plan[n].op_type == "Conv"]
    for note in res.notes:
        print(f"note: {note}")
    print(f"Search done in {time.perf_counter() - t0:.1f} s: {len(res.fallback)} node(s) in FP16 "
          f"({', '.join(res.fallback) or '-'}); {len(convs)} of {model.op_counts.get('Conv', 0)} Conv nodes "
          f"stay INT8.\n{res.describe()}")

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
    p.set_defaults(func=cmd_demo)
