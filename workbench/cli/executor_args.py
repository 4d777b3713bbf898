"""Where a command's sweeps run: ``--workers N`` / ``--scheduler tcp://HOST:PORT`` (one argument
group, :class:`ExecutorArgs`), for ``calibrate``, ``quantize`` (the auto range search),
``sensitivity`` and ``autoprec``."""
from __future__ import annotations

import argparse


class ExecutorArgs:
    """The sweep executor (:mod:`workbench.search.executor`): in this process by default, N local
    worker processes, or a dask distributed cluster. The results are the same whichever runs them."""

    def add(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group(
            "sweep execution", "where the independent evaluations of a search (auto-range candidates, "
                               "sensitivity rows, autoprec sweep points) run; the results are the same")
        where = g.add_mutually_exclusive_group()
        where.add_argument("--workers", type=int, default=None, metavar="N",
                           help="run them in N local worker processes (default: in this process)")
        where.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                           help="run them on a dask distributed cluster (pip install 'workbench[dask]')")

    def validate(self, args) -> None:
        """Refuse a bad worker count before any work."""
        from ..validate import check_positive_int

        check_positive_int(getattr(args, "workers", None), "--workers", allow_none=True)

    def parse(self, args):
        """The executor (a context manager: its workers stop on exit); says where evaluations run
        when that is not this process."""
        from ..search.executor import make_executor

        executor = make_executor(getattr(args, "workers", None), getattr(args, "scheduler", None))
        if executor.workers > 1 or getattr(args, "scheduler", None):
            print(f"Evaluations run on {executor.describe()}.")
        return executor

    @staticmethod
    def print_reruns(executor) -> None:
        """One note per evaluation that ran again (a lost worker)."""
        for line in executor.reruns:
            print(f"note: {line}")
