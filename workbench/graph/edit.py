"""The one small tool every graph edit of the workbench goes through.

Three parts of the pipeline write new ONNX graphs from an existing one: the exporter (Q/DQ
pairs, FP16 casts and weights: :mod:`workbench.export.rewriter`), the recovery of a Q/DQ
model's FP32 graph (:mod:`workbench.imported.recover`) and the emulation graph of the searches
(:mod:`workbench.evaluate.emulate`). They share what an edit needs and nothing else:

* :class:`Names`: fresh tensor and node names that collide with nothing in the graph;
* :func:`copy_node`: a node copy with some inputs/outputs renamed (the original is never edited);
* :func:`unread`: which of some tensors nothing reads any more;
* :func:`assemble`: the edited model: the source's header (IR version, opsets, metadata, graph
  name), the new nodes, its initializers minus the dead ones (and Constant nodes of dead
  tensors), and the value_info of tensors that are still produced.

Why not onnx-graphsurgeon (Polygraphy's companion): our edits are append-only next to the
tensor they read, node names and the original node order must survive (plans, layer tables and
TensorRT's layer names are keyed by ONNX node names, and exported bytes are pinned by
tests/export/test_same_outputs.py), and the exporter runs on every plan change of the app (the
sample model exports in ~0.1 s). graphsurgeon imports the whole graph into Python objects,
re-sorts it and drops value_info on export; that is more than these edits need and changes the
bytes we promise to keep.
"""
from __future__ import annotations

from typing import Iterable

import onnx


class Names:
    """Fresh names: ``unique("conv1_out")`` is ``conv1_out``, then ``conv1_out_1``, ... never a
    name in ``used`` (pass every node, tensor and initializer name of the graph)."""

    def __init__(self, used: Iterable[str] = ()):
        self.used = set(used)

    @classmethod
    def of(cls, graph: onnx.GraphProto) -> "Names":
        """Every node, tensor, input, output and initializer name of ``graph``."""
        used = {n.name for n in graph.node}
        used |= {t for n in graph.node for t in list(n.input) + list(n.output)}
        used |= {i.name for i in graph.input} | {o.name for o in graph.output} | {t.name for t in graph.initializer}
        return cls(used)

    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.used:
            name = f"{base}_{k}"
            k += 1
        self.used.add(name)
        return name


def unique_name(used: set, base: str) -> str:
    """``base`` or ``base_1``, ``base_2``... not in ``used``; the name is added to ``used``."""
    names = Names()
    names.used = used  # share the caller's set
    return names.unique(base)


def copy_node(node: onnx.NodeProto, *, inputs: dict | None = None, outputs: dict | None = None) -> onnx.NodeProto:
    """A copy of ``node`` with ``inputs`` / ``outputs`` (slot index -> new tensor name) renamed."""
    out = onnx.NodeProto()
    out.CopyFrom(node)
    for i, t in (inputs or {}).items():
        out.input[i] = t
    for j, t in (outputs or {}).items():
        out.output[j] = t
    return out


def read_names(nodes: Iterable[onnx.NodeProto]) -> set:
    """Every tensor name ``nodes`` read, inside their subgraphs (``If`` branches...) too."""
    names: set = set()
    for node in nodes:
        names.update(node.input)
        for a in node.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                names |= read_names(sub.node) | {o.name for o in sub.output}
    return names


def unread(candidates: Iterable[str], nodes: Iterable[onnx.NodeProto], graph_outputs: Iterable[str]) -> set:
    """The ``candidates`` that no node of ``nodes`` reads (subgraphs included) and that are not
    graph outputs."""
    read = read_names(nodes) | set(graph_outputs)
    return {t for t in candidates if t not in read}


def assemble(src: onnx.ModelProto, nodes: list, *, initializers: Iterable[onnx.TensorProto] | None = None,
             new_initializers: Iterable[onnx.TensorProto] = (), dead: set = frozenset(), inputs=None,
             keep_value_info=None, producer: str | None = None) -> onnx.ModelProto:
    """The edited model.

    Args:
        src: the model edited (its header, inputs, outputs and value_info are read).
        nodes: the new node list, in topological order.
        initializers: the source initializers to keep (default: all of ``src``'s); those named
            in ``dead`` are dropped, as are Constant nodes whose output is in ``dead``.
        new_initializers: initializers added by the edit.
        inputs: the graph inputs (default: ``src``'s).
        keep_value_info: a predicate on a value_info name (default: every tensor still produced).
        producer: ``producer_name`` of the new model (default: the source's).
    """
    m = onnx.ModelProto()
    m.ir_version = src.ir_version
    m.opset_import.extend(src.opset_import)
    m.producer_name = producer if producer is not None else src.producer_name
    m.producer_version = "0.1" if producer is not None else src.producer_version
    m.metadata_props.extend(src.metadata_props)
    m.functions.extend(src.functions)
    g = m.graph
    g.name = src.graph.name
    g.input.extend(src.graph.input if inputs is None else inputs)
    g.output.extend(src.graph.output)
    g.node.extend(n for n in nodes if not (n.op_type == "Constant" and n.output and n.output[0] in dead))
    g.initializer.extend(t for t in (src.graph.initializer if initializers is None else initializers)
                         if t.name not in dead)
    g.initializer.extend(new_initializers)
    produced = {t for n in g.node for t in n.output} | {i.name for i in g.input}
    keep = keep_value_info or (lambda name: True)
    g.value_info.extend(v for v in src.graph.value_info if v.name in produced and keep(v.name))
    return m


__all__ = ["Names", "assemble", "copy_node", "read_names", "unique_name", "unread"]
