"""What the default range method costs: ``auto`` (chosen by the output on held-out samples)
against the ``mse`` path, on the sample, as ``workbench calibrate`` runs them.

Usage:
    python benchmarks/default_speed.py                # 64 calibration photos (the sample)
    python benchmarks/default_speed.py --json f.json

Issue 20, item 6: default ranges (``auto``) cost at most 3x the ``mse`` path on the sample. Both
runs are the CLI's calibration path (``search.calibration.calibrate``) on the same photos, preset
and batch size, in one process, alternating (mse, auto, mse, auto) so drift from other jobs on
the machine hits both; the ratio uses the medians. Phases of the auto run (statistics, the
continuation over the held-out samples, the FP32 references, the search) come from one extra
profiled run. No evaluation data is given (the tool holds out a quarter of the calibration
photos itself), as a user starting out runs it.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

GOAL_RATIO = 3.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2, help="runs of each method (median)")
    ap.add_argument("--samples", type=int, default=None, help="calibration photos (default: all 64)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from workbench.data import open_data
    from workbench.graph.model import ModelInfo
    from workbench.search.calibration import calibrate

    print(C.machine_line())
    info = ModelInfo.from_path(C.SAMPLE_MODEL)
    data = open_data(C.CALIB_DIR, info, limit=args.samples)
    times = {"mse": [], "auto": []}
    results = {}
    for _ in range(args.repeats):
        for method in ("mse", "auto"):
            t0 = time.perf_counter()
            results[method] = calibrate(info, data, method=method, batch_size=C.BATCH_SIZE)
            times[method].append(time.perf_counter() - t0)
    med = {m: statistics.median(v) for m, v in times.items()}
    ratio = med["auto"] / med["mse"]
    auto = results["auto"]
    print(f"\nCalibration path on {data.num_samples()} photos ({auto.holdout.description} judge the search):")
    for m in ("mse", "auto"):
        print(f"  {m:5s} median {med[m]:6.1f} s  (runs: {', '.join(f'{t:.1f}' for t in times[m])})")
    if auto.auto is not None:
        print(f"  auto search: {auto.auto.summary()}")
        print(f"  inside the search's emulated runs: {auto.auto.run_seconds:.1f} s of {auto.auto.seconds:.1f} s")
    print()
    line = C.check_line(f"auto <= {GOAL_RATIO:g}x mse", ratio <= GOAL_RATIO, f"auto / mse = {ratio:.2f}x")
    if args.json:
        C.write_json(args.json, {"machine": C.machine_line(), "seconds": times, "median": med, "ratio": ratio,
                                 "summary": auto.auto.summary() if auto.auto else None, "check": line})


if __name__ == "__main__":
    main()
