"""Runs of the switchable emulation that recompute only what a changed threshold can reach.

A range search (:mod:`workbench.search.autorange`) walks the tensors in graph order and tries a
few thresholds for one tensor at a time, everything else fixed. A trial that changes tensor
``t``'s scale computes exactly what the last one computed up to the first node reading that
scale. :class:`DownstreamRuns` keeps the values of a *checkpoint* (a tensor every path from the
inputs to the outputs goes through, :func:`~workbench.evaluate.reuse.cut_tensors`, the
switches counting as constants) before that node, per sample, and runs only the part of the
graph after it. The checkpoint's values are valid while no switch read before it changes (the
key of the cache is those switches); the next checkpoint is computed from the previous one.

The same nodes run on the same inputs with the same kernels (exact ONNX semantics): the outputs
are bit for bit those of a full run (``tests/evaluate/test_downstream.py``). Memory: one
checkpoint's values over the search's samples, at most :data:`BUDGET_BYTES`; a checkpoint that
would not fit is not used (those trials run the whole graph). On a small model, where a full run
takes less than :data:`MIN_FULL_RUN_S`, building and warming a checkpoint's sessions costs more
than the few trials it serves save: every trial runs the whole graph (the first one is timed).
"""
from __future__ import annotations

import time

import numpy as np

from ..graph.semantics import EXACT
from .emulate import FP16_FLAGS, INT8_FLAGS, SCALE, TENSOR_FLAGS
from .reuse import subgraphs, cut_tensors, float16_tensors, node_inputs, sub_model, typed_inputs
from .rows import concat_rows

#: Checkpoints used over the graph (more: less recomputed per trial, more sessions to build).
CHECKPOINTS = 12
#: Most bytes of checkpoint values kept (two checkpoints: the one in use and the one before).
BUDGET_BYTES = 256 << 20
#: A full run faster than this (seconds) is cheaper than a checkpoint's new sessions and their first
#: runs (tens of milliseconds): trials then run the whole graph (benchmarks/search_speed.py, detector).
MIN_FULL_RUN_S = 0.05
SWITCHES = (INT8_FLAGS, FP16_FLAGS, SCALE, TENSOR_FLAGS)


