"""Read-only facts about a model's graph, computed once per ModelInfo and shared.

Plan, export, emulation and sensitivity all read the same :class:`GraphFacts` (get it with
``model_info.facts``): node order and op types, producers and consumers, the INT8 targets,
which nodes can compute in FP16, which are INT8 by default, and the one placement rule two
layers need: which input of a residual Add TensorRT fuses into its producer
(:meth:`GraphFacts.fused_add_input`). One source for every rule (STYLE.md item 11).

This module imports nothing from the workbench but the op lists and the FP16 schema rule, so
every layer can import it (``ModelInfo.facts`` imports it on first use).
"""
from __future__ import annotations

from functools import cached_property
from typing import Any

import onnx

from .fp16_slots import fp16_slots
from .ops import POOL_OPS, WEIGHTED_OPS

#: Op types that are INT8 by default when the model has them as quantizable nodes. Add only
#: when it merges two activations (a residual / branch add; see :meth:`GraphFacts.default_int8`).
DEFAULT_INT8_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "MaxPool", "AveragePool",
                    "GlobalAveragePool", "Add")


class GraphFacts:
    """Facts about one model (``info``, a ModelInfo). Build it through ``info.facts``.

    Attributes:
        info / model / opset: the ModelInfo, its ModelProto and opset.
        nodes: NodeProtos in graph order; order: their names; op_types: name -> op type.
        producers / consumers: tensor -> producing node / list of consuming nodes.
        consumer_slots: tensor -> [(node, input index)]; out_slot: tensor -> (node, output index).
        graph_inputs (list) / graph_outputs (set) / initializers (set) / constants (name -> array).
        const_nodes: Constant-node output -> node name. dq_nodes: DequantizeLinear node names.
        targets: node -> QuantTarget of every INT8-capable node.
        names: every node and tensor name (for unique new names).
        subgraph_reads: tensors read inside If/Loop/Scan bodies.
        upgraded_from: the original opset when this is an opset-upgraded copy, else None.
    """

    def __init__(self, info, upgraded_from: int | None = None):
        self.info = info
        self.model = info.model
        self.upgraded_from = upgraded_from
        self.opset = info.opset
        self.nodes = list(self.model.graph.node)
        self._by_name = {n.name: n for n in self.nodes}
        self.order = [n.name for n in self.nodes]
        self.op_types = {n.name: n.op_type for n in self.nodes}
        self.producers = info.producers
        self.consumers = info.consumers
        self.consumer_slots: dict[str, list] = {}
        self.out_slot: dict[str, tuple] = {}
        for n in self.nodes:
            for i, t in enumerate(n.input):
                if t:
                    self.consumer_slots.setdefault(t, []).append((n.name, i))
            for j, t in enumerate(n.output):
                if t:
                    self.out_slot[t] = (n.name, j)
        self.graph_outputs = {o.name for o in self.model.graph.output}
        self.graph_inputs = [i.name for i in self.model.graph.input]
        self.initializers = {t.name for t in self.model.graph.initializer}
        self.const_nodes = {n.output[0]: n.name for n in self.nodes if n.op_type == "Constant" and n.output}
        self.constants = info.constants
        self.targets = {t.node: t for t in info.quantizable_nodes()}
        self.dq_nodes = {n.name for n in self.nodes if n.op_type == "DequantizeLinear"}
        self.names = set(self.op_types) | {t for n in self.nodes for t in list(n.input) + list(n.output)}
        self.names |= self.initializers | set(self.graph_inputs) | self.graph_outputs
        self.subgraph_reads = {t for n in self.nodes for a in n.attribute
                               for sg in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs))
                               for sn in sg.node for t in sn.input}
        self._slots: dict[str, tuple] = {}
        self.cache: dict[Any, Any] = {}  # derived tensors (quantized / FP16 weights) of the exporter

    # -- nodes ---------------------------------------------------------------------------------
    def node(self, name: str) -> onnx.NodeProto:
        return self._by_name[name]

    def slots(self, name: str) -> tuple:
        """(input indices, output indices) that become float16 when ``name`` runs in FP16."""
        s = self._slots.get(name)
        if s is None:
            s = self._slots[name] = fp16_slots(self._by_name[name], self.opset, self.info)
        return s

    def cached(self, key, make):
        """``self.cache[key]``, computed by ``make()`` on first use."""
        value = self.cache.get(key)
        if value is None:
            value = self.cache[key] = make()
        return value

    # -- precision facts -----------------------------------------------------------------------
    @cached_property
    def fingerprint(self) -> str:
        return self.info.fingerprint()

    @cached_property
    def int8_capable(self) -> frozenset:
        return frozenset(self.targets)

    @cached_property
    def default_int8(self) -> frozenset:
        """Nodes INT8 by default: :data:`DEFAULT_INT8_OPS`, Add only with two activation inputs."""
        out = set()
        for t in self.targets.values():
            if t.op_type == "Add":
                if len(t.activation_inputs) >= 2:  # a residual / branch add, not a bias add
                    out.add(t.node)
            elif t.op_type in DEFAULT_INT8_OPS:
                out.add(t.node)
        return frozenset(out)

    @cached_property
    def fp16_capable(self) -> frozenset:
        """Nodes whose ONNX schema lets a float input/output pair be float16."""
        return frozenset(n.name for n in self.nodes if self.slots(n.name)[1])

    @cached_property
    def float_tensors(self) -> frozenset:
        return frozenset(self.info.float_tensors())

    # -- placement rule ------------------------------------------------------------------------
    def fused_add_input(self, node_name: str, int8: set) -> int | None:
        """Index of the input of Add ``node_name`` that TensorRT fuses into its producer (so it
        gets no Q/DQ), or None: the input that comes straight from an INT8 Conv/ConvTranspose/
        Gemm/MatMul feeding nothing else, when the Add has two activation inputs."""
        target = self.targets.get(node_name)
        if target is None or target.op_type != "Add":
            return None
        node = self._by_name[node_name]
        acts = [i for i, t in enumerate(node.input) if t in target.activation_inputs]
        if len(acts) < 2:
            return None
        for i in acts:
            t = node.input[i]
            prod = self.producers.get(t)
            if (prod is not None and prod in int8 and self.op_types[prod] in WEIGHTED_OPS
                    and len(self.consumers.get(t, ())) == 1 and t not in self.graph_outputs):
                return i
        return None


__all__ = ["GraphFacts", "DEFAULT_INT8_OPS", "WEIGHTED_OPS", "POOL_OPS"]
