"""Accuracy and speed of our INT8 on the sample model, against ONNX Runtime's quantize_static.

Usage:
    python benchmarks/quantization.py                 # everything (a few minutes)
    python benchmarks/quantization.py --quick         # ORT MinMax settings only, fewer repeats
    python benchmarks/quantization.py --json quant.json

Calibrates on the 64 photos of sample_data/calib and compares with FP32 on the 41 photos of
sample_data/eval (preset "efficientnet-lite", batch 8). Every accuracy figure is computed with
exact ONNX semantics (ONNX Runtime graph optimizations off), ours and ONNX Runtime's alike
(TensorRT computes the same thing; ORT's optimized CPU path saturates on CPUs without VNNI).
Measures:
  1. our INT8 (default plan: 49 Conv, 9 residual Add, 1 Gemm) with the default method ``auto``
     (per-tensor amax chosen by the output on the eval photos, search time shown) and with every
     single range method: top-1 agreement with FP32, cosine and SQNR of the logits;
  2. onnxruntime.quantization.quantize_static on the same photos (QDQ format; per-channel
     on/off; MinMax / Entropy / Percentile; QInt8 symmetric or QUInt8 activations; QInt8
     symmetric weights); best shown; also run as an ORT user runs it (all optimizations);
  3. automatic mixed precision to top1>=0.99 on auto ranges and on mse ranges: nodes out of
     INT8, Conv nodes still INT8, search time, the trade-off curve;
  4. the time to re-export and re-evaluate one changed plan once statistics exist;
  5. ONNX Runtime CPU latency (batch 1 and 8) of FP32, our "ort" and "cpu_uint8" variants
     and ORT's best quantize_static model. CPU latency of the TensorRT-style Q/DQ model is no
     proxy for TensorRT speed;
  6. the realistic tiny models of tests/realistic_models.py (ReLU6 classifier, DBNet-like
     detector, CTC recognizer at opset 12, transformer block, orientation classifier): auto vs
     every method vs ORT's best quantize_static setting, task metric + SQNR, with time
     (``--realistic-only`` runs just this part, in about a minute).
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

GOAL_REEXPORT_S = 3.0
GOAL_TOP1 = 0.99
AUTO_SAMPLES = 16  # what `workbench quantize` uses by default (--auto-samples)


def ort_settings(quick: bool) -> list:
    """(label, method, per_channel, activation type, extra_options) of the quantize_static runs."""
    from onnxruntime.quantization import QuantType

    methods = ["MinMax"] if quick else ["MinMax", "Entropy", "Percentile"]
    out = []
    for method in methods:
        for per_channel in (False, True):
            out.append((f"{method} pc={per_channel} act=QInt8-sym", method, per_channel, QuantType.QInt8,
                        {"ActivationSymmetric": True, "WeightSymmetric": True}))
            out.append((f"{method} pc={per_channel} act=QUInt8", method, per_channel, QuantType.QUInt8,
                        {"WeightSymmetric": True}))
    return out


def run_ort_quantize(calib, evaluator, work: Path, quick: bool, model_path=None, metric=None) -> list:
    """quantize_static for each setting; calibration is cached per method (it does not depend on
    per-channel or activation type), and its time is reported once per method. Every model is
    judged with exact ONNX semantics (``sqnr_db``...) and, for reference, as ORT runs it with all
    optimizations (``sqnr_db_ort_all``). ``metric(ref, test)``: a task metric on the first output."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    logging.getLogger().setLevel(logging.ERROR)  # quantize_static's "consider pre-processing" advice
    model_path = str(model_path or C.SAMPLE_MODEL)
    rows = []
    for label, method, per_channel, act_type, extra in ort_settings(quick):
        cache = work / f"ort_calib_{method}.json"
        first = not cache.exists()
        out_path = work / f"ort_{len(rows)}.onnx"
        t0 = time.perf_counter()
        try:
            quantize_static(model_path, str(out_path),
                            C.make_ort_reader(lambda: calib.iter_batches(C.BATCH_SIZE)),
                            quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            activation_type=act_type, weight_type=QuantType.QInt8,
                            calibrate_method=getattr(CalibrationMethod, method),
                            extra_options=dict(extra), calibration_cache_path=str(cache))
        except Exception as exc:  # noqa: BLE001 - report the setting as failed and go on
            print(f"  ORT {label}: failed: {type(exc).__name__}: {exc}")
            rows.append({"setting": label, "error": str(exc)})
            continue
        seconds = time.perf_counter() - t0
        s = evaluator.evaluate_model(str(out_path), label=label).summary()
        s_all = evaluator.evaluate_model(str(out_path), optimization="all", label=label).summary()
        row = {"setting": label, "top1_agreement": s.get("top1_agreement"), "cosine": s["cosine"],
               "sqnr_db": s["sqnr_db"], "sqnr_db_ort_all": s_all["sqnr_db"], "quantize_s": seconds,
               "incl_calibration": first, "path": str(out_path)}
        if metric is not None:
            out = evaluator.run(str(out_path))[evaluator.output_names[0]]
            row["task"] = metric(evaluator.reference[evaluator.output_names[0]], out)
        rows.append(row)
        if metric is None:
            print(f"  ORT {label}: top1 {s['top1_agreement']:.3f}, sqnr {s['sqnr_db']:.1f} dB exact "
                  f"({s_all['sqnr_db']:.1f} dB with ORT optimizations) ({seconds:.1f} s"
                  f"{' incl. calibration' if first else ''})")
    return rows


