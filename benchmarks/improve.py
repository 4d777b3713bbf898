"""Cost and gain of the accuracy steps (workbench.improve) on the sample model.

Usage:
    python benchmarks/improve.py                 # 64 calibration photos, the 41 evaluation photos
    python benchmarks/improve.py --calib 16 --holdout 16 --threads 2
    python benchmarks/improve.py --steps rounding --rounding-rows 1024
    python benchmarks/improve.py --profile rounding   # cProfile of weight rounding alone

Prints the time of plain calibration (collect_statistics + compute_ranges, the baseline measured
in the same run), the time of each step as a ratio to it (weight rounding's is the figure the
CPU budget is stated in), and the step table (output SQNR of the exported Q/DQ model against
FP32 on the held-out photos, exact ONNX semantics; each step's gain is its "after" minus its
"before"). The machines are shared, so the ratios are the figures to compare, not the seconds.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def main(argv=None) -> None:
    from workbench.improve import STEPS
    from workbench.improve.rounding import MAX_ROWS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calib", type=int, default=64, help="calibration photos (default 64)")
    ap.add_argument("--holdout", type=int, default=41, help="held-out photos from sample_data/eval (default 41: all)")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads for calibration (default 2)")
    ap.add_argument("--steps", default=",".join(STEPS), help="steps to run, comma-separated (default all)")
    ap.add_argument("--rounding-rows", type=int, default=MAX_ROWS, help=f"weight rounding's row budget ({MAX_ROWS})")
    ap.add_argument("--profile", choices=["rounding"], help="cProfile weight rounding alone (top functions)")
    args = ap.parse_args(argv)

    from workbench.calib import collect_statistics, compute_ranges
    from workbench.data import PRESETS, open_data
    from workbench.graph import ModelInfo
    from workbench.improve import apply_steps

    info = ModelInfo.from_path(C.SAMPLE_MODEL)
    pre = PRESETS[C.PRESET]
    calib_data = open_data(C.CALIB_DIR, info, preprocess=pre, limit=args.calib)
    calib = list(calib_data.iter_batches(C.BATCH_SIZE))
    held = list(open_data(C.EVAL_DIR, info, preprocess=pre, limit=args.holdout).iter_batches(C.BATCH_SIZE))

    t0 = time.perf_counter()
    stats = collect_statistics(info, calib_data, batch_size=C.BATCH_SIZE, progress=False, threads=args.threads)
    ranges = compute_ranges(stats)
    t_calib = time.perf_counter() - t0
    amax = {name: r.amax for name, r in ranges.tensors.items()}
    print(f"model: {C.SAMPLE_MODEL.name}; {args.calib} calibration / {len(held) and sum(len(next(iter(b.values()))) for b in held)}"
          f" held-out photos, batches of {C.BATCH_SIZE}; ranges: {ranges.method}; {C.machine_line()}")
    print(f"plain calibration (collect + ranges): {t_calib:.1f} s  (= 1.0)")
    if args.profile:
        _profile_rounding(info, amax, calib, args.rounding_rows, t_calib)
        return

    t0 = time.perf_counter()
    res = apply_steps(info.model, amax, calib, holdout=held, steps=args.steps.split(","),
                      rounding_rows=args.rounding_rows)
    t_steps = time.perf_counter() - t0
    for row in res.rows:
        gain = (f"{row.sqnr_after - row.sqnr_before:+.2f} dB" if row.sqnr_after is not None else "-")
        print(f"  {row.step:<16} {row.seconds:7.1f} s  = {row.seconds / t_calib:5.1f} x calibration;"
              f" held-out gain {gain}")
    print(f"all steps incl. measurement: {t_steps:.1f} s = {t_steps / t_calib:.1f} x calibration\n")
    print(res.table())
    rounding = next((r for r in res.rows if r.step == "rounding"), None)
    if rounding and rounding.details.get("layers"):
        layers = rounding.details["layers"]
        gain = [r.output_sqnr - r.output_sqnr_nearest for r in layers]
        print(f"\nrounding ({args.rounding_rows} rows): {len(layers)} layers, {rounding.seconds / t_calib:.1f} x "
              f"calibration; layer-output SQNR gain on calibration rows median {sorted(gain)[len(gain) // 2]:.2f} dB, "
              f"max {max(gain):.2f} dB; model output on the held-out photos "
              f"{rounding.sqnr_before:.2f} -> {rounding.sqnr_after:.2f} dB")


def _profile_rounding(info, amax, calib, rows, t_calib) -> None:
    import cProfile
    import pstats

    from workbench.improve.rounding import round_weights

    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    res = round_weights(info.model, amax, calib, max_rows=rows)
    prof.disable()
    secs = time.perf_counter() - t0
    print(f"round_weights: {len(res.layers)} layers, {secs:.1f} s = {secs / t_calib:.1f} x calibration")
    pstats.Stats(prof).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