class DownstreamRuns:
    """Trials of one switchable model (:class:`~workbench.evaluate.emulate.SwitchableModel`) on
    fixed ``batches`` (merged feeds) that differ in one tensor's scale.

    Args:
        switch: the switchable model.
        batches: the feeds every trial runs on (as the scorer holds them).
        names: the outputs to return.
        min_full_run_s: below this full-run time (measured on the first trial) every trial runs
            the whole graph (0: always use checkpoints).
    """

    def __init__(self, switch, batches: list, names: list, *, checkpoints: int = CHECKPOINTS,
                 budget_bytes: int = BUDGET_BYTES, min_full_run_s: float = MIN_FULL_RUN_S):
        self.switch, self.batches, self.names = switch, batches, list(names)
        self.budget = budget_bytes
        self.min_full_run_s = min_full_run_s
        self.full_run_s = None  # one full run, timed on the first trial that has a checkpoint
        g = switch.proto.graph
        self._pos = {o: k for k, n in enumerate(g.node) for o in n.output if o}
        outputs = {o.name for o in g.output}
        half = float16_tensors(g)
        self._inputs = [node_inputs(n) for n in g.node]
        cuts = [t for t in cut_tensors(g, SWITCHES) if t not in half and t not in outputs]
        if len(cuts) > checkpoints:
            step = len(cuts) / checkpoints
            cuts = [cuts[int((k + 1) * step) - 1] for k in range(checkpoints)]
        self.cuts = cuts
        self._readers = _switch_readers(g, self._inputs)  # (switch, index or None) -> first reader's position
        self._sessions: dict = {}
        self._kept: dict = {}  # checkpoint -> (key, values per batch)
        self.full_runs = self.partial_runs = 0
        self.nodes_run = 0
        self._sizes: dict = {}

    # -- which checkpoint serves a tensor ----------------------------------------------------
    def checkpoint(self, tensor: str) -> str | None:
        """The latest checkpoint before the first node reading ``tensor``'s scale (None: none)."""
        i = self.switch.tensor_index[tensor]
        first = min((p for (sw, j), p in self._readers.items() if sw == SCALE and j in (i, None)), default=None)
        if first is None:
            return None
        before = [c for c in self.cuts if self._pos[c] < first]
        return before[-1] if before else None

    def _key(self, checkpoint: str, flags: dict) -> bytes:
        """The switches read before ``checkpoint`` (its values depend on nothing else)."""
        limit = self._pos[checkpoint]
        parts = []
        for (sw, j), p in sorted(self._readers.items(), key=lambda kv: (kv[0][0], -1 if kv[0][1] is None
                                                                         else kv[0][1])):
            if p < limit:
                v = np.asarray(flags[sw])
                parts.append(v.tobytes() if j is None else v[j].tobytes())
        return b"|".join(parts)

    # -- running -----------------------------------------------------------------------------
    def run_many(self, tensor: str, trials: list) -> list:
        """Outputs ({name: rows}) of each trial's switches (``trials``: flags dicts that differ
        in ``tensor``'s scale only)."""
        c = self.checkpoint(tensor)
        out = []
        if c is not None and self.min_full_run_s > 0 and self.full_run_s is None:
            started = time.perf_counter()
            out.append(self.switch.run(self.batches, trials[0], self.names))
            self.full_run_s = time.perf_counter() - started
            self.full_runs += 1
            trials = trials[1:]
        small = self.full_run_s is not None and self.full_run_s < self.min_full_run_s
        values = self._values(c, trials[0]) if c is not None and trials and not small else None
        if values is None:
            self.full_runs += len(trials)
            return out + [self.switch.run(self.batches, flags, self.names) for flags in trials]
        session, fed = self._session((c,), tuple(self.names))
        for flags in trials:
            chunks = [session.run(self.names, self._feed(fed, b, flags, {c: values[b]}))
                      for b in range(len(self.batches))]
            out.append(dict(zip(self.names, chunks[0])) if len(chunks) == 1 else
                       {n: concat_rows([ch[i] for ch in chunks]) for i, n in enumerate(self.names)})
        self.partial_runs += len(trials)
        return out

    def _feed(self, fed: list, b: int, flags: dict, have: dict) -> dict:
        feed = self.batches[b]
        return {t: (have[t] if t in have else flags[t] if t in flags else feed[t]) for t in fed}

    def _values(self, c: str, flags: dict):
        """Values of checkpoint ``c`` under ``flags`` (cached while its key holds), or None when
        they would not fit the budget."""
        key = self._key(c, flags)
        kept = self._kept.get(c)
        if kept is not None and kept[0] == key:
            return kept[1]
        if self._sizes.get(c, 0) > self.budget // 2:
            return None
        # from the latest earlier checkpoint still valid under these switches, else the inputs
        start = next((p for p in reversed(self.cuts[:self.cuts.index(c)])
                      if p in self._kept and self._kept[p][0] == self._key(p, flags)), None)
        have = (start,) if start is not None else ()
        session, fed = self._session(have, (c,))
        values = [session.run([c], self._feed(fed, b, flags, {start: self._kept[start][1][b]} if start else {}))[0]
                  for b in range(len(self.batches))]
        size = sum(v.nbytes for v in values)
        self._sizes[c] = size
        if size > self.budget // 2:
            return None
        # keep this checkpoint and the one it came from (the next segment starts there)
        self._kept = {p: v for p, v in self._kept.items() if p == start}
        self._kept[c] = (key, values)
        return values

    def _session(self, have: tuple, targets: tuple):
        k = (have, targets)
        if k not in self._sessions:
            from ..backends.ort import OrtSessionLoader

            sub, fed = sub_model(self.switch.proto, list(targets), set(have))
            sample = {t: self._kept[t][1][0] for t in have if t in self._kept}
            typed_inputs(sub, sample)
            self.nodes_run += len(sub.graph.node)
            session = OrtSessionLoader(sub, optimization=EXACT, threads=self.switch.threads)()
            self._sessions[k] = (session, fed)
        return self._sessions[k]


def _switch_readers(graph, inputs: list) -> dict:
    """(switch input, index or None) -> the position of the first node that reads it (in its
    subgraphs too): through a ``Gather`` of one constant index (that index), or otherwise
    (None: every index)."""
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer if not t.dims}
    first: dict = {}

    def scan(nodes, k):
        for n in nodes:
            for slot, i in enumerate(n.input):
                if i not in SWITCHES:
                    continue
                if n.op_type == "Gather" and slot == 0 and len(n.input) > 1 and n.input[1] in consts:
                    key = (i, int(consts[n.input[1]]))
                else:
                    key = (i, None)
                first[key] = min(first.get(key, k), k)
            for sub in subgraphs(n):
                scan(sub.node, k)

    for k, n in enumerate(graph.node):
        # a top-level Gather's value is read where its consumers are: attribute it to them
        if n.op_type == "Gather" and n.input and n.input[0] in SWITCHES:
            continue
        scan([n], k)
    readers: dict = {}
    for j, ins in enumerate(inputs):
        for i in ins:
            readers.setdefault(i, []).append(j)
    for k, n in enumerate(graph.node):  # top-level Gathers: the first node reading their output
        if not (n.op_type == "Gather" and n.input and n.input[0] in SWITCHES):
            continue
        key = (n.input[0], int(consts[n.input[1]])) if len(n.input) > 1 and n.input[1] in consts else (n.input[0], None)
        at = [j for o in n.output for j in readers.get(o, [])] or [k]
        first[key] = min(first.get(key, min(at)), min(at))
    return first


__all__ = ["BUDGET_BYTES", "CHECKPOINTS", "MIN_FULL_RUN_S", "DownstreamRuns"]
