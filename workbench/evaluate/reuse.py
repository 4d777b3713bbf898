"""Evaluate a model again without recomputing what did not change since the last one.

The app rebuilds after each plan change: the new Q/DQ file differs from the last one only
from the changed nodes on, so everything upstream computes the same values. Each tensor of an
exported model gets a *signature*: a hash of its producer's op, attributes and input
signatures, down to the initializers' bytes and the graph inputs (:func:`signatures`). Two
tensors with the same signature hold the same values on the same samples, in any two models.

After a run, :class:`ReuseCache` keeps the values of a few *checkpoints*, tensors every path
from the inputs to the outputs goes through (:func:`cut_tensors`), spread over the graph within
a memory budget; the next model's run starts from the latest checkpoint whose signature it
shares: only the nodes after it run (exact ONNX semantics, the same kernels on the same
inputs: the outputs are bit for bit those of a full run, ``tests/evaluate/test_reuse.py``).
Per-layer rows of tensors whose signature did not change are reused as they are.
"""
from __future__ import annotations

import hashlib
import uuid

import numpy as np

from .rows import concat_rows

#: checkpoints kept after a run (spread over the graph's nodes)
CHECKPOINTS = 12
#: most bytes of checkpoint values kept (the earliest, largest ones are dropped first)
BUDGET_BYTES = 128 << 20


def _h(*parts) -> str:
    d = hashlib.blake2b(digest_size=16)
    for p in parts:
        d.update(p if isinstance(p, bytes) else str(p).encode())
        d.update(b"\x00")
    return d.hexdigest()


def signatures(graph) -> dict:
    """tensor name -> signature (hex) of every tensor of ``graph`` (an ``onnx.GraphProto`` whose
    nodes are in topological order, as ONNX requires). A node with a subgraph attribute gets a
    signature of its own each time (its body may read outer tensors): nothing after it is reused."""
    import onnx

    sig = {}
    for t in graph.initializer:
        c = onnx.TensorProto()
        c.CopyFrom(t)
        c.name = ""
        sig[t.name] = _h("init", c.SerializeToString())
    for i in graph.input:
        sig.setdefault(i.name, _h("input", i.name))
    for node in graph.node:
        attrs = sorted(node.attribute, key=lambda a: a.name)
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in attrs):
            base = _h("opaque", uuid.uuid4().hex)
        else:
            base = _h(node.domain, node.op_type, *[a.SerializeToString() for a in attrs], "|",
                      *[sig.get(i, "") for i in node.input])
        for k, out in enumerate(node.output):
            if out:
                sig[out] = _h(base, k)
    return sig


def subgraphs(node):
    """The subgraphs (If branches, Loop bodies) of a node."""
    from onnx import AttributeProto

    for a in node.attribute:
        if a.type == AttributeProto.GRAPH:
            yield a.g
        elif a.type == AttributeProto.GRAPHS:
            yield from a.graphs


def node_inputs(node) -> list:
    """The node's inputs and the outer tensors its subgraphs (an ``If``'s branches) read."""
    out = list(node.input)
    for sub in subgraphs(node):
        made = {t.name for t in sub.initializer} | {i.name for i in sub.input}
        for n in sub.node:
            out += [i for i in node_inputs(n) if i and i not in made]
            made.update(n.output)
    return list(dict.fromkeys(out))


def cut_tensors(graph, constant_inputs=()) -> list:
    """Tensors, in graph order, that every path from the graph inputs to its outputs goes through
    (after the node producing one, no other tensor computed from the inputs is still waiting to
    be read; tensors computed from constants alone, like a weight's dequantized values, are constants).
    ``constant_inputs``: graph inputs that count as constants (an emulation's switches)."""
    consts = {t.name for t in graph.initializer} | set(constant_inputs)
    inputs = [node_inputs(n) for n in graph.node]  # subgraph reads included
    for n, ins in zip(graph.node, inputs):  # Constant nodes and what only reads constants (a weight's DequantizeLinear)
        if all(not i or i in consts for i in ins):
            consts.update(n.output)
    left: dict = {}
    for ins in inputs:
        for i in ins:
            if i and i not in consts:
                left[i] = left.get(i, 0) + 1
    for o in graph.output:
        left[o.name] = left.get(o.name, 0) + 1
    live = {i.name for i in graph.input if i.name not in consts and left.get(i.name)}
    cuts = []
    for n, ins in zip(graph.node, inputs):
        for i in ins:
            if i in left and i not in consts:
                left[i] -= 1
                if left[i] == 0:
                    live.discard(i)
        outs = [o for o in n.output if o and left.get(o)]
        live.update(outs)
        if len(live) == 1 and len(outs) == 1 and not all(o in consts for o in outs):
            cuts.append(outs[0])
    return cuts


