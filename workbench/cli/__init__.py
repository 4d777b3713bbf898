"""The ``workbench`` command line.

One module per group of commands, each with ``register(subparsers)``; options come from the
argument groups in :mod:`workbench.cli.args`. User mistakes (WorkbenchError) print one readable
line and exit with status 2; no traceback.

Layer 14 (top), the command line. May import every layer, ui included (``workbench lab``).
"""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from ..errors import WorkbenchError

# Command modules in the order their commands appear in ``workbench --help``.
COMMAND_MODULES = ("info", "qdq", "calibrate", "quantize", "search", "trt", "demo", "lab")


def build_parser() -> argparse.ArgumentParser:
    """The ``workbench`` parser with every command module's subcommands."""
    parser = argparse.ArgumentParser(
        prog="workbench", description="Quantization workbench for ONNX models deployed on TensorRT.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
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
    except OSError as exc:  # a file-system failure no writer turned into a message: still one line
        if exc.filename is None:
            raise
        from .._io import fs_error

        print(f"workbench {args.command}: error: {fs_error(exc, exc.filename, 'access')}", file=sys.stderr)
        return 2
