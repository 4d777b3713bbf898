"""Runs of the emulation that recompute only what a changed threshold can reach.

A range search (:mod:`workbench.search.autorange`) walks the tensors in graph order and tries a
few thresholds for one tensor at a time, everything else fixed. A trial that changes tensor
``t``'s scale computes exactly what the current configuration computed up to the first node
reading that scale. :class:`DownstreamRuns` keeps the current configuration's values of a few
*checkpoints* (tensors every path from the inputs to the outputs goes through,
:func:`~workbench.evaluate.reuse.cut_tensors`, the switches counting as constants), per sample,
and runs only the part of the graph after the latest checkpoint before that node.

* Every run also returns the later checkpoints' values (ONNX Runtime computes them anyway).
  When the search keeps a trial (:meth:`DownstreamRuns.settle`), those become the current
  values: no run is spent on keeping checkpoints up to date, and one session per checkpoint
  serves everything.
* Checkpoints are picked where tensors are small: the smallest cut (by shape inference) in each
  of :data:`CHECKPOINTS` equal stretches of the graph.
* Samples are split into interleaved folds (sample ``i`` in fold ``i % folds``, as
  :class:`~workbench.search.scoring.PlanScorer` scores them); a run can compute one fold first
  (:meth:`DownstreamRuns.run` with ``fold``) and the rest later, so a search can drop a trial
  that already loses on one fold at half the cost (:attr:`DownstreamRuns.splits`: not when a
  full run takes under :data:`MIN_SPLIT_RUN_S`, where the second call costs more).

* Each fold's rows are cut into one part per core, run at once on one-thread sessions
  (:mod:`workbench.backends.lanes`); no part is one row cut from more.

The same nodes run on the same inputs with the same kernels (exact ONNX semantics): the outputs
are bit for bit those of a full run (``tests/evaluate/test_downstream.py``). Memory: the current
checkpoints plus those of the last :data:`KEEP_RECENT` runs (a run of one fold is dropped before
a whole one), at most :data:`BUDGET_BYTES` in all;
checkpoints that would not fit are dropped (the largest first; with none, every run is a full
run). On a small model, where a full run takes less than :data:`MIN_FULL_RUN_S`, building a
checkpoint's session costs more than the few trials it serves save: every run is a full run.
"""
from __future__ import annotations

import hashlib
import time

import numpy as np

from ..backends.lanes import MIN_PART_ROWS, cut_rows, lane_count, ort_lanes
from ..graph.semantics import EXACT
from .emulate import SCALE
from .reuse import cut_tensors, float16_tensors, node_inputs, sub_model, typed_inputs
from .downstream_graph import SWITCHES, cut_sizes, switch_readers
from .rows import concat_rows

#: Checkpoints used over the graph (more: less recomputed per trial, more sessions to build).
CHECKPOINTS = 12
#: Most bytes of checkpoint values kept (the current ones and those of recent runs).
BUDGET_BYTES = 256 << 20
#: Runs whose later checkpoint values are kept until :meth:`DownstreamRuns.settle`.
KEEP_RECENT = 3
#: A full run faster than this (seconds) is cheaper than a checkpoint's new sessions and their first
#: runs (tens of milliseconds): every run is a full run (benchmarks/search_speed.py, detector).
MIN_FULL_RUN_S = 0.05
#: A full run faster than this (seconds) is not split into folds (the second call costs more than it may save).
MIN_SPLIT_RUN_S = 0.002


