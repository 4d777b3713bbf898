"""CLI subcommands of the TensorRT backend: ``workbench build`` and ``workbench inspect-engine``.

Each handler takes the argparse namespace and returns an exit code. Without any TensorRT
builder both commands print one clear message and exit with code 2. With TensorRT-RTX and no
supported GPU, ``build`` still builds (build-only mode) and says what needs a GPU;
``inspect-engine`` then shows the layer table the builder logged. ``build --print-commands``
and ``inspect-engine`` on a saved ``.json`` work everywhere.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .args import OutputArgs
from .backend_args import TrtBuildArgs

EXIT_UNAVAILABLE = 2

_build_args = TrtBuildArgs()
_engine_out = OutputArgs("ENGINE", "engine file to write (ENGINE.json and, on TensorRT-RTX, "
                         "ENGINE.layers.json are written beside it)")


def register(subparsers) -> None:
    """Add the ``build`` and ``inspect-engine`` subcommands to ``subparsers``."""
    build = subparsers.add_parser(
        "build", help="build a TensorRT / TensorRT-RTX engine from a Q/DQ / FP16 ONNX",
        description="Build a strongly typed engine with TensorRT 10/11 (needs a GPU) or TensorRT-RTX "
                    "(builds without a GPU). Writes ENGINE and ENGINE.json (flavor and version, build "
                    "time, engine size, target compute capabilities, what the builder logged about "
                    "the layers). Running, timing and inspecting the engine need a supported GPU.")
    build.add_argument("model", metavar="QUANT_MODEL", help="the Q/DQ / FP16 ONNX exported by the "
                       "workbench (an FP32 ONNX with --legacy-int8-cache)")
    _engine_out.add(build)
    _build_args.add(build)
    build.add_argument("--print-commands", action="store_true", help="only print the equivalent "
                       "trtexec / polygraphy build commands and the accuracy check (works without TensorRT)")
    build.set_defaults(func=run_build)

    inspect = subparsers.add_parser(
        "inspect-engine", help="show which engine layers run in INT8 / FP16 / FP32",
        description="Read an engine's IEngineInspector JSON (TensorRT 10 or 11 layout) and print "
                    "layers per precision and per-layer precisions with their ONNX nodes. ENGINE "
                    "may also be a .json saved by trtexec --exportLayerInfo or the ENGINE.layers.json "
                    "of workbench build (no TensorRT needed).")
    inspect.add_argument("engine", metavar="ENGINE", help="engine file (needs TensorRT and a supported "
                         "GPU) or inspector .json")
    inspect.add_argument("--csv", metavar="OUT", help="write the per-layer table as CSV")
    inspect.add_argument("--save-json", metavar="OUT", help="save the raw inspector JSON")
    inspect.add_argument("--overwrite", action="store_true", help="replace existing --csv / --save-json files")
    inspect.set_defaults(func=run_inspect)


def _print_commands(args, config) -> int:
    from ..backends.trt import trt_build_command
    from ..backends.trt_import import installed
    from ..backends.commands import engine_build_commands

    shapes = config.opt_shapes or config.shapes
    mod = installed(config.flavor)
    flavor = mod.flavor.key if mod else (config.flavor or "trt")
    lines = trt_build_command(args.model, shapes, mod.major if mod and flavor == "trt" else None,
                              engine_path=args.output, timing_cache=config.timing_cache, flavor=flavor,
                              compute_capabilities=config.compute_capabilities)
    checks = engine_build_commands(args.model, args.output, shapes=shapes)
    key = "polygraphy check (TensorRT-RTX, needs its GPU)" if flavor == "rtx" else "polygraphy check (TensorRT 10/11)"
    for line in lines + [checks[key]]:
        print(line)
    return 0


def run_build(args) -> int:
    """Handler of ``workbench build``."""
    from ..backends.trt_build import build_engine
    from ..backends.trt_status import trt_status
    from .common import cli_inputs

    config = _build_args.parse(args)  # user mistakes in the flags are reported even without TensorRT
    if args.print_commands:
        return _print_commands(args, config)
    status = trt_status(config.flavor)
    if not status.can_build:
        print(f"workbench build: no TensorRT builder can be used here. {status.reason}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    report = build_engine(args.model, args.output, config, overwrite=args.overwrite, inputs=cli_inputs(args))
    print(report.describe())
    if report.timing_cache:
        print(f"Timing cache: {report.timing_cache} ({'reused' if report.timing_cache_existed else 'created'})")
    print(f"Build record: {report.engine_path}.json")
    return 0


def run_inspect(args) -> int:
    """Handler of ``workbench inspect-engine``."""
    from .common import result_for

    source = Path(args.engine)
    # the raw inspector JSON exists only when an engine is inspected here: an optional file
    with result_for(args, [args.csv], "inspection output", optional=[args.save_json]) as result:
        code = _inspect(args, source, result)
        if code != 0:
            result.abort()
    if args.csv and code == 0:
        print(f"Wrote {args.csv}")
    return code


def _engine_info(args, source: Path, result):
    """(inspector info, where it came from) or (None, exit code) when nothing can be read."""
    from .._io import atomic_write_text
    from ..backends import trt_inspect
    from ..backends.trt_build import layers_path
    from ..backends.trt_runner import engine_record
    from ..backends.trt_status import trt_status

    if source.suffix.lower() == ".json":
        return trt_inspect.load_engine_info(source), str(source)
    record = engine_record(source)
    status = trt_status(record.get("flavor"))
    if status.can_run:
        from ..backends.trt_runner import inspect_engine

        info = trt_inspect.load_engine_info(inspect_engine(source, flavor=record.get("flavor")))
        if args.save_json:
            atomic_write_text(result.path(args.save_json), json.dumps(info, indent=1))
        return info, f"{status.label} engine inspector"
    table = layers_path(source)
    if table.is_file():
        print(f"Layer inspection of the engine needs a supported GPU ({status.reason}). Showing the layer "
              f"table the builder logged instead: {table}")
        return trt_inspect.load_engine_info(table), "builder log"
    print(f"workbench inspect-engine: the engine cannot be inspected here. {status.reason}", file=sys.stderr)
    return None, EXIT_UNAVAILABLE


def _inspect(args, source: Path, result) -> int:
    import pandas as pd

    from .._io import atomic_write_text
    from ..outputs.csvsafe import dataframe_csv
    from ..backends import trt_inspect

    info, origin = _engine_info(args, source, result)
    if info is None:
        return origin
    if args.save_json and not result.path(args.save_json).exists():
        atomic_write_text(result.path(args.save_json), json.dumps(info, indent=1))
    df = trt_inspect.layers_dataframe(info)
    summary = trt_inspect.summarize(info)
    print(f"{args.engine}: {summary['layers']} layers ({summary['layout']} inspector layout)"
          + (f", from the {info['Source']}" if info.get("Source") else ""))
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
        atomic_write_text(result.path(args.csv), dataframe_csv(out))
    return 0
