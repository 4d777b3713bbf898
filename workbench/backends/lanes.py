"""Session calls that use the cores on separate rows instead of splitting every operator.

ONNX Runtime splits each operator over its intra-op threads and joins them again before the
next one. On a model whose pass takes a few milliseconds (a small detector, a switchable
emulation graph with an ``If`` per node) those joins cost more than the split saves: with two
threads such a pass is barely faster than with one. The searches run many passes over the same
samples, so :class:`Lanes` cuts the rows of a call into one part per core and runs the parts at
once, each on a session with one thread (the calls release the GIL). The kernels are the same
and every row is computed from its own inputs only, so the outputs are bit for bit those of one
call (``tests/backends/test_lanes.py``; ``benchmarks/search_speed.py`` shows the gain).

A call whose rows cannot be cut (fewer than two rows per part, inputs without a common first
axis, outputs that do not keep the rows on axis 0) runs whole: on the one-thread session when
there is one already (no second copy of a large graph for a call of two or three rows), else
on a session with ``count`` threads. The thread count changes no result.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

_POOLS: dict = {}
_POOL_LOCK = threading.Lock()


def cores() -> int:
    """The physical cores this process may run on (as many lanes as ONNX Runtime's default
    intra-op threads: a second hardware thread of a core adds little to these kernels)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
    seen = set()
    for cpu in cpus:  # hardware threads of one core list the same siblings (Linux sysfs)
        try:
            seen.add(Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip())
        except OSError:
            seen.add(str(cpu))
    return max(1, len(seen))


def lane_count(threads: int | None = None) -> int:
    """Lanes for an emulation given ``threads`` (the cores it may use; None: all of them)."""
    return max(1, int(threads)) if threads is not None else cores()


def _pool(count: int) -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if count not in _POOLS:
            _POOLS[count] = ThreadPoolExecutor(count, thread_name_prefix="workbench-lane")
        return _POOLS[count]


def close_pools() -> None:
    """Stop the lanes' idle threads (the CLI does before it exits; a later call starts new ones)."""
    with _POOL_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.shutdown(wait=True)


def run_at_once(fn: Callable, items: list, count: int) -> list:
    """``[fn(item) for item in items]``, up to ``count`` at a time on the lanes' threads (in this
    thread when there is one item or one lane)."""
    if count <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    return list(_pool(count).map(fn, items))


def row_count(feed: dict) -> int | None:
    """The rows every input of ``feed`` has on axis 0 (None: not one common count)."""
    counts = {np.shape(v)[0] if np.ndim(v) else None for v in feed.values()}
    return counts.pop() if len(counts) == 1 else None


#: The fewest rows of a part cut from a call of more rows. ONNX Runtime drops axes of size 1
#: before choosing how to run a reduction (a transformer's mean pooling over the sequence): a
#: one-row call may add in another order than the same row inside a larger call. From two rows
#: on, the shapes keep every axis and the order is the same.
MIN_PART_ROWS = 2


def cut_rows(n: int, parts: int) -> list:
    """Up to ``parts`` contiguous, nearly equal slices of ``range(n)``, none shorter than
    :data:`MIN_PART_ROWS` (one slice when ``n`` is too small to cut)."""
    parts = max(1, min(parts, n // MIN_PART_ROWS))
    bounds = [k * n // parts for k in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


class Lanes:
    """The sessions of one model for calls cut into rows.

    Args:
        make: ``make(threads)`` -> an ``onnxruntime.InferenceSession`` of the model with that many
            intra-op threads.
        count: lanes (parts run at once); 1 runs every call on a one-thread session.
    """

    def __init__(self, make: Callable, count: int):
        self.make, self.count = make, max(1, int(count))
        self._narrow = self._wide = None
        self.splits = True  # False once an output did not keep the rows on axis 0
        self._lock = threading.Lock()

    @property
    def narrow(self):
        """The one-thread session (called from several lanes at once)."""
        with self._lock:
            if self._narrow is None:
                self._narrow = self.make(1)
            return self._narrow

    @property
    def wide(self):
        """The session for a call that cannot be cut: ``count`` threads, built on first need,
        unless the one-thread session exists (a second copy of a large graph costs a build and
        its memory; a call of two or three rows is short either way)."""
        with self._lock:
            if self._wide is None and self._narrow is None and self.count > 1:
                self._wide = self.make(self.count)
            session = self._wide if self._wide is not None else self._narrow
        return session if session is not None else self.narrow

    def run_each(self, names: list, feeds: list) -> list:
        """Outputs of every feed of ``feeds`` (independent calls): at once on the one-thread
        session when there are several, on the wide one when there is one."""
        if len(feeds) == 1:
            return [self.wide.run(names, feeds[0])]
        session = self.narrow
        return run_at_once(lambda f: session.run(names, f), feeds, self.count)

    def run(self, names: list, rows: dict, fixed: dict | None = None) -> list:
        """Outputs of one call on ``rows`` (inputs with the samples on axis 0) and ``fixed``
        (inputs fed whole to every part: the switches), cut into :attr:`count` parts."""
        fixed = fixed or {}
        n = row_count(rows)
        if self.count <= 1 or not self.splits or n is None or n < 2:
            return self.wide.run(names, {**rows, **fixed})
        cuts = cut_rows(n, self.count)
        outs = self.run_each(names, [{**{k: v[s] for k, v in rows.items()}, **fixed} for s in cuts])
        if any(np.ndim(o) == 0 or len(o) != s.stop - s.start for part, s in zip(outs, cuts) for o in part):
            self.splits = False  # an output without the rows on axis 0: this model runs whole
            return self.wide.run(names, {**rows, **fixed})
        return [np.concatenate([part[i] for part in outs]) for i in range(len(names))]


def ort_lanes(model, threads: int | None = None, **loader) -> Lanes:
    """:class:`Lanes` of ``model`` over ``threads`` cores (None: all, :func:`lane_count`), its
    sessions opened by :class:`~workbench.backends.ort.OrtSessionLoader` with ``loader``'s options."""
    from .ort import OrtSessionLoader

    return Lanes(lambda n: OrtSessionLoader(model, threads=n, **loader)(), lane_count(threads))


__all__ = ["MIN_PART_ROWS", "Lanes", "close_pools", "cores", "cut_rows", "lane_count", "ort_lanes", "row_count",
           "run_at_once"]