def float16_tensors(graph) -> set:
    """Tensors that hold float16 values (a Cast to float16, float16 initializers or inputs, and
    what nodes compute from them). ONNX Runtime's CPU computes float16 nodes in float32 between
    Casts it inserts, and drops a Cast pair whose middle tensor nobody reads: asking for such a
    tensor as an output changes the values after it. They are never checkpoints nor extra outputs."""
    from onnx import TensorProto

    half = {t.name for t in graph.initializer if t.data_type == TensorProto.FLOAT16}
    half |= {i.name for i in graph.input if i.type.tensor_type.elem_type == TensorProto.FLOAT16}
    for n in graph.node:
        if n.op_type == "Cast":
            to = next((a.i for a in n.attribute if a.name == "to"), None)
            if to == TensorProto.FLOAT16:
                half.update(n.output)
        elif any(i in half for i in n.input):
            half.update(o for o in n.output if o)
    return half


def _needed(g, targets: list, have: set) -> tuple:
    """(positions of the nodes of graph ``g`` that compute ``targets`` from ``have`` and the
    graph inputs, the tensors fed)."""
    nodes = list(g.node)
    producer = {o: k for k, n in enumerate(nodes) for o in n.output if o}
    inits = {t.name for t in g.initializer}
    inputs = {i.name for i in g.input}
    keep, fed, todo, seen = set(), [], list(targets), set()
    while todo:
        t = todo.pop()
        if t in seen or not t:
            continue
        seen.add(t)
        if t in have or (t in inputs and t not in inits):
            fed.append(t)
        elif t in producer:
            k = producer[t]
            if k not in keep:
                keep.add(k)
                todo.extend(node_inputs(nodes[k]))
    return keep, fed


def sub_model(model, targets: list, have: set):
    """The part of ``model`` that computes ``targets`` from ``have`` (tensors fed instead of
    computed) and the graph inputs: (model proto, names fed)."""
    import onnx

    g = model.graph
    keep, fed = _needed(g, targets, have)
    nodes = [n for k, n in enumerate(g.node) if k in keep]
    used = {i for n in nodes for i in node_inputs(n)}
    graph = onnx.helper.make_graph(
        nodes, g.name, [onnx.ValueInfoProto(name=t) for t in fed],
        [onnx.ValueInfoProto(name=t) for t in targets],
        [t for t in g.initializer if t.name in used])
    for i in g.input:  # typed graph inputs keep their declaration
        for slot in graph.input:
            if slot.name == i.name:
                slot.CopyFrom(i)
    sub = onnx.helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return sub, fed


def typed_inputs(sub, values: dict) -> None:
    """Declare the fed checkpoint tensors with their dtype and rank (sizes free, named per tensor:
    ONNX Runtime takes equal names for equal sizes)."""
    from onnx import helper

    for slot in sub.graph.input:
        if slot.type.HasField("tensor_type") or slot.name not in values:
            continue
        a = values[slot.name]
        elem = helper.np_dtype_to_tensor_dtype(a.dtype)
        slot.CopyFrom(helper.make_tensor_value_info(slot.name, elem, [f"{slot.name}:{k}" for k in range(a.ndim)]))


