"""Calibration cost: our statistics collection vs plain ONNX Runtime inference and ORT's calibrators.

Usage:
    python benchmarks/calibration.py                  # 64, 256 and 1024 samples (several minutes)
    python benchmarks/calibration.py --quick          # 64 samples only
    python benchmarks/calibration.py --samples 64,256 --json calib.json

On the sample model (EfficientNet-Lite0) and the same samples for every contender, measures wall
time and peak memory of:
  read          loading the sample files only (the data cost every other row includes)
  ort_fp32      plain ONNX Runtime FP32 inference (all graph optimizations): the baseline
  ort_fp32_noopt  the same with graph optimizations off (what ORT's calibrators run)
  ours          workbench.calib.collect.collect_statistics (default tensors: inputs of INT8 nodes)
  ours_all      the same observing every float tensor (ORT's calibrators observe all of them)
  ort_minmax / ort_entropy / ort_percentile
                onnxruntime.quantization create_calibrator + collect_data + compute_data

Samples: the 64 calibration + 41 evaluation photos are decoded once and written as .npy files
(sample i = photo i % 105 with a deterministic crop offset / horizontal flip, see
_common.VARIATIONS), so every contender reads exactly the same arrays; decoding is excluded from
all, reading the .npy files (page-cached) is included in all (the ``read`` row shows its cost).
Each contender runs in its own process, so its peak RSS (ru_maxrss) is its own; the baseline RSS
after imports and model load is reported so the increment is visible. Every child has an
address-space limit (--mem-limit-gb) so a runaway calibrator fails with "out of memory at X GB"
instead of taking the shared machine down; ORT's histogram calibrators are not run at a larger
sample count once a smaller one used more than --skip-above-gb (the figure is extrapolated).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

CONTENDERS = ("read", "ort_fp32", "ort_fp32_noopt", "ours", "ours_all",
              "ort_minmax", "ort_entropy", "ort_percentile")
ORT_METHODS = {"ort_minmax": "MinMax", "ort_entropy": "Entropy", "ort_percentile": "Percentile"}
# Goal thresholds (from the issue).
GOAL_COLLECT_VS_INFERENCE = 1.3
GOAL_SPEEDUP_VS_ORT = 3.0
GOAL_MEMORY_VS_ORT = 10.0
GOAL_AT_SAMPLES = 256
FLAT_TOLERANCE = 1.10  # "flat": peak RSS at the largest count within 10 % of the smallest's


# -- child side ---------------------------------------------------------------------------------
def _session(path: str, optimize: bool, threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                     else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def child(args) -> dict:
    """Run one contender over the samples in ``args.folder``; return its measurements."""
    if args.mem_limit_gb:
        C.limit_address_space(args.mem_limit_gb)
    folder = Path(args.folder)
    name = args.child
    import numpy as np  # noqa: F401
    import onnx
    import onnxruntime  # noqa: F401

    if name.startswith("ours"):
        from workbench.calib.collect import collect_statistics, tensors_to_observe
        from workbench.data import open_data
        from workbench.graph.model import ModelInfo
        from workbench.calib.ranges import compute_ranges

        model = ModelInfo.from_path(C.SAMPLE_MODEL)
    elif name.startswith("ort_") and name in ORT_METHODS:
        from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

        model = onnx.load(str(C.SAMPLE_MODEL))
    else:
        model = onnx.load(str(C.SAMPLE_MODEL))
    base_rss, base_peak = C.current_rss_mb(), C.peak_rss_mb()
    out = {"contender": name, "samples": args.n, "baseline_rss_mb": base_rss}
    t0 = time.perf_counter()
    try:
        if name == "read":
            count = sum(b["input"].shape[0] for b in C.npy_batches(folder))
            out.update(setup_s=0.0, run_s=time.perf_counter() - t0, checked=count)
        elif name in ("ort_fp32", "ort_fp32_noopt"):
            sess = _session(str(C.SAMPLE_MODEL), name == "ort_fp32", args.threads)
            t1 = time.perf_counter()
            count = 0
            for feed in C.npy_batches(folder):
                sess.run(None, feed)
                count += feed["input"].shape[0]
            out.update(setup_s=t1 - t0, run_s=time.perf_counter() - t1, checked=count)
        elif name.startswith("ours"):
            tensors = "all" if name == "ours_all" else "default"
            data = open_data(folder, model)
            stats = collect_statistics(model, data, tensors=tensors, batch_size=C.BATCH_SIZE,
                                       progress=False, threads=args.threads)
            total = time.perf_counter() - t0
            t1 = time.perf_counter()
            ranges = compute_ranges(stats, "entropy")  # every method's amax, as a user gets them
            compute = time.perf_counter() - t1
            t2 = time.perf_counter()
            data.fingerprint()
            fingerprint = time.perf_counter() - t2
            # collect_statistics' own clock starts after the session is created.
            out.update(setup_s=total - stats.seconds, run_s=stats.seconds, compute_s=compute,
                       fingerprint_s=fingerprint, checked=stats.num_samples,
                       tensors=len(tensors_to_observe(model, tensors)),
                       minmax_amax={n: r.amax_by_method["minmax"] for n, r in ranges.tensors.items()})
        else:
            method = getattr(CalibrationMethod, ORT_METHODS[name])
            with tempfile.TemporaryDirectory() as tmp:
                cal = create_calibrator(str(C.SAMPLE_MODEL), augmented_model_path=str(Path(tmp) / "aug.onnx"),
                                        calibrate_method=method)
                if args.threads:  # same thread count as the other contenders; ORT's own session options
                    cal.infer_session = _session(cal.augmented_model_path, False, args.threads)
                t1 = time.perf_counter()
                cal.collect_data(C.make_ort_reader(lambda: C.npy_batches(folder)))
                t2 = time.perf_counter()
                result = cal.compute_data()
                t3 = time.perf_counter()
            out.update(setup_s=t1 - t0, run_s=t2 - t1, compute_s=t3 - t2, tensors=len(result.keys()))
            if name == "ort_minmax":
                out["minmax_amax"] = {k: float(max(abs(float(np.min(v.range_value[0]))),
                                                   abs(float(np.max(v.range_value[1])))))
                                      for k, v in result.items()}
    except BaseException as exc:  # noqa: BLE001 - the parent must learn how the child failed
        if C.is_out_of_memory(exc):
            out["error"] = f"out of memory at {args.mem_limit_gb:.1f} GB address-space limit"
        else:
            out["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = C.peak_rss_mb()
    out["increment_mb"] = out["peak_rss_mb"] - base_rss
    out["baseline_peak_mb"] = base_peak
    return out


# -- parent side --------------------------------------------------------------------------------
def measure(contender: str, n: int, folder: Path, work: Path, args) -> dict:
    limit = min(args.mem_limit_gb, max(2.0, C.mem_available_gb() - 3.0))
    child_args = ["--child", contender, "--n", n, "--folder", folder, "--mem-limit-gb", f"{limit:.2f}"]
    if args.threads:
        child_args += ["--threads", args.threads]
    print(f"  {contender:15s} {n:5d} samples (load {os.getloadavg()[0]:.1f}) ...", end="", flush=True)
    r = C.run_child(Path(__file__), child_args, work / f"{contender}_{n}.json", args.timeout)
    r.setdefault("contender", contender)
    r.setdefault("samples", n)
    r["mem_limit_gb"] = limit
    if "error" in r:
        print(f" {r['error']}")
    else:
        print(f" {r['seconds']:.2f} s, peak {r['peak_rss_mb']:.0f} MB")
    return r


def not_run(prev: dict, n: int) -> dict:
    """The row of an ORT histogram calibrator not run at ``n`` samples because of a smaller run.

    After an out-of-memory failure the larger count would fail too; after a run above
    --skip-above-gb, memory is extrapolated linearly in the sample count (ORT keeps every
    activation of every sample until it histograms them) and time likewise.
    """
    if "error" in prev:
        return {"contender": prev["contender"], "samples": n, "skipped": True,
                "mem_limit_gb": prev.get("mem_limit_gb"),
                "error": f"not run: already {prev['error']} with {prev['samples']} samples"}
    per_sample = prev["increment_mb"] / prev["samples"]
    est = prev["baseline_rss_mb"] + per_sample * n
    return {"contender": prev["contender"], "samples": n, "skipped": True, "extrapolated": True,
            "peak_rss_mb": est, "increment_mb": per_sample * n, "baseline_rss_mb": prev["baseline_rss_mb"],
            "seconds": prev["seconds"] / prev["samples"] * n,
            "error": f"not run: {prev['samples']} samples already used {prev['peak_rss_mb'] / 1024:.1f} GB; "
                     f"extrapolated ~{est / 1024:.1f} GB ({per_sample:.1f} MB/sample), time linearly"}


def minmax_check(results: list) -> list:
    """Compare our minmax amax with ORT MinMax's max |x| on the tensors both observed."""
    checks = []
    for n in sorted({r["samples"] for r in results}):
        ours = next((r for r in results if r["samples"] == n and r["contender"] == "ours_all"
                     and "minmax_amax" in r), None) or next(
            (r for r in results if r["samples"] == n and r["contender"] == "ours" and "minmax_amax" in r), None)
        ort = next((r for r in results if r["samples"] == n and r["contender"] == "ort_minmax"
                    and "minmax_amax" in r), None)
        if not ours or not ort:
            continue
        common = sorted(set(ours["minmax_amax"]) & set(ort["minmax_amax"]))
        rel = [abs(ours["minmax_amax"][t] - ort["minmax_amax"][t]) / max(abs(ort["minmax_amax"][t]), 1e-12)
               for t in common]
        worst = max(range(len(rel)), key=rel.__getitem__) if rel else None
        checks.append({"samples": n, "tensors_compared": len(common), "ours": ours["contender"],
                       "max_rel_diff": max(rel) if rel else float("nan"),
                       "worst_tensor": common[worst] if worst is not None else None})
    return checks


