"""UI responsiveness on the bundled sample (full calibration and evaluation sets).

Measures, through the app's own code paths (no browser):
  1. selecting another layer: session.select -> layer table + histogram redraw (goal < 200 ms)
  2. a plan change (one node to FP16) + rebuild + evaluation on ONNX Runtime (goal < 3 s)

Run: python benchmarks/ui_responsiveness.py [--calib-samples N] [--eval-samples N] [--repeat K]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calib-samples", type=int, default=None, help="default: all 64")
    ap.add_argument("--eval-samples", type=int, default=None, help="default: all 41")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--method", default="mse")
    args = ap.parse_args()

    from workbench.ui.app import Workbench

    with tempfile.TemporaryDirectory() as project:
        t = time.perf_counter()
        wb = Workbench.sample(calib_samples=args.calib_samples, eval_samples=args.eval_samples,
                              project=project, blocking=True, method=args.method)
        wb.widget
        wb.calibrate()
        print(f"calibration ({wb.session.stats.num_samples} samples): {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        wb.rebuild()  # first build also runs the FP32 reference once
        print(f"first rebuild incl. FP32 reference: {time.perf_counter() - t:.2f} s")
        if wb.error:
            raise SystemExit(wb.error)

        nodes = [n for n in wb.session.layer_table()["node"] if wb.session.tensor_of(n) in wb.session.stats.collectors]
        select_ms = []
        for i in range(args.repeat * 4):
            node = nodes[(i * 7 + 3) % len(nodes)]
            t = time.perf_counter()
            wb.select(node)
            select_ms.append(1000 * (time.perf_counter() - t))
        print(f"select another layer (table + histogram + per-layer chart redraw): median "
              f"{statistics.median(select_ms):.0f} ms, max {max(select_ms):.0f} ms (goal < 200 ms)")

        int8 = wb.session.plan.int8_nodes()
        rebuild_s = []
        for i in range(args.repeat):
            t = time.perf_counter()
            wb.session.set_precision(int8[(i * 5) % len(int8)], "fp16")
            wb.rebuild()
            rebuild_s.append(time.perf_counter() - t)
            if wb.error:
                raise SystemExit(wb.error)
        n = wb.session.evaluator.num_samples
        print(f"plan change + rebuild + evaluate on ONNX Runtime ({n} eval samples): median "
              f"{statistics.median(rebuild_s):.2f} s, max {max(rebuild_s):.2f} s (goal < 3 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
