"""The default with accuracy steps vs without vs ONNX Runtime's best quantize_static setting, on
the realistic small models of tests/realistic_models.py, with calibration data alone.

Usage:
    python benchmarks/improve_realistic.py [--calib 32,48] [--seeds 1] [--eval 48] [--quick] [--no-ort]
                                           [--json out.json]

For each model, calibration size and seed: ``--calib`` calibration samples (generator seed
``--seeds``) are all the tool gets; it holds out what it needs itself (the one hold-out rule: the
last quarter). Every figure is measured on ``--eval`` other samples of the same generator (seed 3)
with exact ONNX semantics, on the written file: the task metric of the model kind and the output
SQNR against FP32. ORT's settings are the ones of benchmarks/quantization.py (``--quick``: MinMax
only), calibrated on the same calibration samples (first calibration size and seed only).

The summary at the end has one line per model, size and seed: what the steps did to the task
metric and the SQNR on the evaluation samples ("loses" marks a step set that lost either).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from quantization import best_ort, run_ort_quantize  # noqa: E402


def _ints(text: str) -> list:
    return [int(x) for x in str(text).split(",") if x.strip()]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calib", default="32,48", help="calibration sizes, comma-separated (default 32,48)")
    ap.add_argument("--seeds", default="1", help="calibration data seeds, comma-separated (default 1)")
    ap.add_argument("--eval", type=int, default=48)
    ap.add_argument("--models", default="", help="model kinds, comma-separated (default all)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime's quantize_static")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    import onnx

    sys.path.insert(0, str(C.REPO / "tests"))
    import realistic_models as R  # noqa: E402

    from workbench.evaluate.evaluator import Evaluator
    from workbench.evaluate.metrics import sqnr_db
    from workbench.export import export_result
    from workbench.graph.model import ModelInfo
    from workbench.precision import PrecisionPlan
    from workbench.search.calibration import calibrate
    from workbench.search.improve_steps import improve

    out, summary = [], []
    sizes, seeds = _ints(args.calib), _ints(args.seeds)
    kinds = [k for k in (args.models.split(",") if args.models else R.MODELS)]
    for kind in kinds:
        spec = R.MODELS[kind]
        info = ModelInfo(spec.build())
        judge = Evaluator(info, R.ArrayData(info, spec.data(args.eval, seed=3)))
        name = judge.output_names[0]
        ref = judge.reference[name]
        for size in sizes:
            for seed in seeds:
                calib = R.ArrayData(info, spec.data(size, seed=seed))
                t0 = time.perf_counter()
                res = calibrate(info, calib)
                t_cal = time.perf_counter() - t0
                plan = PrecisionPlan.default(info)
                t0 = time.perf_counter()
                imp = improve(info, res.ranges, plan, res.holdout, res.evaluator)
                t_imp = time.perf_counter() - t0
                rows = []
                with tempfile.TemporaryDirectory(prefix=f"wb_improve_{kind}_") as tmp:
                    for label, model, ranges, secs in (("ours default, no steps", info, res.ranges, t_cal),
                                                       ("ours default + steps", imp.model, imp.ranges, t_cal + t_imp)):
                        path = export_result(model, ranges, plan, Path(tmp) / label.replace(" ", "_").replace(",", ""),
                                             kinds=["qdq"])["qdq"].onnx_path
                        got = judge.run(str(path))[name]
                        rows.append({"setting": label, "task": spec.metric(ref, got), "sqnr_db": sqnr_db(ref, got),
                                     "seconds": secs})
                    if not args.no_ort and size == sizes[0] and seed == seeds[0]:
                        src = Path(tmp) / f"{kind}.onnx"
                        onnx.save(info.model, str(src))
                        ort_rows = run_ort_quantize(calib, judge, Path(tmp), args.quick, model_path=src,
                                                    metric=spec.metric)
                        best = best_ort(ort_rows, key=("task", "sqnr_db"))
                        if best is not None:
                            rows.append({"setting": f"ORT best ({best['setting']})", "task": best["task"],
                                         "sqnr_db": best["sqnr_db"], "seconds": best["quantize_s"]})
                C.print_table(rows, ["setting", "task", "sqnr_db", "seconds"],
                              f"\n{kind}: {spec.metric_name} and output SQNR vs FP32 on {args.eval} other samples "
                              f"(exact ONNX semantics; calibration data alone, {size} samples, seed {seed})")
                print("  steps: " + "; ".join(f"{r['step']} {'applied' if r['applied'] else 'skipped'}"
                                              + (f" {r['sqnr_before']:.2f}->{r['sqnr_after']:.2f} dB"
                                                 if r["sqnr_after"] is not None else "") for r in imp.table())
                      + f" (judged on {imp.judged_on})")
                plain, steps = rows[0], rows[1]
                d_task, d_sqnr = steps["task"] - plain["task"], steps["sqnr_db"] - plain["sqnr_db"]
                summary.append({"model": kind, "calib": size, "seed": seed, "applied": "+".join(imp.applied()) or "-",
                                "task": f"{plain['task']:.3f} -> {steps['task']:.3f}",
                                "sqnr_db": f"{plain['sqnr_db']:.2f} -> {steps['sqnr_db']:.2f}",
                                "gain_db": d_sqnr, "verdict": "loses" if d_task < -1e-9 or d_sqnr < -0.05 else "ok",
                                "steps_s": t_imp, "calib_s": t_cal})
                out.append({"model": kind, "calib": size, "seed": seed, "metric": spec.metric_name, "rows": rows,
                            "steps": imp.table()})
    C.print_table(summary, ["model", "calib", "seed", "applied", "task", "sqnr_db", "gain_db", "verdict",
                            "steps_s", "calib_s"],
                  f"\nSummary: the default + steps vs no steps on {args.eval} evaluation samples (seed 3), "
                  f"exact ONNX semantics")
    if args.json:
        C.write_json(args.json, {"machine": C.machine_line(), "models": out, "summary": summary})


if __name__ == "__main__":
    main()
