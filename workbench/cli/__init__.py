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
COMMAND_MODULES = ("info", "qdq", "calibrate", "quantize", "search", "trt", "demo", "lab", "replay")


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
    """Entry point of the ``workbench`` console script; returns the exit status.

    Run as the command (``argv`` None), the process ends when the command has: threads that user
    code (a loader or metric script) started and left running are not waited for (see
    :func:`_exit_without_lingering_threads`).
    """
    if argv is not None:
        return _main(argv)
    try:
        code = _main(argv)
    except SystemExit as exc:  # argparse's usage errors and --help
        _exit_without_lingering_threads(exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2))
        raise
    except BaseException:  # a bug: its traceback, then the same exit
        if _lingering_threads():
            import traceback

            traceback.print_exc()
            _exit_without_lingering_threads(1)
        raise
    _exit_without_lingering_threads(code)
    return code


def _lingering_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]


def _exit_without_lingering_threads(code: int) -> None:
    """End the process now, with ``code``, if non-daemon threads other than the main one are
    still running: Python would otherwise wait for them forever at exit (a data loader script
    that starts a worker thread and never stops it). Every result was committed before this."""
    import os

    from ..backends.lanes import close_pools

    close_pools()  # the emulation's idle lane threads are ours, not lingering user threads
    lingering = _lingering_threads()
    if not lingering:
        return
    names = ", ".join(f"'{t.name}'" for t in lingering[:5])
    print(f"workbench: note: {len(lingering)} thread(s) started by user code ({names}) were still running; "
          "exiting without waiting for them.", file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in a result's recipe
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
