"""The ``workbench`` command line: calibrate, quantize, evaluate, sensitivity, autoprec, build, lab.

User mistakes (WorkbenchError) print one readable line and exit with status 2; no traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from .errors import WorkbenchError

def add_data_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Data source and preprocessing flags shared by every command that runs the model."""
    g = p.add_argument_group("data")
    src = g.add_mutually_exclusive_group(required=required)
    src.add_argument("--data", metavar="DIR",
                     help="folder of images (jpg/png/bmp/webp) or of .npy/.npz files (npz keyed by input name)")
    src.add_argument("--data-loader-script", metavar="FILE.py[:FUNC]",
                     help="Polygraphy-style script; FUNC (default load_data) returns an iterable of "
                          "{input_name: array} batches")
    g.add_argument("--samples", type=int, default=None, help="use at most N samples (default: all)")
    g.add_argument("--batch-size", type=int, default=8, help="samples per inference batch (default 8)")
    pre = p.add_argument_group("image preprocessing (image folders only)")
    pre.add_argument("--preset", default=None,
                     help="efficientnet-lite | imagenet | caffe | unit | symmetric (default imagenet); "
                          "flags below override single fields")
    pre.add_argument("--resize", type=int, default=None, help="resize the short side to N pixels (0: off)")
    pre.add_argument("--crop", type=int, default=None, help="centre crop NxN (default: model input size)")
    pre.add_argument("--color", choices=["RGB", "BGR"], default=None, help="channel order")
    pre.add_argument("--scale", type=float, default=None, help="multiply 0..255 pixels by this first")
    pre.add_argument("--mean", type=float, nargs="+", default=None, help="per-channel mean (scaled units)")
    pre.add_argument("--std", type=float, nargs="+", default=None, help="per-channel std (scaled units)")
    pre.add_argument("--layout", choices=["NCHW", "NHWC"], default=None, help="default: from the model")


def preprocess_from_args(args):
    """Build the ImagePreprocess from --preset and the single-field flags."""
    from dataclasses import replace

    from .data import PRESETS, preset

    pre = preset(args.preset) if args.preset else PRESETS["imagenet"]
    fields = {k: getattr(args, k) for k in ("resize", "crop", "color", "scale", "layout")
              if getattr(args, k, None) is not None}
    if fields.get("resize") == 0:
        fields["resize"] = None
    for k in ("mean", "std"):
        if getattr(args, k, None) is not None:
            fields[k] = tuple(getattr(args, k))
    return replace(pre, **fields)


def open_data_from_args(args, model, prefix: str = "", limit=None):
    """Open the data named by ``--{prefix}data`` / ``--{prefix}data-loader-script``."""
    from .data import open_data

    key = prefix.replace("-", "_")
    return open_data(getattr(args, f"{key}data"), model, preprocess=preprocess_from_args(args),
                     loader_script=getattr(args, f"{key}data_loader_script"),
                     limit=limit if limit is not None else args.samples)


