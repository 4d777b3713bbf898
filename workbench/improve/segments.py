"""Running a model piece by piece over fixed batches, re-running only what a change touched.

Bias correction and weight rounding go through the model layer by layer, and each layer must
see the layers before it as already changed. Re-running the whole Q/DQ model for every level
costs (levels x one inference). :class:`SegmentRunner` keeps, per batch, the tensors that
cross the point it has reached; a fetch runs only the nodes from the first changed node to the
producers of the fetched tensors (a sub-model with the crossing tensors as inputs), so a pass
over all layers costs about one inference plus a session per level.
"""
from __future__ import annotations

import bisect

import numpy as np
import onnx
from onnx import helper

from .graphops import tensor_types
from .runner import ExactRunner


def _topo(graph: onnx.GraphProto) -> list:
    """The nodes in a topological order (the graph's own order when it is one)."""
    produced = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, out = list(graph.node), []
    while pending:
        rest = []
        for n in pending:
            if all(t in produced for t in n.input):
                out.append(n)
                produced.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ValueError("graph has a cycle or reads an undefined tensor")
        pending = rest
    return out


class SegmentRunner:
    """Runs ``model`` over ``batches`` in pieces (exact semantics).

    Args:
        model: the model (its fed inputs, e.g. weights made graph inputs, come in ``feeds``).
        batches: the calibration batches (input name -> array), kept for the runner's life.
        changing: nodes whose feeds may still change (tensors a re-run from them needs are kept
            until :meth:`settle` says they will not change again).
    """

    def __init__(self, model: onnx.ModelProto, batches: list, changing=()):
        g = model.graph
        self.model = model
        self.nodes = _topo(g)
        self.pos = {n.name: i for i, n in enumerate(self.nodes)}
        self.producer = {t: i for i, n in enumerate(self.nodes) for t in n.output if t}
        self.last_use: dict[str, int] = {}
        for i, n in enumerate(self.nodes):
            for t in n.input:
                self.last_use[t] = i
        for o in g.output:
            self.last_use[o.name] = len(self.nodes)
        self.inits = {i.name: i for i in g.initializer}
        self.types = tensor_types(model)
        self.changing = {self.pos[n] for n in changing if n in self.pos}
        data = set(batches[0]) if batches else set()
        ready = set(self.inits) | {i.name for i in g.input if i.name not in data} | {""}
        self.static = set()  # nodes computed from constants and feeds only (Constant, weight DQ)
        for i, n in enumerate(self.nodes):
            if all(t in ready for t in n.input):
                self.static.add(i)
                ready.update(n.output)
        self.cache = [dict(b) for b in batches]
        self.done = 0  # nodes [0, done) have valid outputs in the cache where still needed

    def invalidate(self, nodes) -> None:
        """Nodes whose inputs (feeds) changed: their outputs and everything after are stale."""
        idx = [self.pos[n] for n in nodes if n in self.pos]
        if idx:
            self.done = min(self.done, min(idx))

    def settle(self, nodes) -> None:
        """``nodes`` will not be invalidated again."""
        self.changing -= {self.pos[n] for n in nodes if n in self.pos}

    def fetch(self, names: list, feeds: dict | None = None) -> list:
        """Per batch, name -> value of ``names`` (running what is missing or stale)."""
        feeds = feeds or {}
        need = [self.producer[t] for t in names if t in self.producer]
        end = max(need) + 1 if need else 0
        if end > self.done or any(t not in self.cache[0] for t in names if t in self.producer):
            start = min(self.done, min((self.producer[t] for t in names if t in self.producer
                                        and t not in self.cache[0]), default=self.done))
            self._run(start, max(end, start + 1) if end else start, names, feeds)
        return [{t: c[t] if t in c else feeds[t] for t in names} for c in self.cache]

    def _run(self, start: int, end: int, names: list, feeds: dict) -> None:
        seg = [n for i, n in enumerate(self.nodes[start:end], start) if i not in self.static]
        wanted = {t for n in seg for t in n.input} | set(names)
        consts = []  # static nodes the segment reads: recomputed each time, never cached
        for i in sorted(self.static, reverse=True):
            if any(t in wanted for t in self.nodes[i].output):
                consts.insert(0, self.nodes[i])
                wanted.update(self.nodes[i].input)
        inside = {t for n in seg + consts for t in n.output}
        reads = [t for n in consts + seg for t in n.input if t and t not in inside]
        reads = list(dict.fromkeys(reads))
        from_feeds = [t for t in reads if t in feeds]
        from_cache = [t for t in reads if t not in feeds and t not in self.inits]
        cut = sorted(p for p in self.changing if start <= p < end)  # re-runs may start there

        def keep(t: str) -> bool:
            if t in names or self.last_use.get(t, -1) >= end:
                return True
            later = cut[bisect.bisect_right(cut, self.producer[t]):]
            return bool(later) and later[0] <= self.last_use.get(t, -1)

        outs = [t for n in seg for t in n.output if t and keep(t)]
        outs += [t for n in consts for t in n.output if t in names]
        floor = min(self.changing | {start})
        for c in self.cache:  # drop what was produced at or after ``start`` (stale) or no re-run needs
            for t in [t for t in c if t in self.producer and (self.producer[t] >= start or self.last_use.get(t, -1) < floor)]:
                del c[t]
        missing = [t for t in from_cache if t not in self.cache[0]]
        if missing:
            raise RuntimeError(f"segment needs uncached tensors {missing[:3]}")
        sub = self._submodel(consts + seg, from_cache + from_feeds, outs, reads)
        run = ExactRunner(sub)
        for c in self.cache:
            vals = dict(zip(outs, run.session.run(outs, {**{t: c[t] for t in from_cache},
                                                          **{t: feeds[t] for t in from_feeds}})))
            c.update(vals)
        self.done = end

    def _submodel(self, nodes: list, inputs: list, outputs: list, reads: list) -> onnx.ModelProto:
        sample = self.cache[0]
        vis = [helper.make_tensor_value_info(t, helper.np_dtype_to_tensor_dtype(np.asarray(sample[t]).dtype), None)
               for t in inputs if t in sample]
        vis += [self._feed_info(t) for t in inputs if t not in sample]
        used = {t for n in nodes for t in n.input}
        graph = helper.make_graph(nodes, "segment", vis,
                                  [helper.make_tensor_value_info(t, self.types.get(t, onnx.TensorProto.FLOAT), None)
                                   for t in outputs],
                                  [self.inits[t] for t in used if t in self.inits])
        return helper.make_model(graph, opset_imports=self.model.opset_import, ir_version=self.model.ir_version)

    def _feed_info(self, name: str):
        return next(i for i in self.model.graph.input if i.name == name)
