"""The default with accuracy steps vs without vs ONNX Runtime's best quantize_static setting, on
the realistic small models of tests/realistic_models.py, with calibration data alone.

Usage:
    python benchmarks/improve_realistic.py [--calib 48] [--eval 48] [--quick] [--json out.json]

For each model: ``--calib`` calibration samples (seed 1) are all the tool gets; it holds out what
it needs itself (the one hold-out rule: the last quarter). Every figure is measured on ``--eval``
other samples of the same generator (seed 3) with exact ONNX semantics, on the written file:
the task metric of the model kind and the output SQNR against FP32. ORT's settings are the ones of
benchmarks/quantization.py (``--quick``: MinMax only), calibrated on the same calibration samples.
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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calib", type=int, default=48)
    ap.add_argument("--eval", type=int, default=48)
    ap.add_argument("--quick", action="store_true")
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

    out = []
    for kind, spec in R.MODELS.items():
        info = ModelInfo(spec.build())
        calib = R.ArrayData(info, spec.data(args.calib, seed=1))
        judge = Evaluator(info, R.ArrayData(info, spec.data(args.eval, seed=3)))
        name = judge.output_names[0]
        ref = judge.reference[name]
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
            src = Path(tmp) / f"{kind}.onnx"
            onnx.save(info.model, str(src))
            ort_rows = run_ort_quantize(calib, judge, Path(tmp), args.quick, model_path=src, metric=spec.metric)
        best = best_ort(ort_rows, key=("task", "sqnr_db"))
        if best is not None:
            rows.append({"setting": f"ORT best ({best['setting']})", "task": best["task"], "sqnr_db": best["sqnr_db"],
                         "seconds": best["quantize_s"]})
        C.print_table(rows, ["setting", "task", "sqnr_db", "seconds"],
                      f"\n{kind}: {spec.metric_name} and output SQNR vs FP32 on {args.eval} other samples "
                      f"(exact ONNX semantics; calibration data alone, {args.calib} samples)")
        print("  steps: " + "; ".join(f"{r['step']} {'applied' if r['applied'] else 'skipped'}"
                                      + (f" {r['sqnr_before']:.2f}->{r['sqnr_after']:.2f} dB"
                                         if r["sqnr_after"] is not None else "") for r in imp.table())
              + f" (judged on {imp.judged_on})")
        out.append({"model": kind, "metric": spec.metric_name, "rows": rows, "steps": imp.table()})
    if args.json:
        C.write_json(args.json, {"machine": C.machine_line(), "models": out})


if __name__ == "__main__":
    main()