class ReuseCache:
    """Values of the last evaluated model's checkpoints and its per-layer rows, for the next one.

    Args:
        checkpoints: how many checkpoints to keep (spread over the graph).
        budget_bytes: most bytes of kept values.
    """

    def __init__(self, *, checkpoints: int = CHECKPOINTS, budget_bytes: int = BUDGET_BYTES):
        self.checkpoints, self.budget = checkpoints, budget_bytes
        self.evaluator = None
        self.values: dict = {}  # signature -> [array per evaluation batch]
        self.rows: dict = {}  # (tensor, signature) -> per-layer row
        self._layer_sigs: dict = {}  # tensor -> signature of its per-layer value in the last run
        self.kept_bytes = 0
        self.last: dict = {}  # the last run: nodes run / all, per-layer rows reused, checkpoints it resumed from

    def _pick(self, graph, half: set, outputs: list, have: set) -> list:
        """Checkpoints of this run, in graph order: the kept ones it shares with the last run, and
        new ones spread over the part that runs anyway (never a cause of extra work)."""
        cuts = [t for t in cut_tensors(graph) if t not in half and t not in outputs]
        keep, _ = _needed(graph, outputs, have)
        runs = {o for k, n in enumerate(graph.node) if k in keep for o in n.output}
        fresh = [t for t in cuts if t in runs]
        if len(fresh) > self.checkpoints:
            step = len(fresh) / self.checkpoints
            fresh = [fresh[int((k + 1) * step) - 1] for k in range(self.checkpoints)]
        chosen = set(fresh) | {t for t in cuts if t in have}
        return [t for t in cuts if t in chosen]

    def run(self, evaluator, model, layer_tensors: dict, optimization: str) -> tuple:
        """Outputs of ``model`` on every evaluation batch, and the per-layer values of the
        ``layer_tensors`` ({original tensor: its name in ``model``}) whose signature is new, on the
        evaluator's per-layer samples: (outputs, new per-layer values, reused rows)."""
        if self.evaluator is not evaluator:  # other samples: nothing to reuse
            self.evaluator, self.values, self.rows = evaluator, {}, {}
        sig = signatures(model.graph)
        half = float16_tensors(model.graph)
        outputs = [o.name for o in model.graph.output]
        have = {t for t, s in sig.items() if s in self.values}
        checkpoints = self._pick(model.graph, half, outputs, have)
        reused = {t: self.rows[(t, sig.get(name))] for t, name in layer_tensors.items()
                  if (t, sig.get(name)) in self.rows}
        layers = {t: name for t, name in layer_tensors.items() if t not in reused}
        n_layer = evaluator.layer_samples
        first = evaluator.batches[0]
        per_batch = len(next(iter(first.values()))) >= n_layer  # per-layer samples: the first batch's first rows
        folded = [name for name in layers.values() if per_batch and name not in half]
        values = {t: self.values[sig[t]] for t in have}
        compute = [t for t in dict.fromkeys(outputs + checkpoints + folded) if t not in have]
        ran, resumed = self._run(evaluator, model, compute, have, values, optimization,
                                 extra=set(folded) - set(outputs) - set(checkpoints))
        new_layer = {t: np.asarray(values[name][0][:n_layer], dtype=np.float32)
                     for t, name in layers.items() if name in folded}
        apart = {t: name for t, name in layers.items() if name not in folded}
        if apart:  # float16 tensors (asked for on their own) or per-layer samples across batches
            avail = {t for t in checkpoints if t in values} if per_batch else set()
            sub, fed = sub_model(model, list(dict.fromkeys(apart.values())), avail)
            typed_inputs(sub, {t: values[t][0] for t in fed if t in avail})
            feed = ({t: (values[t][0][:n_layer] if t in avail else first[t][:n_layer]) for t in fed} if per_batch
                    else {t: evaluator._layer_feed[t] for t in fed})
            runner = evaluator.runner(sub, list(dict.fromkeys(apart.values())), optimization)
            try:
                got = runner.infer(feed)
            finally:
                runner.close()
            ran += len(sub.graph.node)
            new_layer.update({t: np.asarray(got[name], dtype=np.float32) for t, name in apart.items()})
        self._keep(checkpoints, outputs, values, sig)
        self.last = {"nodes_run": ran, "nodes": len(model.graph.node), "rows_reused": len(reused),
                     "resumed_from": [t for t in resumed if t in have]}
        self._layer_sigs = {t: sig.get(name) for t, name in layer_tensors.items()}
        return {t: concat_rows(values[t]) for t in outputs}, new_layer, reused

    @staticmethod
    def _run(evaluator, model, compute: list, have: set, values: dict, optimization: str,
             extra: set) -> int:
        """Compute ``compute`` on every batch from ``have`` (values in ``values``) and the inputs;
        ``extra`` tensors are taken from the first batch only. Returns (nodes run, tensors fed)."""
        if not compute:
            return 0, []
        sub, fed = sub_model(model, compute, have)
        typed_inputs(sub, {t: values[t][0] for t in fed if t in have})
        runner = evaluator.runner(sub, compute, optimization)
        try:
            for b, feed in enumerate(evaluator.batches):
                names = compute if b == 0 else [t for t in compute if t not in extra]
                got = runner.infer_some({t: (values[t][b] if t in have else feed[t]) for t in fed}, names)
                for t in names:
                    values.setdefault(t, []).append(got[t])
        finally:
            runner.close()
        return len(sub.graph.node), fed

    def _keep(self, checkpoints: list, outputs: list, values: dict, sig: dict) -> None:
        """Keep the outputs and, within the budget, the latest checkpoints (they save the most)."""
        kept, size = {}, 0
        for t in reversed(checkpoints):
            v = values.get(t)
            nbytes = sum(a.nbytes for a in v) if v else 0
            if v and size + nbytes <= self.budget:
                kept[sig[t]], size = v, size + nbytes
        for t in outputs:
            kept[sig[t]] = values[t]
        self.values, self.kept_bytes = kept, size

    def keep_rows(self, rows: list) -> None:
        """Remember the per-layer rows of the last run (dicts with ``tensor``) for the next one."""
        sigs = self._layer_sigs
        self.rows = {(r["tensor"], sigs.get(r["tensor"])): r for r in rows if sigs.get(r["tensor"])}


__all__ = ["ReuseCache", "cut_tensors", "float16_tensors", "node_inputs", "signatures", "subgraphs", "sub_model", "typed_inputs"]