def summarize(results: list, args) -> dict:
    rows = []
    base = {r["samples"]: r for r in results if r["contender"] == "ort_fp32" and "error" not in r}
    for r in results:
        b = base.get(r["samples"])
        row = {"contender": r["contender"], "samples": r["samples"], "seconds": r.get("seconds"),
               "setup_s": r.get("setup_s"), "run_s": r.get("run_s"), "compute_s": r.get("compute_s"),
               "x_inference": (r["seconds"] / b["seconds"]) if b and r.get("seconds") else None,
               "peak_rss_mb": r.get("peak_rss_mb"), "baseline_mb": r.get("baseline_rss_mb"),
               "increment_mb": r.get("increment_mb"), "tensors": r.get("tensors"),
               "note": ("extrapolated, not run" if r.get("extrapolated") else
                        "not run" if r.get("skipped") else "FAILED" if r.get("error") else "")}
        rows.append(row)
    C.print_table(rows, ["contender", "samples", "seconds", "x_inference", "setup_s", "run_s", "compute_s",
                         "peak_rss_mb", "baseline_mb", "increment_mb", "tensors", "note"],
                  "Calibration cost (x_inference = seconds / ort_fp32 seconds at the same sample count)", 2)
    for r in results:
        if r.get("error"):
            print(f"  note: {r['contender']} at {r['samples']}: {r['error']}")

    print("\nGoal checks")
    goals = []
    by = {(r["contender"], r["samples"]): r for r in results}
    for n in sorted(base):
        ours = by.get(("ours", n))
        if ours and "error" not in ours:
            ratio = ours["seconds"] / base[n]["seconds"]
            loop = ours["run_s"] / base[n]["run_s"]
            goals.append(C.check_line(
                f"collect <= {GOAL_COLLECT_VS_INFERENCE}x plain inference ({n} samples)", ratio <= GOAL_COLLECT_VS_INFERENCE,
                f"{ours['seconds']:.2f} s vs {base[n]['seconds']:.2f} s = {ratio:.2f}x "
                f"(loop only {ours['run_s']:.2f} vs {base[n]['run_s']:.2f} s = {loop:.2f}x)"))
    n = GOAL_AT_SAMPLES if ("ours", GOAL_AT_SAMPLES) in by else max((s for c, s in by if c == "ours"), default=None)
    ours = by.get(("ours", n))
    for name in ("ort_entropy", "ort_percentile"):
        ort = by.get((name, n))
        if not ours or "error" in ours or not ort:
            goals.append(C.check_line(f"{name} vs ours ({n} samples)", None, "not measured"))
            continue
        if "error" not in ort or ort.get("extrapolated"):
            speed = ort["seconds"] / ours["seconds"]
            goals.append(C.check_line(
                f">= {GOAL_SPEEDUP_VS_ORT}x faster than {name} ({n} samples)", speed >= GOAL_SPEEDUP_VS_ORT,
                f"{ort['seconds']:.2f} s vs ours {ours['seconds']:.2f} s = {speed:.1f}x"
                + (" (ORT extrapolated)" if ort.get("extrapolated") else "")))
            mem = ort["peak_rss_mb"] / ours["peak_rss_mb"]
            inc = ort["increment_mb"] / max(ours["increment_mb"], 1.0)
            goals.append(C.check_line(
                f">= {GOAL_MEMORY_VS_ORT}x less peak memory than {name} ({n} samples)", mem >= GOAL_MEMORY_VS_ORT,
                f"peak {ort['peak_rss_mb']:.0f} MB vs ours {ours['peak_rss_mb']:.0f} MB = {mem:.1f}x "
                f"(increment over baseline {ort['increment_mb']:.0f} vs {ours['increment_mb']:.0f} MB = {inc:.1f}x)"
                + (" (ORT extrapolated)" if ort.get("extrapolated") else "")))
        elif "out of memory" not in ort.get("error", "") or not ort.get("mem_limit_gb"):
            goals.append(C.check_line(f"{name} vs ours ({n} samples)", None, f"ORT failed: {ort['error']}"))
        else:  # ran out of memory under the limit: a lower bound
            bound = ort["mem_limit_gb"] * 1024
            goals.append(C.check_line(
                f">= {GOAL_MEMORY_VS_ORT}x less peak memory than {name} ({n} samples)",
                bound / ours["peak_rss_mb"] >= GOAL_MEMORY_VS_ORT,
                f"ORT {ort['error']}; ours {ours['peak_rss_mb']:.0f} MB: ratio > {bound / ours['peak_rss_mb']:.1f}x"))
            goals.append(C.check_line(f">= {GOAL_SPEEDUP_VS_ORT}x faster than {name} ({n} samples)", None,
                                      f"ORT did not finish ({ort['error']})"))
    ours_runs = sorted((s, r) for (c, s), r in by.items() if c == "ours" and "error" not in r)
    if len(ours_runs) >= 2:
        (n0, r0), (n1, r1) = ours_runs[0], ours_runs[-1]
        growth = r1["peak_rss_mb"] / r0["peak_rss_mb"]
        goals.append(C.check_line(
            f"our peak memory flat from {n0} to {n1} samples (within {FLAT_TOLERANCE:.2f}x)", growth <= FLAT_TOLERANCE,
            f"{r0['peak_rss_mb']:.0f} MB -> {r1['peak_rss_mb']:.0f} MB = {growth:.3f}x "
            f"(increment {r0['increment_mb']:.0f} -> {r1['increment_mb']:.0f} MB)"))
    for chk in minmax_check(results):
        goals.append(C.check_line(
            f"{chk['ours']} minmax amax == ORT MinMax max|x| ({chk['samples']} samples)", chk["max_rel_diff"] <= 1e-3,
            f"{chk['tensors_compared']} tensors, max relative difference {chk['max_rel_diff']:.2e} "
            f"(at '{chk['worst_tensor']}'; ours runs the optimized graph, ORT the unoptimized one)"))
    for r in results:
        r.pop("minmax_amax", None)
    return {"machine": C.machine_line(), "rows": rows, "goals": goals, "raw": results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="64 samples only")
    ap.add_argument("--samples", default="64,256,1024", help="comma-separated sample counts")
    ap.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset")
    ap.add_argument("--threads", type=int, default=None,
                    help="ONNX Runtime intra-op threads for every contender (default: ORT's own default)")
    ap.add_argument("--mem-limit-gb", type=float, default=18.0,
                    help="address-space limit of each child (capped at the memory available - 3 GB)")
    ap.add_argument("--skip-above-gb", type=float, default=8.0,
                    help="do not run an ORT histogram calibrator at a larger count once it used this much")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per child")
    ap.add_argument("--workdir", default=None, help="where the sample files go (default: a temp folder)")
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    # child mode (internal)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        result = child(args)
        Path(args.out).write_text(json.dumps(result))
        return

    counts = [64] if args.quick else sorted(int(s) for s in args.samples.split(","))
    contenders = [c for c in args.contenders.split(",") if c]
    unknown = set(contenders) - set(CONTENDERS)
    if unknown:
        ap.error(f"unknown contender(s) {sorted(unknown)}; choose from {', '.join(CONTENDERS)}")
    print(f"Machine: {C.machine_line()}; memory available now {C.mem_available_gb():.1f} GiB")
    print(f"Model: {C.SAMPLE_MODEL.name}, batch size {C.BATCH_SIZE}, threads: {args.threads or 'ORT default'}")
    tmp = tempfile.TemporaryDirectory(prefix="wb_calib_bench_") if args.workdir is None else None
    work = Path(args.workdir or tmp.name)
    try:
        from workbench.graph.model import ModelInfo

        t0 = time.perf_counter()
        paths = C.make_samples(work / "samples", max(counts), ModelInfo.from_path(C.SAMPLE_MODEL))
        print(f"Made {len(paths)} sample files in {time.perf_counter() - t0:.1f} s (decode excluded from all timings)")
        results, stopped = [], {}
        for n in counts:
            folder = C.link_subset(paths, n, work / f"n{n}")
            for c in contenders:
                if c in stopped:
                    results.append(not_run(stopped[c], n))
                    print(f"  {c:15s} {n:5d} samples ... skipped: {results[-1]['error']}")
                    continue
                r = measure(c, n, folder, work, args)
                results.append(r)
                too_big = "error" not in r and r["peak_rss_mb"] > args.skip_above_gb * 1024
                if c in ("ort_entropy", "ort_percentile") and (too_big or "out of memory" in r.get("error", "")):
                    stopped[c] = r
        summary = summarize(results, args)
        summary["samples"] = counts
        summary["threads"] = args.threads
        if args.json:
            C.write_json(args.json, summary)
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