class DownstreamRuns:
    """Runs of one emulation model (a :class:`~workbench.evaluate.fixed_plan.FixedPlanModel` or a
    :class:`~workbench.evaluate.emulate.SwitchableModel`) on fixed ``batches`` (merged feeds).

    Args:
        model: the emulation (``proto``, ``tensor_index``, ``threads``, ``run``).
        batches: the feeds every run uses (as the scorer holds them).
        names: the outputs to return.
        folds: interleaved folds a run can be split into (1: none).
        min_full_run_s: below this full-run time (the first run, timed) every run is a full run
            (0: always use checkpoints).
    """

    def __init__(self, model, batches: list, names: list, *, folds: int = 1, checkpoints: int = CHECKPOINTS,
                 budget_bytes: int = BUDGET_BYTES, min_full_run_s: float = MIN_FULL_RUN_S):
        self.model, self.batches, self.names = model, batches, list(names)
        self.budget, self.min_full_run_s, self.wanted = budget_bytes, min_full_run_s, checkpoints
        g = model.proto.graph
        self._pos = {o: k for k, n in enumerate(g.node) for o in n.output if o}
        half, outputs = float16_tensors(g), {o.name for o in g.output}
        self._cut_candidates = [t for t in cut_tensors(g, SWITCHES) if t not in half and t not in outputs]
        self._readers = switch_readers(g, [node_inputs(n) for n in g.node])  # (switch, index) -> first reader
        self.lanes = lane_count(model.threads)
        self.parts, self.folds = _parts(batches, folds, self.lanes)
        self._feeds = [batches[b] if whole else {k: v[rows] for k, v in batches[b].items()}
                       for b, _, rows, whole in self.parts]
        self.cuts = None  # chosen on the first run
        self.full_run_s = None
        self._sessions: dict = {}
        self._store: dict = {}  # checkpoint -> (key, {part: values}) of the current configuration
        self._recent: list = []  # [(digest, {checkpoint: (key, {part: values})})] of the last runs
        self._last = (None, {})  # (digest, {part: outputs}) of the last run, to complete a fold run
        self._shapes = None  # part -> [(row shape, dtype) per output], from the first full run
        self.full_runs = self.partial_runs = self.fills = 0

    # -- checkpoints ----------------------------------------------------------------------------
    def _choose_cuts(self) -> list:
        cands = self._cut_candidates
        if not cands or self.wanted <= 0:
            return []
        sizes = cut_sizes(self.model.proto, self.batches, cands)  # bytes over every sample, None: unknown
        step = len(cands) / min(self.wanted, len(cands))
        picked = []
        for k in range(min(self.wanted, len(cands))):
            stretch = cands[int(k * step):int((k + 1) * step)]
            known = [t for t in stretch if sizes.get(t) is not None]
            picked.append(min(reversed(known), key=lambda t: sizes[t]) if known else stretch[-1])
        picked = list(dict.fromkeys(picked))
        room = self.budget // (KEEP_RECENT + 1)
        while picked and sum(sizes.get(t) or 0 for t in picked) > room:
            picked.remove(max(picked, key=lambda t: sizes.get(t) or 0))
        return [t for t in cands if t in picked]

    def _ensure_cuts(self) -> list:
        if self.cuts is None:  # chosen on first use (shape inference over the batches)
            self.cuts = self._choose_cuts()
        return self.cuts

    def checkpoint(self, tensor: str) -> str | None:
        """The latest checkpoint before the first node reading ``tensor``'s scale (None: none)."""
        self._ensure_cuts()
        i = self.model.tensor_index[tensor]
        first = min((p for (sw, j), p in self._readers.items() if sw == SCALE and j in (i, None)), default=None)
        if first is None:
            return None
        before = [c for c in self.cuts if self._pos[c] < first]
        return before[-1] if before else None

    def _key(self, checkpoint: str, flags: dict) -> bytes:
        """The switches read up to the node writing ``checkpoint`` (its values depend on nothing else)."""
        limit = self._pos[checkpoint]
        parts = []
        for (sw, j), p in sorted(self._readers.items(), key=lambda kv: (kv[0][0], -1 if kv[0][1] is None else kv[0][1])):
            if p <= limit:
                v = np.asarray(flags[sw])
                parts.append(v.tobytes() if j is None else v[j].tobytes())
        return b"|".join(parts)

    def _held(self, c: str):
        """Every (key, {part: values}) held for checkpoint ``c``: the current ones, then the
        latest runs' first."""
        for entry in [self._store] + [r for _, r in reversed(self._recent)]:
            if c in entry:
                yield entry[c]

    def _kept(self, c: str, flags: dict, parts: list):
        """{part: values} of checkpoint ``c`` under ``flags`` for ``parts``, or None."""
        key = self._key(c, flags)
        return next((v for k, v in self._held(c) if k == key and all(p in v for p in parts)), None)

    def settle(self, flags: dict) -> None:
        """``flags`` is now the current configuration: keep the checkpoint values computed under
        it (by any recent run), drop the rest."""
        parts = list(range(len(self.parts)))
        store = {}
        for c in self.cuts or ():
            got = self._kept(c, flags, parts)
            if got is not None:
                store[c] = (self._key(c, flags), got)
        self._store, self._recent = store, []

    @property
    def splits(self) -> bool:
        """Whether running one fold first pays: there are folds and a full run is not so short
        that a second session call costs more than the half it may save (see ``min_full_run_s``)."""
        return self.folds > 1 and self.full_run_s is not None and self.full_run_s >= MIN_SPLIT_RUN_S

    # -- running --------------------------------------------------------------------------------
    def run(self, flags: dict, tensor: str | None = None, fold: int | None = None) -> dict:
        """Outputs ({name: rows of every sample}) of the emulation under ``flags``, which differ
        from the current configuration (:meth:`settle`) in ``tensor``'s scale only (None: any
        change; a full run). With ``fold``, only that fold's samples are computed; the other rows
        are zeros until a later run of the same ``flags`` (without ``fold``) completes them."""
        if fold is not None and not 0 <= fold < self.folds:
            raise ValueError(f"fold {fold} of {self.folds}")
        parts = [p for p, (_, f, _, _) in enumerate(self.parts) if fold is None or f in (fold, None)]
        digest = _digest(flags)
        done = self._last[1] if self._last[0] == digest else {}
        if fold is not None and self._shapes is None:  # the other rows' shapes are not known yet: run them all
            parts = list(range(len(self.parts)))
        todo = [p for p in parts if p not in done]
        if todo:
            outs = self._compute(flags, tensor, todo)
            done = {**done, **outs}
        if self._shapes is None and len(done) == len(self.parts):
            self._shapes = {p: [(v.shape[1:], v.dtype) for v in outs_p] for p, outs_p in done.items()}
        self._last = (digest, done)
        return self._assemble(done)

    def _compute(self, flags: dict, tensor, parts: list) -> dict:
        self._ensure_cuts()
        start = None
        if tensor is not None and self.full_run_s is not None and self.full_run_s >= self.min_full_run_s:
            start = self.checkpoint(tensor)
            if start is not None and self._kept(start, flags, parts) is None:
                self._fill(start, flags, parts)  # its values then join the current ones
        started = time.perf_counter()
        outs = self._run_from(start, flags, parts)
        if start is None and self.full_run_s is None:
            self.full_run_s = (time.perf_counter() - started) * len(self.parts) / len(parts)
            if self.full_run_s < self.min_full_run_s:  # small model: full runs only, no values kept
                self.cuts, self._store, self._recent = [], {}, []
        if start is None:
            self.full_runs += 1
        else:
            self.partial_runs += 1
        return outs

    def _fill(self, c: str, flags: dict, parts: list) -> None:
        """Compute checkpoint ``c`` under ``flags`` from the latest earlier one still valid (or
        the inputs): one run, whose later checkpoints are kept like any run's. ``c``'s values
        are the current configuration's (a trial changes nothing read before its checkpoint):
        they join the current values, so the next trials of this stretch find them."""
        earlier = [p for p in self.cuts[:self.cuts.index(c)] if self._kept(p, flags, parts) is not None]
        self._run_from(earlier[-1] if earlier else None, flags, parts)
        self.fills += 1
        key, got = self._key(c, flags), self._kept(c, flags, parts)
        held = self._store.get(c)
        values = dict(held[1]) if held is not None and held[0] == key else {}
        values.update({p: got[p] for p in parts})
        self._store[c] = (key, values)

    def _run_from(self, start, flags: dict, parts: list) -> dict:
        """Run ``parts`` from checkpoint ``start`` (None: the inputs); keeps the later
        checkpoints' values as a recent run's; returns {part: [output arrays]}."""
        lanes, fed, after = self._session(start)
        later = [c for c in after if c in self.cuts]  # a small model keeps none
        have = self._kept(start, flags, parts) if start is not None else {}
        fetch = self.names + later
        entry: dict = {}
        outs = {}
        feeds = [{t: (have[p] if t == start else flags[t] if t in flags else self._feeds[p][t]) for t in fed}
                 for p in parts]
        for p, values in zip(parts, lanes.run_each(fetch, feeds)):  # the parts at once
            outs[p] = values[:len(self.names)]
            for c, v in zip(later, values[len(self.names):]):
                entry.setdefault(c, {})[p] = v
        if later:
            digest = _digest(flags)
            merged = next((r for d, r in self._recent if d == digest), None)
            if merged is None:
                merged = {}
                self._recent.append((digest, merged))
                while len(self._recent) > KEEP_RECENT:  # the oldest run of some folds only goes first
                    partial = [i for i, (_, r) in enumerate(self._recent)
                               if any(len(v[1]) < len(self.parts) for v in r.values())]
                    self._recent.pop(partial[0] if partial else 0)
            for c, vals in entry.items():
                key = self._key(c, flags)
                if c not in merged or merged[c][0] != key:
                    merged[c] = (key, {})
                merged[c][1].update(vals)
        return outs

    def _session(self, start):
        if start not in self._sessions:
            later = [c for c in self.cuts if start is None or self._pos[c] > self._pos[start]]
            sub, fed = sub_model(self.model.proto, self.names + later, {start} if start else set())
            if start is not None:  # the checkpoint's dtype and rank, from any values held of it
                typed_inputs(sub, {start: next(iter(next(self._held(start))[1].values()))})
            lanes = ort_lanes(sub, self.model.threads, optimization=EXACT,
                              external=getattr(self.model, "external", None), shared_arena=True)
            self._sessions[start] = (lanes, fed, later)
        return self._sessions[start]

    def _assemble(self, outs: dict) -> dict:
        """{name: rows of every sample} from per-part outputs (missing parts: zero rows)."""
        result = {}
        for i, name in enumerate(self.names):
            per_batch = []
            for b in range(len(self.batches)):
                mine = [(p, rows, whole) for p, (pb, _, rows, whole) in enumerate(self.parts) if pb == b]
                if len(mine) == 1 and mine[0][2] and mine[0][0] in outs:
                    per_batch.append(outs[mine[0][0]][i])
                    continue
                shape, dtype = self._shapes[mine[0][0]][i] if self._shapes else (outs[mine[0][0]][i].shape[1:],
                                                                                  outs[mine[0][0]][i].dtype)
                full = np.zeros((sum(len(r) for _, r, _ in mine),) + tuple(shape), dtype=dtype)
                for p, rows, _ in mine:
                    if p in outs:
                        full[rows] = outs[p][i]
                per_batch.append(full)
            result[name] = concat_rows(per_batch)
        return result