def best_ort(rows: list, key=("top1_agreement", "sqnr_db")):
    ok = [r for r in rows if "error" not in r]
    return max(ok, key=lambda r: tuple(r.get(k) if r.get(k) is not None else -1 for k in key)) if ok else None


def realistic_models(quick: bool) -> list:
    """Part 6: on each model of tests/realistic_models.py (32 calibration, 32 evaluation samples of
    its generator): auto (the default, judged on the evaluation samples it searched with) and
    every single method vs ORT's quantize_static settings, all with exact ONNX semantics; the task
    metric of the model kind and output SQNR; seconds = statistics (+ search) or quantize_static."""
    import onnx

    sys.path.insert(0, str(C.REPO / "tests"))
    import realistic_models as R  # noqa: E402

    from workbench.search.autorange import auto_ranges
    from workbench.calib.collect import collect_statistics
    from workbench.evaluate.evaluator import Evaluator
    from workbench.export import build_quantized
    from workbench.graph.model import ModelInfo
    from workbench.precision.plan import PrecisionPlan
    from workbench.calib.ranges import METHODS, compute_ranges

    out = []
    for kind, spec in R.MODELS.items():
        info = ModelInfo(spec.build())
        calib = R.ArrayData(info, spec.data(32, seed=1))
        evaluator = Evaluator(info, R.ArrayData(info, spec.data(32, seed=3)))
        name = evaluator.output_names[0]
        ref = evaluator.reference[name]
        plan = PrecisionPlan.default(info)
        t0 = time.perf_counter()
        stats = collect_statistics(info, calib, progress=False)
        collect_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = auto_ranges(evaluator, stats, plan, calibration_data=calib, samples=AUTO_SAMPLES)
        auto_s = time.perf_counter() - t0
        rows = []
        # the default as a user runs it: calibration data alone (the tool holds out what it needs),
        # auto ranges, then the accuracy steps kept only where the held-out check improves
        from workbench.search.calibration import calibrate
        from workbench.search.improve_steps import improve

        t0 = time.perf_counter()
        alone = calibrate(info, calib)
        stepped = improve(info, alone.ranges, plan, alone.holdout, alone.evaluator)
        default_s = time.perf_counter() - t0
        for label, (m_info, r) in {"default, calibration data alone": (info, alone.ranges),
                                   "default + steps, calibration data alone": (stepped.model, stepped.ranges)}.items():
            got = evaluator.run(build_quantized(m_info, r, plan, variant="trt"))[name]
            rows.append({"setting": f"ours {label}" + (f" [{','.join(stepped.applied()) or 'none kept'}]"
                                                        if "steps" in label else ""),
                         "task": spec.metric(ref, got), "sqnr_db": R_sqnr(ref, got), "seconds": default_s})
        for m, r in {"auto": res.ranges, **{m: compute_ranges(stats, m) for m in METHODS}}.items():
            got = evaluator.run(build_quantized(info, r, plan, variant="ort"))[name]
            rows.append({"setting": f"ours {m}" + (" (default)" if m == "auto" else ""),
                         "task": spec.metric(ref, got), "sqnr_db": R_sqnr(ref, got),
                         "seconds": collect_s + (auto_s if m == "auto" else 0.0)})
        with tempfile.TemporaryDirectory(prefix=f"wb_quant_{kind}_") as tmp:
            path = Path(tmp) / f"{kind}.onnx"
            onnx.save(info.model, str(path))
            ort_rows = run_ort_quantize(calib, evaluator, Path(tmp), quick, model_path=path, metric=spec.metric)
        for r in ort_rows:
            rows.append({"setting": f"ORT {r['setting']}", "task": r.get("task"), "sqnr_db": r.get("sqnr_db"),
                         "seconds": r.get("quantize_s"), "error": r.get("error", "")[:60]})
        best = best_ort(ort_rows, key=("task", "sqnr_db"))
        C.print_table(rows, ["setting", "task", "sqnr_db", "seconds", "error"],
                      f"\n{kind}: {spec.metric_name} and output SQNR vs FP32 on 32 samples (exact ONNX semantics)")
        print(f"  auto: {res.summary()}")
        ours = rows[1]  # the default with its steps, calibration data alone
        entry = {"model": kind, "metric": spec.metric_name, "auto": ours, "rows": rows, "summary": res.summary()}
        if best is not None:
            entry["ort_best"] = {"setting": best["setting"], "task": best["task"], "sqnr_db": best["sqnr_db"]}
            tol = 1.0 / evaluator.num_samples if spec.metric_name.startswith(("top-1", "exact")) else 0.005
            entry["meets_ort"] = ours["task"] >= best["task"] - 1e-9 or (ours["task"] >= best["task"] - tol
                                                                        and ours["sqnr_db"] >= best["sqnr_db"])
            print(f"  [{'PASS' if entry['meets_ort'] else 'FAIL'}] auto {ours['task']:.3f} ({ours['sqnr_db']:.1f} dB) vs "
                  f"ORT best {best['task']:.3f} ({best['sqnr_db']:.1f} dB, {best['setting']})")
        out.append(entry)
    return out


