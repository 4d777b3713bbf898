"""Where the independent evaluations of a sweep run: in this process, in local worker processes,
or on a dask distributed cluster. One interface for sensitivity rows, auto-range candidates and
autoprec sweep points.

An evaluation is one emulated run: a feed of switch flags (:meth:`SwitchableModel.flags
<workbench.evaluate.emulate.SwitchableModel.flags>`) in, the model's outputs out. The caller
(:class:`~workbench.search.scoring.PlanScorer`) turns outputs into metrics itself, so the numbers
do not depend on who ran them. An executor is bound once per model and sample set
(:meth:`Executor.bind`); the model and samples reach each worker once (a file the workers read
for local processes, a broadcast ``scatter`` on dask), then every task carries only its flags.

* :class:`InProcess` (default): runs them one after the other, here.
* :class:`LocalProcesses` (``--workers N``): N spawned processes, each with ``cores // N``
  ONNX Runtime threads. A worker that dies breaks the pool; the pool is restarted and the
  evaluations that had not come back re-run, named in :attr:`Executor.reruns`.
* :class:`DaskExecutor` (``--scheduler tcp://host:port``, extra ``workbench[dask]``): a dask
  distributed client. The scheduler re-runs an evaluation whose worker is lost; which ones it
  re-ran is read from the scheduler and named in :attr:`Executor.reruns`.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import threading
from pathlib import Path

from ..errors import Cancelled, WorkbenchError


def _cancelled(cancel) -> bool:
    if cancel is None:
        return False
    return cancel.is_set() if hasattr(cancel, "is_set") else bool(cancel())


def _payload(switch, batches: list, names: list) -> dict:
    """What a worker needs to run the emulation: the FP32 model, the kind of switchable model,
    the samples and the outputs to return."""
    return {"model": switch.model.model.SerializeToString(), "all_fp16": switch.all_fp16,
            "batches": batches, "names": list(names)}


def _token(payload: dict) -> str:
    h = hashlib.sha256(payload["model"])
    h.update(repr((payload["all_fp16"], payload["names"])).encode())
    for feed in payload["batches"]:
        for k in sorted(feed):
            h.update(k.encode())
            h.update(feed[k].tobytes())
    return h.hexdigest()[:20]


# -- the worker side (module level: picklable by reference) ------------------------------------
_WORKER_CACHE: dict = {}
_WORKER_LOCK = threading.Lock()
#: Switchable models built by workers of this process (a test reads it: once per model, not per task).
BUILDS = [0]


def _worker_model(token: str, payload, threads):
    """The switchable model and samples of ``token``, built on first use in this process."""
    with _WORKER_LOCK:
        if token not in _WORKER_CACHE:
            import onnx

            from ..evaluate.emulate import SwitchableModel
            from ..graph.model import ModelInfo

            if isinstance(payload, (str, Path)):
                payload = pickle.loads(Path(payload).read_bytes())
            info = ModelInfo(onnx.load_from_string(payload["model"]))
            switch = SwitchableModel(info, all_fp16=payload["all_fp16"], threads=threads)
            BUILDS[0] += 1
            _WORKER_CACHE.clear()  # one model and sample set per worker at a time
            _WORKER_CACHE[token] = (switch, payload["batches"], payload["names"])
        return _WORKER_CACHE[token]


def run_task(token: str, payload, threads, flags: dict) -> dict:
    """One emulated run in a worker: {output name: rows}."""
    switch, batches, names = _worker_model(token, payload, threads)
    return switch.run(batches, flags, names)


def _dask_task(payload, token: str, threads, flags: dict) -> dict:
    return run_task(token, payload, threads, flags)


class Bound:
    """An executor bound to one switchable model and sample set: :meth:`run_many`."""

    def __init__(self, executor, switch, batches: list, names: list):
        self.executor, self.switch, self.batches, self.names = executor, switch, batches, list(names)

    def run_many(self, configs: list, on_done=None, cancel=None, labels=None) -> list:
        """Outputs of each of ``configs`` (flag feeds), in order. ``on_done(i, outputs)`` is called
        as each comes back; ``cancel`` stops between evaluations (Cancelled)."""
        return self.executor._run_many(self, configs, on_done, cancel, labels)


class Executor:
    """The interface: :meth:`bind`, then ``Bound.run_many``; :attr:`reruns` lists evaluations
    that had to run again (a lost worker), :attr:`workers` how many run at once."""

    name = "in-process"
    workers = 1

    def __init__(self):
        self.reruns: list[str] = []

    def bind(self, switch, batches: list, names: list) -> Bound:
        return Bound(self, switch, batches, names)

    def describe(self) -> str:
        return self.name

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _run_many(self, bound, configs, on_done, cancel, labels) -> list:
        out = []
        for i, flags in enumerate(configs):
            if _cancelled(cancel):
                raise Cancelled(f"Cancelled after {i} of {len(configs)} evaluations.")
            got = bound.switch.run(bound.batches, flags, bound.names)
            out.append(got)
            if on_done is not None:
                on_done(i, got)
        return out


class InProcess(Executor):
    """Every evaluation here, one after the other (the default)."""


class LocalProcesses(Executor):
    """``workers`` spawned local processes (see the module docstring).

    Args:
        workers: processes (>= 1).
        threads: ONNX Runtime threads per worker (default: cores // workers, at least 1).
    """

    def __init__(self, workers: int, threads: int | None = None):
        super().__init__()
        if int(workers) < 1:
            raise WorkbenchError(f"--workers must be at least 1, got {workers}.")
        self.workers = int(workers)
        self.threads = threads or max(1, (os.cpu_count() or 1) // self.workers)
        self.name = f"{self.workers} local worker process(es), {self.threads} thread(s) each"
        self._pool = None
        self._dir = None
        self._files: dict = {}

    def _new_pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def bind(self, switch, batches, names) -> Bound:
        bound = Bound(self, switch, batches, names)
        payload = _payload(switch, batches, names)
        bound.token = _token(payload)
        if bound.token not in self._files:  # written once; each worker reads it once
            if self._dir is None:
                self._dir = tempfile.TemporaryDirectory(prefix="workbench_sweep_")
            path = Path(self._dir.name) / f"{bound.token}.pkl"
            path.write_bytes(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
            self._files[bound.token] = str(path)
        return bound

    def _run_many(self, bound, configs, on_done, cancel, labels) -> list:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        results: dict = {}
        todo = list(range(len(configs)))
        attempts = 0
        while todo:
            if self._pool is None:
                self._pool = self._new_pool()
            futures = {self._pool.submit(run_task, bound.token, self._files[bound.token], self.threads,
                                         configs[i]): i for i in todo}
            broken = False
            pending = set(futures)
            while pending:
                if _cancelled(cancel):
                    for f in pending:
                        f.cancel()
                    raise Cancelled(f"Cancelled after {len(results)} of {len(configs)} evaluations.")
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for f in done:
                    i = futures[f]
                    try:
                        got = f.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    results[i] = got
                    if on_done is not None:
                        on_done(i, got)
            todo = [i for i in todo if i not in results]
            if broken:
                attempts += 1
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                for i in todo:
                    self.reruns.append(f"evaluation {_label(labels, i)} re-ran: a worker process died")
                if attempts > 2:
                    raise WorkbenchError(f"Worker processes kept dying ({attempts} times); "
                                         f"{len(todo)} evaluation(s) could not run. Try fewer --workers.")
        return [results[i] for i in range(len(configs))]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def _label(labels, i: int) -> str:
    return f"{i + 1} ({labels[i]})" if labels is not None and i < len(labels) else str(i + 1)


def _suspicious(dask_scheduler=None, keys=()) -> dict:
    """On the scheduler: how many times each task's worker was lost while it ran."""
    return {k: getattr(dask_scheduler.tasks.get(k), "suspicious", 0) for k in keys}


class DaskExecutor(Executor):
    """Evaluations on a dask distributed cluster.

    Args:
        scheduler: "tcp://host:port" of a running scheduler, or a ``distributed.Client``.
        threads: ONNX Runtime threads per task (default: ONNX Runtime's own choice).
    """

    def __init__(self, scheduler, threads: int | None = None):
        super().__init__()
        from .._optional import require

        distributed = require("distributed", "distributed sweeps (--scheduler)", "dask")
        self._own = not isinstance(scheduler, distributed.Client)
        try:
            self.client = distributed.Client(scheduler, timeout="20s") if self._own else scheduler
        except OSError as exc:
            raise WorkbenchError(f"Cannot reach the dask scheduler at {scheduler!r}: {exc}") from None
        self.threads = threads
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        self.name = f"dask scheduler {self.client.scheduler.address} ({self.workers} worker(s))"
        self._scattered: dict = {}

    def bind(self, switch, batches, names) -> Bound:
        bound = Bound(self, switch, batches, names)
        payload = _payload(switch, batches, names)
        bound.token = _token(payload)
        if bound.token not in self._scattered:  # sent once to every worker
            self._scattered[bound.token] = self.client.scatter(payload, broadcast=True, hash=False)
        return bound

    def _run_many(self, bound, configs, on_done, cancel, labels) -> list:
        from distributed import as_completed

        data = self._scattered[bound.token]
        futures = [self.client.submit(_dask_task, data, bound.token, self.threads, flags, pure=False)
                   for flags in configs]
        index = {f.key: i for i, f in enumerate(futures)}
        results: dict = {}
        try:
            for f in as_completed(futures):
                if _cancelled(cancel):
                    raise Cancelled(f"Cancelled after {len(results)} of {len(configs)} evaluations.")
                i = index[f.key]
                results[i] = f.result()
                if on_done is not None:
                    on_done(i, results[i])
            lost = self.client.run_on_scheduler(_suspicious, keys=list(index))
            for key, times in lost.items():
                if times:
                    self.reruns.append(f"evaluation {_label(labels, index[key])} re-ran {times} time(s): "
                                       "its worker was lost")
        finally:
            for f in futures:
                if not f.done():
                    f.cancel()
        return [results[i] for i in range(len(configs))]

    def close(self) -> None:
        if self._own:
            self.client.close()


def make_executor(workers: int | None = None, scheduler: str | None = None) -> Executor:
    """The executor for ``--workers N`` / ``--scheduler ADDRESS`` (in-process when neither)."""
    if workers and scheduler:
        raise WorkbenchError("Give --workers (local processes) or --scheduler (a dask cluster), not both.")
    if scheduler:
        return DaskExecutor(scheduler)
    if workers and int(workers) > 1:
        return LocalProcesses(int(workers))
    return InProcess()


__all__ = ["Bound", "DaskExecutor", "Executor", "InProcess", "LocalProcesses", "make_executor", "run_task"]