def _digest(flags: dict) -> bytes:
    return hashlib.sha1(b"|".join(np.ascontiguousarray(flags[s]).tobytes() for s in SWITCHES if s in flags)).digest()


def _parts(batches: list, folds: int, lanes: int = 1) -> tuple:
    """([(batch, fold, rows, whole)], folds): the rows of each batch in each fold (sample ``i``
    of all batches in fold ``i % folds``), each cut into up to ``lanes`` parts run at once
    (:mod:`workbench.backends.lanes`). A part is never one row cut from more
    (:data:`~workbench.backends.lanes.MIN_PART_ROWS`): a batch whose folds would leave one is
    one part of every fold (``fold`` None). A batch whose inputs do not all have its rows on
    axis 0 cannot be split: then there are no folds (1) and no cuts."""
    sizes = [len(next(iter(f.values()))) if f else 0 for f in batches]
    if any(np.ndim(v) == 0 or len(v) != n for f, n in zip(batches, sizes) for v in f.values()):
        folds, lanes = 1, 1
    folds = max(1, folds)
    parts, start = [], 0
    for b, n in enumerate(sizes):
        idx = np.arange(start, start + n)
        groups = [(f, np.nonzero(idx % folds == f)[0]) for f in range(folds)] if folds > 1 else [(None, np.arange(n))]
        if n > 1 and any(0 < len(rows) < MIN_PART_ROWS for _, rows in groups):
            groups = [(None, np.arange(n))]
        for f, rows in groups:
            for cut in cut_rows(len(rows), lanes) if len(rows) else ():
                parts.append((b, f, rows[cut], len(rows[cut]) == n))
        start += n
    return parts, folds


__all__ = ["BUDGET_BYTES", "CHECKPOINTS", "KEEP_RECENT", "MIN_FULL_RUN_S", "MIN_SPLIT_RUN_S", "DownstreamRuns"]
