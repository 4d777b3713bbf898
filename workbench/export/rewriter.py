"""The graph rewriter of the exporter and the FP16 conversion it applies.

A tiny append-only rewriter on :mod:`workbench.graph.edit` (which says why not onnx-graphsurgeon):
nodes are only added next to the tensor they read, existing nodes only get an input or output
renamed, and the original order is kept, so the result stays topologically sorted.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import InternalError
from ..graph.edit import assemble, copy_node, unique_name, unread


class Rewriter:
    """Collects additions to a graph and emits the new model in topological order."""

    def __init__(self, g):
        self.g = g
        self.used = set(g.names)
        self.after: dict[str, list] = {}   # anchor tensor -> nodes reading it
        self.inits: list = []              # (name, TensorProto template)
        self.input_map: dict[tuple, str] = {}
        self.output_map: dict[tuple, str] = {}
        self.replaced: set[str] = set()    # constants with a substitute (dropped when unused)

    def unique(self, base: str) -> str:
        return unique_name(self.used, base)

    def init(self, base: str, value) -> str:
        """Add an initializer (ndarray or cached TensorProto) under a fresh name."""
        name = self.unique(base)
        proto = value if isinstance(value, TensorProto) else numpy_helper.from_array(np.asarray(value))
        self.inits.append((name, proto))
        return name

    def node(self, anchor: str, op: str, inputs: list, out_base: str, **attrs) -> str:
        """Add ``op`` reading ``inputs`` right after ``anchor`` is available; returns its output."""
        out = self.unique(out_base)
        n = helper.make_node(op, inputs, [out], name=self.unique(f"{out_base}_{op}"), **attrs)
        self.after.setdefault(anchor, []).append(n)
        return out

    def build(self) -> onnx.ModelProto:
        out_nodes: list = []

        def emit_after(t: str) -> None:
            for n in self.after.pop(t, ()):
                out_nodes.append(n)
                for o in n.output:
                    emit_after(o)

        for name in self.g.graph_inputs:
            emit_after(name)
        for name in self.g.initializers:
            emit_after(name)
        for name, _ in self.inits:
            emit_after(name)
        edited = {k[0] for k in self.input_map} | {k[0] for k in self.output_map}
        for n in self.g.nodes:
            if n.name in edited:
                n = copy_node(n, inputs={i: t for (name, i), t in self.input_map.items() if name == n.name},
                              outputs={j: t for (name, j), t in self.output_map.items() if name == n.name})
            out_nodes.append(n)
            for o in n.output:
                emit_after(o)
        if self.after:  # every anchor is a graph input, initializer or node output
            raise InternalError(f"unplaced nodes for tensors {sorted(self.after)[:5]}")
        added = []
        for name, proto in self.inits:
            t = onnx.TensorProto()
            t.CopyFrom(proto)
            t.name = name
            added.append(t)
        return assemble(self.g.model, out_nodes, new_initializers=added, producer="workbench",
                        dead=unread(self.replaced, out_nodes, self.g.graph_outputs))


def _fp32_output_consumers(g, y: str, fp16: set) -> bool:
    """Whether ``y`` (an FP16 node's output) is read by something that needs FP32."""
    if y in g.graph_outputs or y in g.subgraph_reads:
        return True
    for consumer, i in g.consumer_slots.get(y, ()):
        if consumer not in fp16 or i not in g.slots(consumer)[0]:
            return True
    return False


def apply_fp16(g, rw: Rewriter, fp16: set, *, emulate: bool) -> None:
    """Real FP16 (Cast to float16 around the node, float16 weights) or its FP32 emulation."""
    to_fp16: dict[str, str] = {}   # fp32 tensor -> its float16 (or rounded) version
    fp16_nodes = [n.name for n in g.nodes if n.name in fp16]  # graph order: the same file every run

    def rounded(t: str) -> str:
        if t not in to_fp16:
            if emulate:
                h = rw.node(t, "Cast", [t], f"{t}_to_fp16", to=TensorProto.FLOAT16)
                to_fp16[t] = rw.node(h, "Cast", [h], f"{t}_fp16_rounded", to=TensorProto.FLOAT)
            else:
                to_fp16[t] = rw.node(t, "Cast", [t], f"{t}_to_fp16", to=TensorProto.FLOAT16)
        return to_fp16[t]

    def const16(t: str) -> str:
        if t not in to_fp16:
            kind = "fp16r" if emulate else "fp16"
            proto = g.cached((kind, t), lambda: numpy_helper.from_array(
                g.constants[t].astype(np.float16).astype(np.float32) if emulate
                else g.constants[t].astype(np.float16)))
            to_fp16[t] = rw.init(f"{t}_{kind}", proto)
            rw.replaced.add(t)
        return to_fp16[t]

    # Outputs first, so consumers know the FP16 name of a tensor produced by an FP16 node.
    fp16_out: dict[str, str] = {}
    for name in fp16_nodes:
        node = g.node(name)
        for j in g.slots(name)[1]:
            y = node.output[j]
            if emulate:  # the node writes FP32; round its result to FP16 values
                raw = rw.unique(f"{y}_fp32")
                rw.output_map[(name, j)] = raw
                h = rw.node(raw, "Cast", [raw], f"{y}_to_fp16", to=TensorProto.FLOAT16)
                n = helper.make_node("Cast", [h], [y], name=rw.unique(f"{y}_fp16_rounded_Cast"),
                                     to=TensorProto.FLOAT)
                rw.after.setdefault(h, []).append(n)
                fp16_out[y] = y
            else:
                y16 = rw.unique(f"{y}_fp16")
                rw.output_map[(name, j)] = y16
                fp16_out[y] = y16
                if _fp32_output_consumers(g, y, fp16):
                    n = helper.make_node("Cast", [y16], [y], name=rw.unique(f"{y}_to_fp32_Cast"),
                                         to=TensorProto.FLOAT)
                    rw.after.setdefault(y16, []).append(n)
    for name in fp16_nodes:
        node = g.node(name)
        for i in g.slots(name)[0]:
            t = node.input[i]
            if t in fp16_out:
                new = fp16_out[t]
            elif t in g.constants:
                if g.constants[t].dtype != np.float32:
                    continue
                new = const16(t)
            elif g.info.tensor_types.get(t, TensorProto.FLOAT) == TensorProto.FLOAT:
                new = rounded(t)
            else:
                continue
            if new != t:
                rw.input_map[(name, i)] = new