def _out_dir(path: str, overwrite: bool, names: list) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise WorkbenchError(f"Output path '{out}' exists and is not a folder.")
    clash = [n for n in names if (out / n).exists()]
    if clash and not overwrite:
        raise WorkbenchError(
            f"Output folder '{out}' already has {', '.join(clash)}; choose a new folder or pass --overwrite."
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def cmd_calibrate(args) -> int:
    from . import cache as trt_cache
    from .collect import collect_statistics
    from .model import ModelInfo
    from .ranges import compute_ranges
    from .stats import Statistics

    files = ["ranges.json", "ranges.csv", "calibration.cache", "calibration.cache.json", "statistics.npz"]
    out = _out_dir(args.output, args.overwrite, files)
    model = ModelInfo.from_path(args.model)
    data = open_data_from_args(args, model)
    if args.statistics:
        stats = Statistics.load(args.statistics, model.fingerprint(), data.fingerprint())
        print(f"Reusing statistics from {args.statistics} ({stats.num_samples} samples).")
    else:
        stats = collect_statistics(model, data, tensors=args.tensors, batch_size=args.batch_size,
                                   progress=not args.quiet)
    ranges = compute_ranges(stats, args.method, args.percentile)
    stats.save(out / "statistics.npz")
    ranges.save(out / "ranges.json")
    ranges.write_csv(out / "ranges.csv")
    trt_cache.write_calibration_cache(out / "calibration.cache", ranges.scales(),
                                      algorithm=trt_cache.cache_algorithm(args.method), provenance={
        "model": str(args.model), "model_fingerprint": model.fingerprint(),
        "data_fingerprint": data.fingerprint(), "method": args.method, "num_samples": stats.num_samples})
    bad = stats.nonfinite_tensors()
    print(f"Calibrated {len(ranges.tensors)} tensors on {stats.num_samples} samples in "
          f"{stats.seconds:.1f} s ({args.method}).")
    if bad:
        print(f"WARNING: {len(bad)} tensors had NaN/Inf values: " + ", ".join(list(bad)[:10]))
    print(f"Wrote {out}/: " + ", ".join(files))
    return 0


def cmd_check_cache(args) -> int:
    from .cache import check_calibration_cache
    from .model import ModelInfo

    model = ModelInfo.from_path(args.model)
    dfp = open_data_from_args(args, model).fingerprint() if (args.data or args.data_loader_script) else None
    cache = check_calibration_cache(args.cache, model, data_fingerprint=dfp)
    print(f"'{args.cache}' ({cache.algorithm}, TensorRT {cache.version}): {len(cache.scales)} tensors, "
          f"consistent with '{args.model}'" + (" and the data" if dfp else "") + ".")
    return 0


def cmd_info(args) -> int:
    from .model import ModelInfo

    from .plan import PrecisionPlan

    model = ModelInfo.from_path(args.model)
    summary = model.summary()
    summary["int8_in_default_plan"] = len(PrecisionPlan.default(model).int8_nodes())
    print(json.dumps(summary, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .ranges import DEFAULT_METHOD, METHODS

    parser = argparse.ArgumentParser(
        prog="workbench", description="Quantization workbench for ONNX models deployed on TensorRT.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("info", help="summarise a model: inputs, outputs, ops, quantizable nodes")
    p.add_argument("model", help="ONNX model file")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("calibrate", help="collect activation statistics and compute per-tensor ranges",
                       description="Run the FP32 model on calibration data, stream per-tensor |x| "
                                   "histograms and write ranges.json, ranges.csv, calibration.cache "
                                   "(TensorRT format) and statistics.npz into OUTDIR.")
    p.add_argument("model", help="FP32 ONNX model file")
    add_data_args(p)
    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                   help=f"range method (default {DEFAULT_METHOD}, the most accurate on the sample; "
                        "'entropy' is TensorRT's EntropyCalibration2 as published, 'entropy_zero_fix' "
                        "the pytorch-quantization/ModelOpt variant)")
    p.add_argument("--percentile", type=float, default=99.99, help="p for --method percentile (default 99.99)")
    p.add_argument("--tensors", choices=["default", "quantizable", "all"], default="default",
                   help="observe the inputs of nodes INT8 in the default plan (default), of every "
                        "INT8-capable node, or every float tensor")
    p.add_argument("--statistics", metavar="FILE", help="reuse a saved statistics.npz (checked for staleness)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace files already in OUTDIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("check-cache", help="check that a calibration cache belongs to a model (and data)",
                       description="Exit 2 with the reason when the cache is stale: made for another model "
                                   "(provenance sidecar or tensor names) or other calibration data.")
    p.add_argument("cache", help="calibration cache file")
    p.add_argument("model", help="the FP32 ONNX model it should belong to")
    add_data_args(p, required=False)
    p.set_defaults(func=cmd_check_cache)

    for module, attr in (("workbench.cli_quant", "register"), ("workbench.cli_demo", "register"),
                         ("workbench.backends.cli", "register"), ("workbench.ui.lab", "register")):
        try:
            mod = __import__(module, fromlist=[attr])
        except ImportError as exc:
            if exc.name and exc.name.startswith("workbench"):
                continue  # that part of the CLI is not installed in this build
            raise
        getattr(mod, attr)(sub)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``workbench`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return int(args.func(args) or 0)
    except WorkbenchError as exc:
        print(f"workbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"workbench {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
