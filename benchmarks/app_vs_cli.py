"""App vs CLI time of the same automatic mixed-precision job on the bundled sample (issue 20,
item 6: the app at most 1.2x the CLI).

Both run in this process on the same model, photos (calibration and evaluation folders of
`sample_data/`), preparation (the sample's preset), ranges and target:

  app: Workbench.sample (blocking runner, every panel built) calibrated with --method (not
       timed), then the "Auto mixed precision" button with the target: the sensitivity ranking
       (16 samples) and the search, every panel redrawing as it does in the notebook;
  CLI: `workbench autoprec MODEL --data CALIB --eval-data EVAL --preset P --ranges R --target T
       --latency-points 0 -q -o OUT` with R the app's ranges (exported as ranges.json), so the
       search starts from the same amax; it also exports the two ONNX files, the curve and the
       recipe (the app does not).

The two run alternately --repeat times (app first, then CLI, ...); the ratio of the medians is
printed with the machine's load. --profile prints the app run's cProfile (top functions by
cumulative time) to find passes the CLI does not make.

Run: python benchmarks/app_vs_cli.py [--method mse] [--target top1>=0.99] [--repeat 1] [--profile]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BUDGET_RATIO = 1.2


def app_run(project: Path, method: str, target: str, profile: bool) -> tuple:
    """(seconds of the Auto button, the app's ranges file, the result's description)."""
    from workbench.ui.app import Workbench

    wb = Workbench.sample(project=project, blocking=True, method=method)
    wb.widget
    wb.calibrate()
    if wb.error:
        raise SystemExit(f"calibration failed: {wb.error}")
    ranges_file = wb.session.export("ranges", project / "app.ranges.json")
    panel = wb.panels["search"]
    panel.target.value = target
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t = time.perf_counter()
    panel.run_auto()
    wb.wait()
    seconds = time.perf_counter() - t
    if prof is not None:
        import pstats

        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
    if wb.error:
        raise SystemExit(f"the app's search failed: {wb.error}")
    res = wb.session.mixed_precision_result
    return seconds, ranges_file, f"{len(res.fallback)} node(s) out of INT8, met={res.met}"


def cli_run(out: Path, ranges_file: Path, target: str) -> tuple:
    """(seconds of `workbench autoprec` with the app's ranges, exit status)."""
    from workbench.cli import main
    from workbench.sample import sample_paths

    p = sample_paths()
    argv = ["autoprec", str(p["model"]), "--data", str(p["calib"]), "--eval-data", str(p["eval"]),
            "--preset", p["preset"], "--ranges", str(ranges_file), "--target", target,
            "--latency-points", "0", "-q", "-o", str(out)]
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as text:
        code = main(argv)
    seconds = time.perf_counter() - t
    last = [line for line in text.getvalue().splitlines() if line.startswith("Target")]
    return seconds, code, last[-1] if last else "(no verdict printed)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="mse", help="calibration method of the shared ranges (default mse)")
    ap.add_argument("--target", default="top1>=0.99")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="cProfile the (first) app run")
    args = ap.parse_args()

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; method {args.method}, "
          f"target {args.target}")
    app_s, cli_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            project = Path(tmp) / f"app{i}"
            seconds, ranges_file, what = app_run(project, args.method, args.target, args.profile and i == 0)
            app_s.append(seconds)
            print(f"app: Auto mixed precision {seconds:.1f} s ({what})", flush=True)
            seconds, code, verdict = cli_run(Path(tmp) / f"cli{i}" / "model.onnx", ranges_file, args.target)
            cli_s.append(seconds)
            print(f"CLI: autoprec {seconds:.1f} s (exit {code}; {verdict})", flush=True)
    ratio = statistics.median(app_s) / statistics.median(cli_s)
    print(f"app / CLI = {ratio:.2f} (budget {BUDGET_RATIO:.1f}; medians of {args.repeat}); "
          f"load average now {os.getloadavg()[0]:.2f}")
    print(("PASS" if ratio <= BUDGET_RATIO else "FAIL") + f": the app's automatic mixed precision within "
          f"{BUDGET_RATIO:.1f}x the CLI's")
    return 0 if ratio <= BUDGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
