"""Cost and gain of the accuracy steps (workbench.improve) on the sample model.

Usage:
    python benchmarks/improve.py                 # 64 calibration photos, 40 held-out photos
    python benchmarks/improve.py --calib 16 --holdout 16 --threads 2

Prints the time of plain calibration (collect_statistics + compute_ranges, the baseline measured
in the same run), the time of each step as a ratio to it, and the step table (output SQNR of the
exported Q/DQ model against FP32 on the held-out photos, exact ONNX semantics). The machines are
shared, so the ratios are the figures to compare, not the seconds.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calib", type=int, default=64, help="calibration photos (default 64)")
    ap.add_argument("--holdout", type=int, default=40, help="held-out photos from sample_data/eval (default 40)")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads for calibration (default 2)")
    args = ap.parse_args(argv)

    from workbench.calib import collect_statistics, compute_ranges
    from workbench.data import PRESETS, open_data
    from workbench.graph import ModelInfo
    from workbench.improve import apply_steps

    info = ModelInfo.from_path(C.SAMPLE_MODEL)
    pre = PRESETS[C.PRESET]
    calib = list(open_data(C.CALIB_DIR, info, preprocess=pre, limit=args.calib).iter_batches(C.BATCH_SIZE))
    held = list(open_data(C.EVAL_DIR, info, preprocess=pre, limit=args.holdout).iter_batches(C.BATCH_SIZE))

    t0 = time.perf_counter()
    stats = collect_statistics(info, _Data(calib), progress=False, threads=args.threads)
    ranges = compute_ranges(stats)
    t_calib = time.perf_counter() - t0
    amax = {name: r.amax for name, r in ranges.tensors.items()}

    t0 = time.perf_counter()
    res = apply_steps(info.model, amax, calib, holdout=held)
    t_steps = time.perf_counter() - t0

    print(f"model: {C.SAMPLE_MODEL.name}; {args.calib} calibration / {args.holdout} held-out photos, "
          f"batches of {C.BATCH_SIZE}; ranges: {ranges.method}")
    print(f"plain calibration (collect + ranges): {t_calib:.1f} s  (= 1.0)")
    for row in res.rows:
        print(f"  {row.step:<16} {row.seconds:7.1f} s  = {row.seconds / t_calib:5.1f} x calibration")
    print(f"all steps incl. measurement: {t_steps:.1f} s = {t_steps / t_calib:.1f} x calibration\n")
    print(res.table())
    rounding = next((r for r in res.rows if r.step == "rounding"), None)
    if rounding and rounding.details.get("layers"):
        layers = rounding.details["layers"]
        gain = [r.output_sqnr - r.output_sqnr_nearest for r in layers]
        print(f"\nrounding: {len(layers)} layers, layer-output SQNR gain on calibration rows "
              f"median {sorted(gain)[len(gain) // 2]:.2f} dB, max {max(gain):.2f} dB")


class _Data:
    """Calibration data for collect_statistics from already stacked batches."""

    def __init__(self, batches):
        self.batches = batches
        self.count = sum(len(next(iter(b.values()))) for b in batches)

    def num_samples(self) -> int:
        return self.count

    def iter_batches(self, batch_size: int = 8):
        yield from self.batches

    def describe(self) -> str:
        return f"{self.count} decoded samples"

    def fingerprint(self) -> str:
        return "benchmark"


if __name__ == "__main__":
    main()
