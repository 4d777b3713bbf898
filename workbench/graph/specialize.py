"""A graph with some of its inputs fixed: the switches folded, the ``If`` nodes they decide inlined.

The emulation of the searches (:mod:`workbench.evaluate.emulate`) is one graph for every
precision plan: per-node flags are graph inputs, and ``If`` nodes pick each node's variant. A
search that keeps one plan and changes only the scales (``auto`` ranges) pays for that
generality on every run (each ``If`` runs its branch as a subgraph) and on every session it
builds (the graph carries every variant's constants). :func:`specialize` writes the graph for
fixed values of some inputs: the boolean logic over them (``Gather`` of a constant index,
``Not``, ``And``, ``Or``, ``Xor``, ``Identity``) is evaluated here, each ``If`` whose condition
is then known is replaced by the nodes of its taken branch (nested ones too), and what nothing
reads any more is dropped.

The kept nodes are the same nodes on the same inputs: outputs are bit for bit those of the
general graph fed the same values (``tests/evaluate/test_fixed_plan.py``). The branch's own
constants become constants of the main graph; ONNX Runtime treats a constant the same wherever
it sits (the emulation keeps Gemm/MatMul weights as constants of the graph that runs the node,
so pre-packing is the same in both).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .edit import assemble, copy_node, read_names, unread

_LOGIC = {
    "Not": lambda a: np.logical_not(a),
    "And": lambda a, b: np.logical_and(a, b),
    "Or": lambda a, b: np.logical_or(a, b),
    "Xor": lambda a, b: np.logical_xor(a, b),
    "Identity": lambda a: a,
}


def _attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _fold(node, known: dict):
    """The value of ``node``'s output when every input is known and it is switch logic, else None."""
    if not node.input or any(i not in known for i in node.input) or len(node.output) != 1:
        return None
    args = [known[i] for i in node.input]
    if node.op_type == "Gather":
        return np.take(args[0], args[1], axis=_attr(node, "axis", 0))
    if node.op_type in _LOGIC and all(a.dtype == np.bool_ for a in args):
        return _LOGIC[node.op_type](*args)
    return None


def _inline(node, branch: onnx.GraphProto, extra_inits: list) -> list:
    """The nodes of ``branch`` writing ``node``'s outputs (an ``If`` with a known condition)."""
    rename = {}
    produced = {o for n in branch.node for o in n.output}
    tail = []
    for out, res in zip(node.output, branch.output):
        if res.name in produced and res.name not in rename:
            rename[res.name] = out
        else:  # an outer value, a branch constant or an output written twice: copy it
            tail.append(helper.make_node("Identity", [rename.get(res.name, res.name)], [out]))
    nodes = []
    for n in branch.node:
        c = copy_node(n, inputs={k: rename[i] for k, i in enumerate(n.input) if i in rename},
                      outputs={k: rename[o] for k, o in enumerate(n.output) if o in rename})
        if rename and any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in c.attribute):
            _rename_in_subgraphs(c, rename)
        nodes.append(c)
    extra_inits.extend(branch.initializer)
    return nodes + tail


def _rename_in_subgraphs(node, rename: dict) -> None:
    for a in node.attribute:
        for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
            for n in sub.node:
                for k, i in enumerate(n.input):
                    if i in rename:
                        n.input[k] = rename[i]
                _rename_in_subgraphs(n, rename)


def specialize(model: onnx.ModelProto, fixed: dict) -> onnx.ModelProto:
    """``model`` with the graph inputs in ``fixed`` (name -> array) set to those values (see the
    module docstring). Inputs not in ``fixed`` stay inputs; the node order is kept."""
    g = model.graph
    known = {k: np.asarray(v) for k, v in fixed.items()}
    # scalar and small integer constants the switch logic indexes with
    for t in g.initializer:
        if t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) and len(t.dims) <= 1:
            known.setdefault(t.name, numpy_helper.to_array(t))
    switch = set(fixed)  # values derived from the fixed inputs (only those are folded)
    extra_inits: list = []
    todo = list(g.node)[::-1]
    out = []
    while todo:
        node = todo.pop()
        if node.op_type == "If" and node.input[0] in known and node.input[0] in switch:
            taken = _attr(node, "then_branch" if bool(known[node.input[0]]) else "else_branch", None)
            todo.extend(_inline(node, taken, extra_inits)[::-1])
            continue
        if any(i in switch for i in node.input):
            value = _fold(node, known)
            if value is not None:
                known[node.output[0]] = value
                switch.add(node.output[0])
                continue
        out.append(node)
    still = read_names(out)
    for name in switch:  # a folded value something still reads becomes a constant
        if name in still and name not in fixed:
            extra_inits.append(numpy_helper.from_array(np.asarray(known[name]), name))
    inputs = [i for i in g.input if i.name not in fixed]
    fed = [numpy_helper.from_array(np.asarray(known[n]), n) for n in fixed if n in still]
    every = [t.name for t in g.initializer] + [t.name for t in extra_inits]
    dead = unread(every, out, [o.name for o in g.output])
    return assemble(model, out, new_initializers=[t for t in extra_inits + fed if t.name not in dead],
                    dead=dead, inputs=inputs)


__all__ = ["specialize"]
