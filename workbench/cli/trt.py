"""CLI subcommands of the TensorRT backend: ``workbench build`` and ``workbench inspect-engine``.

``workbench.cli`` calls :func:`register` with its subparsers. Each handler takes the
argparse namespace and returns an exit code. Without TensorRT both commands print one
clear message and exit with code 2 (``build --print-commands`` and ``inspect-engine`` on a
saved ``.json`` work everywhere).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import WorkbenchError

EXIT_UNAVAILABLE = 2


def register(subparsers) -> None:
    """Add the ``build`` and ``inspect-engine`` subcommands to ``subparsers``."""
    build = subparsers.add_parser(
        "build", help="build a TensorRT engine from a Q/DQ / FP16 ONNX (needs TensorRT and a GPU)",
        description="Build a strongly typed TensorRT engine with Polygraphy. Writes ENGINE and "
                    "ENGINE.json (TensorRT version, GPU, build time, settings). A timing cache is "
                    "reused so that rebuilding after a precision change is faster.")
    build.add_argument("model", metavar="QUANT_MODEL", help="the Q/DQ / FP16 ONNX exported by the "
                       "workbench (an FP32 ONNX with --legacy-int8-cache)")
    build.add_argument("-o", "--output", metavar="ENGINE", required=True, help="engine file to write")
    build.add_argument("--shapes", metavar="SHAPES", help="opt (and min/max unless given) shapes, "
                       "e.g. input:1x3x224x224,mask:1x16 or input:[1,3,224,224]")
    for kind in ("min", "opt", "max"):
        build.add_argument(f"--{kind}-shapes", metavar="SHAPES", help=f"{kind} shapes of the profile")
    build.add_argument("--batch", type=int, default=1, help="opt batch for a dynamic first "
                       "dimension not covered by --shapes (default 1)")
    build.add_argument("--max-batch", type=int, default=None, help="max batch for a dynamic first "
                       "dimension (default: --batch)")
    build.add_argument("--workspace", type=float, metavar="MB", help="workspace limit in MiB "
                       "(default: TensorRT's, the GPU memory)")
    build.add_argument("--timing-cache", metavar="FILE", help="timing cache to load and update "
                       "(default: one per TensorRT version and GPU under ~/.cache/workbench/trt)")
    build.add_argument("--no-timing-cache", action="store_true", help="neither load nor save a timing cache")
    build.add_argument("--weakly-typed", action="store_true", help="TensorRT 10 only: build with "
                       "FP16+INT8 flags instead of strong typing")
    build.add_argument("--legacy-int8-cache", metavar="FILE", help="TensorRT 8.6-10 only: implicit "
                       "INT8 from the workbench's calibration cache (QUANT_MODEL is then the FP32 ONNX)")
    build.add_argument("--layer-precision", action="append", default=[], metavar="NODE:PREC",
                       help="legacy mode only: per-layer precision (int8/fp16/fp32), repeatable")
    build.add_argument("--print-commands", action="store_true", help="only print the equivalent "
                       "trtexec and polygraphy commands (works without TensorRT)")
    build.set_defaults(func=run_build)

    inspect = subparsers.add_parser(
        "inspect-engine", help="show which engine layers run in INT8 / FP16 / FP32",
        description="Read an engine's IEngineInspector JSON (TensorRT 10 or 11 layout) and print "
                    "layers per precision and per-layer precisions with their ONNX nodes. ENGINE "
                    "may also be a .json saved by trtexec --exportLayerInfo (no TensorRT needed).")
    inspect.add_argument("engine", metavar="ENGINE", help="engine file (needs TensorRT and a GPU) "
                         "or inspector .json")
    inspect.add_argument("--csv", metavar="OUT", help="write the per-layer table as CSV")
    inspect.add_argument("--save-json", metavar="OUT", help="save the raw inspector JSON")
    inspect.set_defaults(func=run_inspect)


def _unavailable(what: str) -> int | None:
    """Print why TensorRT cannot be used here and return the exit code, or None if it can."""
    from ..backends.trt import trt_available

    ok, reason = trt_available()
    if ok:
        return None
    print(f"workbench {what}: TensorRT is unavailable on this machine. {reason}", file=sys.stderr)
    return EXIT_UNAVAILABLE


def _build_config(args):
    from ..backends.trt import BuildConfig, parse_shapes

    precisions = {}
    for item in args.layer_precision:
        node, sep, prec = item.rpartition(":")
        if not sep or not node:
            raise WorkbenchError(f"--layer-precision '{item}': expected NODE:PRECISION, e.g. /conv1/Conv:fp16")
        precisions[node] = prec
    return BuildConfig(
        shapes=parse_shapes(args.shapes), min_shapes=parse_shapes(args.min_shapes),
        opt_shapes=parse_shapes(args.opt_shapes), max_shapes=parse_shapes(args.max_shapes),
        batch=args.batch, max_batch=args.max_batch,
        workspace_bytes=int(args.workspace * (1 << 20)) if args.workspace else None,
        timing_cache=args.timing_cache, use_timing_cache=not args.no_timing_cache,
        strongly_typed=not args.weakly_typed, legacy_int8_cache=args.legacy_int8_cache,
        layer_precisions=precisions)


def run_build(args) -> int:
    """Handler of ``workbench build``."""
    from ..backends.trt import build_engine, parse_shapes, trt_build_command, trt_version, version_major

    if args.print_commands:
        shapes = parse_shapes(args.opt_shapes or args.shapes)
        for line in trt_build_command(args.model, shapes, version_major(trt_version()),
                                      engine_path=args.output, timing_cache=args.timing_cache):
            print(line)
        return 0
    config = _build_config(args)  # user mistakes in the flags are reported even without TensorRT
    code = _unavailable("build")
    if code is not None:
        return code
    report = build_engine(args.model, args.output, config)
    print(f"Built {report.engine_path} ({report.engine_bytes / 1e6:.1f} MB) in {report.build_seconds:.1f} s "
          f"with TensorRT {report.tensorrt_version} on {report.gpu}, mode {report.mode}")
    if report.timing_cache:
        print(f"Timing cache: {report.timing_cache} ({'reused' if report.timing_cache_existed else 'created'})")
    print(f"Build record: {report.engine_path}.json")
    return 0


def run_inspect(args) -> int:
    """Handler of ``workbench inspect-engine``."""
    import pandas as pd

    from .._io import atomic_write_text
    from ..backends import trt_inspect

    source = Path(args.engine)
    if source.suffix.lower() == ".json":
        info = trt_inspect.load_engine_info(source)
    else:
        code = _unavailable("inspect-engine")
        if code is not None:
            return code
        from ..backends.trt import inspect_engine

        info = trt_inspect.load_engine_info(inspect_engine(source))
        if args.save_json:
            atomic_write_text(args.save_json, json.dumps(info, indent=1))
    df = trt_inspect.layers_dataframe(info)
    summary = trt_inspect.summarize(info)
    print(f"{args.engine}: {summary['layers']} layers ({summary['layout']} inspector layout)")
    if summary["layout"] == "names_only":
        print("The engine was built without detailed profiling verbosity: precisions are unknown. "
              "Rebuild with workbench build (it sets ProfilingVerbosity.DETAILED).")
    print("Compute layers per precision: " + ", ".join(f"{k} {v}" for k, v in summary["precisions"].items()))
    view = df[["name", "type", "precision", "onnx_nodes"]].copy()
    view["onnx_nodes"] = view["onnx_nodes"].map(lambda n: ", ".join(n))
    with pd.option_context("display.max_rows", 500, "display.width", 160, "display.max_colwidth", 60):
        print(view.to_string(index=False))
    if args.csv:
        out = df.copy()
        for col in ("input_precisions", "output_precisions", "input_formats", "output_formats", "onnx_nodes"):
            out[col] = out[col].map(lambda v: ";".join(str(x) for x in v))
        atomic_write_text(args.csv, out.to_csv(index=False))
        print(f"Wrote {args.csv}")
    return 0