def R_sqnr(ref, got) -> float:
    from workbench.evaluate.metrics import sqnr_db

    return sqnr_db(ref, got)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="ORT MinMax settings only, 3 timing repeats, no automatic search (unless --auto)")
    ap.add_argument("--auto", action="store_true", help="run the automatic search even with --quick")
    ap.add_argument("--repeats", type=int, default=5, help="timed re-export runs (median reported)")
    ap.add_argument("--skip-auto", action="store_true", help="skip the automatic mixed-precision search")
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    ap.add_argument("--realistic-only", action="store_true", help="only part 6 (the realistic tiny models)")
    ap.add_argument("--skip-realistic", action="store_true", help="skip part 6")
    args = ap.parse_args()
    repeats = 3 if args.quick else args.repeats
    if args.realistic_only:
        report = {"machine": C.machine_line(), "realistic": realistic_models(args.quick)}
        if args.json:
            C.write_json(args.json, report)
        return

    from workbench.search.autorange import auto_ranges
    from workbench.calib.collect import collect_statistics
    from workbench.data import PRESETS, open_data
    from workbench.evaluate.evaluator import Evaluator
    from workbench.export import build_quantized
    from workbench.graph.model import ModelInfo
    from workbench.precision.plan import PrecisionPlan
    from workbench.calib.ranges import METHODS, compute_ranges
    from workbench.search.sensitivity import auto_mixed_precision

    print(f"Machine: {C.machine_line()} (shared: compare ratios within one run)")
    model = ModelInfo.from_path(C.SAMPLE_MODEL)
    pre = PRESETS[C.PRESET]
    calib = open_data(C.CALIB_DIR, model, preprocess=pre)
    evaluator = Evaluator(model, open_data(C.EVAL_DIR, model, preprocess=pre))
    ops = {n.name: n.op_type for n in model.nodes}
    n_conv = sum(op == "Conv" for op in ops.values())
    report: dict = {"machine": C.machine_line(), "calib_samples": len(calib), "eval_samples": evaluator.num_samples}

    t0 = time.perf_counter()
    stats = collect_statistics(model, calib, batch_size=C.BATCH_SIZE, progress=False)
    report["collect_s"] = time.perf_counter() - t0
    plan = PrecisionPlan.default(model)
    print(f"Statistics of {len(calib)} photos in {report['collect_s']:.1f} s; default plan: "
          f"{len(plan.int8_nodes())} INT8 nodes; evaluating on {evaluator.num_samples} photos")

    # 1. our INT8: auto (the default) and every single method
    ours = []
    t0 = time.perf_counter()
    auto_res = auto_ranges(evaluator, stats, plan, calibration_data=calib, samples=AUTO_SAMPLES)
    auto_s = time.perf_counter() - t0
    all_ranges = {"auto": auto_res.ranges, **{m: compute_ranges(stats, m) for m in METHODS}}
    for m, r in all_ranges.items():
        s = evaluator.evaluate(plan, r, per_layer=False).summary()
        ours.append({"setting": f"ours {m}" + (" (default)" if m == "auto" else ""),
                     "top1_agreement": s["top1_agreement"], "cosine": s["cosine"], "sqnr_db": s["sqnr_db"],
                     "seconds": report["collect_s"] + (auto_s if m == "auto" else 0.0), "run_by": "ONNX semantics"})
    print(f"auto: {auto_res.summary()}")
    report["auto_ranges"] = {"summary": auto_res.summary(), "seconds": auto_s, "evaluations": auto_res.evaluations}
    ranges = all_ranges["auto"]  # the default: the variants, latency, re-export and autoprec use it
    proto_ort = build_quantized(model, ranges, plan, variant="ort")
    s = evaluator.evaluate_model(proto_ort, optimization="all").summary()
    ours.append({"setting": "ours auto, 'ort' variant", "top1_agreement": s["top1_agreement"],
                 "cosine": s["cosine"], "sqnr_db": s["sqnr_db"], "run_by": "ORT, all optimizations"})
    s = evaluator.evaluate(plan, ranges, per_layer=False, variant="cpu_uint8").summary()
    ours.append({"setting": "ours auto, 'cpu_uint8' variant", "top1_agreement": s["top1_agreement"],
                 "cosine": s["cosine"], "sqnr_db": s["sqnr_db"], "run_by": "ORT, all optimizations"})
    C.print_table(ours, ["setting", "top1_agreement", "cosine", "sqnr_db", "seconds", "run_by"],
                  "Our INT8 (default plan) vs FP32 on the eval photos (seconds: statistics + search)")
    report["ours"] = ours

    # 2. ONNX Runtime quantize_static
    with tempfile.TemporaryDirectory(prefix="wb_quant_bench_") as tmp:
        print("\nONNX Runtime quantize_static (QDQ, weights QInt8 symmetric; judged with exact ONNX semantics)")
        ort_rows = run_ort_quantize(calib, evaluator, Path(tmp), args.quick)
        best = best_ort(ort_rows)
        C.print_table(ort_rows, ["setting", "top1_agreement", "cosine", "sqnr_db", "sqnr_db_ort_all", "quantize_s",
                                 "incl_calibration"],
                      "ONNX Runtime quantize_static settings (sqnr_db_ort_all: run with all ORT optimizations)", 3)
        if best:
            print(f"best ORT setting: {best['setting']}")
        report["ort"] = [{k: v for k, v in r.items() if k != "path"} for r in ort_rows]

        # 5. latency (done here while the best ORT model file exists)
        lat_rows = []
        fp32 = evaluator.fp32_latency((1, 8))
        protos = [("FP32", model.model),
                  ("ours 'ort' (TensorRT-style symmetric Q/DQ)", proto_ort),
                  ("ours 'cpu_uint8'", build_quantized(model, ranges, plan, variant="cpu_uint8"))]
        if best:
            protos.append((f"ORT quantize_static best ({best['setting']})", best["path"]))
        for label, proto in protos:
            lat = fp32 if label == "FP32" else evaluator.measure_latency(proto, (1, 8))
            lat_rows.append({"model": label, "b1_ms": lat[1].median_ms, "b8_ms": lat[8].median_ms,
                             "b1_vs_fp32": lat[1].median_ms / fp32[1].median_ms,
                             "b8_vs_fp32": lat[8].median_ms / fp32[8].median_ms})
    C.print_table(lat_rows, ["model", "b1_ms", "b8_ms", "b1_vs_fp32", "b8_vs_fp32"],
                  "ONNX Runtime CPU latency, median ms (ratios < 1 are faster than FP32)", 2)
    print("Note: CPU latency of the TensorRT-style Q/DQ model is no proxy for TensorRT speed "
          "(ONNX Runtime CPU runs it through its own QDQ fusions; TensorRT could not be measured here).")
    report["latency"] = lat_rows

    # 4. re-export + re-evaluate one changed plan
    convs = [n for n in plan.int8_nodes() if ops[n] == "Conv"]
    picks = [convs[(i * 7 + 3) % len(convs)] for i in range(repeats + 1)]

    def one_change(node: str, per_layer: bool) -> float:
        p = plan.copy()
        t = time.perf_counter()
        p.set_node(node, "fp16")
        evaluator.evaluate(p, ranges, per_layer=per_layer)
        return time.perf_counter() - t

    first = one_change(picks[0], True)  # also computes the cached FP32 per-layer activations
    with_layers = [one_change(n, True) for n in picks[1:]]
    without = [one_change(n, False) for n in picks[1:]]
    rex = {"load_average": os.getloadavg()[0], "first_per_layer_s": first, "per_layer_median_s": statistics.median(with_layers),
           "per_layer_runs_s": with_layers, "no_per_layer_median_s": statistics.median(without),
           "no_per_layer_runs_s": without, "repeats": repeats}
    print(f"\nRe-export + evaluate one changed plan (Conv -> fp16), {repeats} runs: median "
          f"{rex['per_layer_median_s']:.2f} s with per-layer errors, {rex['no_per_layer_median_s']:.2f} s without "
          f"(first run {first:.2f} s incl. the cached FP32 per-layer reference)")
    report["reexport"] = rex

    # 3. automatic mixed precision, on auto ranges and on mse ranges (the former default)
    auto = None
    if not args.skip_auto and (args.auto or not args.quick):
        autoprec = {}
        for label, r in (("auto", ranges), ("mse", all_ranges["mse"])):
            res = auto_mixed_precision(evaluator, r, plan, f"top1>={GOAL_TOP1}")
            final = evaluator.evaluate(res.plan, r, per_layer=False).summary()
            conv_int8 = sum(ops[n] == "Conv" for n in res.plan.int8_nodes())
            autoprec[label] = {"met": bool(res.met), "out_of_int8": len(res.fallback), "fallback": list(res.fallback),
                               "fp16_nodes": len(res.plan.fp16_nodes()), "int8_nodes": len(res.plan.int8_nodes()),
                               "conv_int8": conv_int8, "conv_total": n_conv, "seconds": res.seconds,
                               "evaluations": res.evaluations, "final_top1": final["top1_agreement"],
                               "final_sqnr_db": final["sqnr_db"]}
            print(f"autoprec to top1>={GOAL_TOP1} on {label} ranges: met={res.met}, {len(res.fallback)} node(s) "
                  f"out of INT8 ({', '.join(res.fallback)}), Conv INT8 {conv_int8}/{n_conv}; exported plan top1 "
                  f"{final['top1_agreement']:.3f}, SQNR {final['sqnr_db']:.2f} dB; search {res.seconds:.1f} s, "
                  f"{res.evaluations} plan evaluations")
        C.print_table([{"ranges": k, **{c: v[c] for c in ("met", "out_of_int8", "fp16_nodes", "conv_int8",
                                                          "final_top1", "final_sqnr_db", "seconds")}}
                       for k, v in autoprec.items()],
                      ["ranges", "met", "out_of_int8", "fp16_nodes", "conv_int8", "final_top1", "final_sqnr_db",
                       "seconds"], f"Automatic mixed precision to top1>={GOAL_TOP1}: nodes in FP16 by ranges")
        auto = autoprec["auto"]
        report["autoprec"] = autoprec

    # 6. the realistic tiny models
    if not args.skip_realistic:
        report["realistic"] = realistic_models(args.quick)

    # goal checks
    print("\nGoal checks")
    goals = []
    default_row = ours[[r["setting"] == "ours auto (default)" for r in ours].index(True)]
    if best:
        goals.append(C.check_line(
            "our default-method INT8 top-1 >= best ORT quantize_static",
            default_row["top1_agreement"] >= best["top1_agreement"],
            f"ours (auto) {default_row['top1_agreement']:.3f} (SQNR {default_row['sqnr_db']:.1f} dB) vs "
            f"ORT best {best['top1_agreement']:.3f} (SQNR {best['sqnr_db']:.1f} dB, {best['setting']}); "
            f"one photo = {1 / evaluator.num_samples:.3f}"))
    if auto:
        most = auto["conv_int8"] > n_conv / 2
        reached = auto["final_top1"] >= GOAL_TOP1  # judged on the exported model, not the search's score
        goals.append(C.check_line(
            f"autoprec reaches top1>={GOAL_TOP1} with most Conv nodes INT8", reached and most,
            f"exported plan top1 {auto['final_top1']:.3f} (search reported met={auto['met']}), "
            f"Conv INT8 {auto['conv_int8']}/{n_conv}, {auto['out_of_int8']} node(s) out of INT8, "
            f"search {auto['seconds']:.1f} s"))
    goals.append(C.check_line(
        f"re-export + evaluate < {GOAL_REEXPORT_S:.0f} s (load average {rex['load_average']:.1f} on {os.cpu_count()} CPUs)", rex["per_layer_median_s"] < GOAL_REEXPORT_S,
        f"median {rex['per_layer_median_s']:.2f} s with per-layer ({rex['no_per_layer_median_s']:.2f} s without)"))
    for entry in report.get("realistic", []):
        if "meets_ort" in entry:
            goals.append(C.check_line(
                f"{entry['model']}: default (auto) {entry['metric']} >= best ORT quantize_static", entry["meets_ort"],
                f"auto {entry['auto']['task']:.3f} ({entry['auto']['sqnr_db']:.1f} dB) vs ORT best "
                f"{entry['ort_best']['task']:.3f} ({entry['ort_best']['sqnr_db']:.1f} dB, {entry['ort_best']['setting']})"))
    report["goals"] = goals
    if args.json:
        C.write_json(args.json, report)


if __name__ == "__main__":
    main()
