"""A switchable fake-quantization model: one ONNX Runtime session for every precision plan.

Sensitivity analysis and the automatic mixed-precision search evaluate hundreds of plans.
Rebuilding and reloading a Q/DQ model for each would take most of their time, so this module
builds ONE emulation graph in which every quantizable node's inputs pass through

    If(int8[k] or fp16[k], If(int8[k], DQ(Q(x, scale_t)), fp16 node), x)

with the per-node flags ``int8`` / ``fp16`` and the per-tensor scales fed as graph inputs.
Weights get the same switch between their per-channel fake-quantized, float16 and original
values (precomputed constants). A plan change is then just a different feed.

**The emulation is the file.** It computes what the exported TensorRT file (variant "trt")
computes under exact ONNX semantics, not what the FP16-emulating "ort" twin computes:

* INT8: which input of a node gets Q/DQ is the exporter's own decision
  (:func:`workbench.export.qdq.place_qdq`), tabulated over the INT8 states of the nodes it depends
  on (a residual Add's producers); the Q/DQ arithmetic is the file's, bit for bit.
* FP16: the node's branch runs on real float16 tensors as in the file (Cast to float16 in front,
  float16 constants, Cast back to float32 behind), so ONNX Runtime picks the same float16 kernel
  or the same float32 fallback for it.
* Where the two can still differ: ONNX Runtime runs a node without a float16 CPU kernel in
  float32 behind inserted Casts, forces a float16-capable node between two such nodes to float32
  too, and then drops the float32 -> float16 -> float32 Cast pairs between them
  (``InsertCastTransformer`` and ``RemoveDuplicateCastTransformer``, which run even with graph
  optimizations off). A chain of such FP16 nodes in the file thus skips some float16
  roundings that the emulation, whose branches end at ``If`` boundaries, keeps. The difference
  is bounded per sample by :data:`~workbench.evaluate.metrics.FILE_NOISE_REL` of the sample's
  largest |output| (tests/evaluate/test_emulation_is_the_file.py measures it on random plans:
  worst 1.3 % on a transformer with an FP16 base, 0.6 % on classifiers; about 9 plans in 10 are
  bit-equal). A search therefore treats samples whose top-1 margin is below it as near-ties
  (:func:`~workbench.evaluate.metrics.near_ties`) and checks its result on the written file.

Models below opset 13 are emulated on the exporter's opset-13 copy. For a search that keeps
one plan and changes only amax values (the ``auto`` ranges), only the scale feed changes.
"""
from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..calib.amax import symmetric_scale
from ..errors import InternalError, WorkbenchError
from ..export.build import MIN_QDQ_OPSET, _prepare
from ..export.qdq import place_qdq, quantize_weight
from .metrics import FILE_NOISE_REL, file_noise
from .rows import concat_rows
from .emulate_graph import branch, fp16_round, if_node, merge_batches, node_variant
from ..graph.edit import assemble, unread
from ..graph.model import ModelInfo

INT8_FLAGS = "wb_int8"
FP16_FLAGS = "wb_fp16"
SCALE = "wb_scale"
TENSOR_FLAGS = "wb_tensor_on"
#: The most nodes a placement decision may depend on (2**N combinations are tabulated).
MAX_PLACEMENT_DEPS = 6


def fake_quant_weight(w: np.ndarray, axis: int) -> np.ndarray:
    """Per-output-channel symmetric INT8 round trip of a weight, bit-identical to what the
    exported ``DequantizeLinear`` computes from :func:`workbench.export.qdq.quantize_weight`."""
    q, scale = quantize_weight(w, axis)
    shape = [1] * q.ndim
    shape[axis] = -1
    return (q.astype(np.float32) * scale.reshape(shape)).astype(np.float32)


def needs_all_fp16(plan, switched) -> list:
    """Nodes of ``plan`` in reduced precision that are not in ``switched``."""
    return [n for n in plan.nodes if n not in switched and str(plan.precision(n)) != "fp32"]


class SwitchableModel:
    """Fake-quant emulation of ``model`` whose per-node precision is chosen at run time.

    Every quantizable node gets INT8 and FP16 switches; with ``all_fp16`` every other node that
    can run in FP16 (per the exporter's schema rule, :func:`workbench.graph.fp16_slots.fp16_slots`)
    gets an FP16 switch too. Other nodes stay FP32.

    Args:
        model: the FP32 model.
        all_fp16: also switch the non-quantizable nodes (needed for FP16-base plans; each switch
            costs a little on every run, so it is off for plans that keep those nodes FP32).
        threads: the cores a run uses (None: all this process may use); a run's samples are
            cut into that many parts run at once on one-thread sessions (:mod:`workbench.backends.lanes`).
    """

    def __init__(self, model: ModelInfo, all_fp16: bool = False, threads: int | None = None):
        self.model = model
        self.all_fp16 = all_fp16
        self.threads = threads
        # the exporter's facts (of its opset-13 copy for older models): same names, same placement
        self.facts = _prepare(model, model.opset < MIN_QDQ_OPSET)
        g = self.facts
        self.targets = dict(g.targets)
        self.nodes = [n for n in g.order if n in self.targets or (all_fp16 and g.slots(n)[1])]
        if not self.nodes:
            raise WorkbenchError(f"'{model.name}' has no node that can run in INT8 or FP16.")
        self.index = {n: k for k, n in enumerate(self.nodes)}
        self.placement = {n: self._placement_table(n) for n in self.targets}
        self.qdq_tensors = {n: [g.node(n).input[j] for j in sorted(set().union(*table.values()))]
                            for n, (deps, table) in self.placement.items()}
        self.tensors = list(dict.fromkeys(x for xs in self.qdq_tensors.values() for x in xs))
        self.tensor_index = {t: i for i, t in enumerate(self.tensors)}
        self.proto = self._build()
        self._lanes = None

    # -- placement: the exporter's decision, tabulated ------------------------------------------
    def _placement_table(self, name: str) -> tuple:
        """(deps, {frozenset of INT8 deps: input indices with Q/DQ}) for INT8 node ``name``: the
        exporter's placement for every INT8 state of the targets producing its inputs."""
        g = self.facts
        node = g.node(name)
        deps = sorted({g.producers[x] for x in node.input if x in g.producers and g.producers[x] in self.targets
                       and g.producers[x] != name}, key=g.order.index)
        if len(deps) > MAX_PLACEMENT_DEPS:
            raise InternalError(f"Node '{name}' reads {len(deps)} quantizable producers; the emulation "
                                f"tabulates at most {MAX_PLACEMENT_DEPS}.")
        table = {}
        for k in range(len(deps) + 1):
            for combo in itertools.combinations(deps, k):
                place = place_qdq(g, [name, *combo], "trt", lambda t: True)
                table[frozenset(combo)] = frozenset(i for slots in place.activations.values()
                                                    for n, i in slots if n == name)
        return deps, table

    def _switch(self, nodes: list, name: str, j: int, i8: str, const_index, tag: str) -> str | None:
        """The flag that turns on Q/DQ of input ``j`` of ``name`` (None: never quantized)."""
        deps, table = self.placement[name]
        on = [combo for combo, slots in table.items() if j in slots]
        if not on:
            return None
        if len(on) == len(table):
            return i8
        flags = {}
        for d in deps:
            flags[d] = f"{tag}_d{self.index[d]}"
            nodes.append(helper.make_node("Gather", [INT8_FLAGS, const_index(self.index[d], f"{tag}_dk")],
                                          [flags[d]], axis=0))
            nodes.append(helper.make_node("Not", [flags[d]], [flags[d] + "_n"]))
        terms = []
        for m, combo in enumerate(on):
            term = i8
            for d in deps:
                lit = flags[d] if d in combo else flags[d] + "_n"
                nodes.append(helper.make_node("And", [term, lit], [f"{tag}_s{j}_{m}_{d}"]))
                term = f"{tag}_s{j}_{m}_{d}"
            terms.append(term)
        out = terms[0]
        for m, term in enumerate(terms[1:]):
            nodes.append(helper.make_node("Or", [out, term], [f"{tag}_s{j}_or{m}"]))
            out = f"{tag}_s{j}_or{m}"
        return out

    # -- graph -------------------------------------------------------------------------------
    def _build(self) -> onnx.ModelProto:
        """The FP32 graph with every switched node replaced by an ``If`` over its variants: the
        INT8 node (Q/DQ inputs, fake-quantized weight), the FP16 node (inputs, parameters and
        outputs rounded to float16) and the plain node. Each branch holds its own copy of the
        node, which writes straight into the ``If`` outputs: no value is copied through."""
        g = self.facts
        inputs = list(g.model.graph.input) + [
            helper.make_tensor_value_info(INT8_FLAGS, TensorProto.BOOL, [len(self.nodes)]),
            helper.make_tensor_value_info(FP16_FLAGS, TensorProto.BOOL, [len(self.nodes)]),
            helper.make_tensor_value_info(SCALE, TensorProto.FLOAT, [len(self.tensors)]),
            helper.make_tensor_value_info(TENSOR_FLAGS, TensorProto.BOOL, [len(self.tensors)]),
        ]
        self._new_inits = [numpy_helper.from_array(np.array(0, np.int8), "wb_zp")]
        self._consts: set = set()
        types = g.info.tensor_types
        new_nodes = []
        for node in g.model.graph.node:
            if node.name not in self.index:
                new_nodes.append(node)
                continue
            k = self.index[node.name]
            tag = f"wb{k}"
            i8, f16 = f"{tag}_i8", f"{tag}_f16"
            ki = self._index_const(k)
            new_nodes += [helper.make_node("Gather", [INT8_FLAGS, ki], [i8], axis=0),
                          helper.make_node("Gather", [FP16_FLAGS, ki], [f16], axis=0)]
            outs = [o for o in node.output if o]
            local = {}
            owned = self._owned_weight(node, tag + "f", local, lambda w: w)
            plain = (*node_variant(node, tag + "f", local, []), owned)
            half = self._fp16_variant(node, tag) if g.slots(node.name)[1] else None
            quant = self._int8_variant(node, tag, i8, new_nodes) if node.name in self.targets else None
            lower = plain if half is None else if_node(f16, half, plain, outs, types, tag + "h")
            top = lower if quant is None else if_node(i8, quant, lower, outs, types, tag + "q")
            top_node = top[0][-1]
            for j, o in enumerate(outs):  # the outermost If writes the node's own output names
                top_node.output[j] = o
            new_nodes += top[0]
        outputs = [o.name for o in g.model.graph.output]
        every = [t.name for t in g.model.graph.initializer] + [t.name for t in self._new_inits]
        return assemble(g.model, new_nodes, new_initializers=self._new_inits, inputs=inputs,
                        dead=unread(every, new_nodes, outputs))

    def _index_const(self, i: int) -> str:
        name = f"wb_i{i}"
        if name not in self._consts:
            self._consts.add(name)
            self._new_inits.append(numpy_helper.from_array(np.array(i, np.int64), name))
        return name

    def _init(self, name: str, value: np.ndarray) -> str:
        self._new_inits.append(numpy_helper.from_array(value, name))
        return name

    def _fp16_variant(self, node, tag: str) -> tuple:
        """The node as the TensorRT file runs it: real float16 inputs, parameters and outputs
        (Cast to float16 in front, float16 constants, Cast back to float32 behind). A Cast
        float16 -> float32 -> float16 is exact, so chained FP16 nodes see the values the
        file passes between them."""
        g = self.facts
        half_in, half_out = (set(x) for x in g.slots(node.name))
        extra, inputs = [], {}
        for j, x in enumerate(node.input):
            if not x or j not in half_in:
                continue
            if x in g.constants:
                if g.constants[x].dtype != np.float32:
                    continue
                inputs[j] = self._init(f"{tag}_h{j}", g.constants[x].astype(np.float16))
            elif g.info.tensor_types.get(x, TensorProto.FLOAT) == TensorProto.FLOAT:
                extra.append(helper.make_node("Cast", [x], [f"{tag}_h{j}"], to=TensorProto.FLOAT16))
                inputs[j] = f"{tag}_h{j}"
        owned = self._owned_weight(node, tag + "r", inputs, lambda w: w.astype(np.float16))
        nodes, results = node_variant(node, tag + "r", inputs, extra)
        out_index = [j for j, y in enumerate(node.output) if y]
        for n, (j, y) in enumerate(zip(out_index, list(results))):
            if j in half_out:
                nodes.append(helper.make_node("Cast", [y], [y + "_32"], to=TensorProto.FLOAT))
                results[n] = y + "_32"
        return nodes, results, owned

    def _owned_weight(self, node, tag: str, inputs: dict, value) -> list:
        """For a Gemm/MatMul with a constant weight: that weight (``value(w)``) as an initializer
        of the branch itself, wired into ``inputs`` (see :meth:`_if`); [] for other nodes."""
        t = self.targets.get(node.name)
        if node.op_type not in ("Gemm", "MatMul") or t is None or t.weight_input is None:
            return []
        j = list(node.input).index(t.weight_input)
        name = f"{tag}_wl{j}"
        inputs[j] = name
        return [numpy_helper.from_array(value(self.facts.constants[t.weight_input].astype(np.float32)), name)]

    def _tensor_on(self, outer: list, i: int) -> str:
        """The (shared) flag of tensor ``i``'s Q/DQ switch, read from :data:`TENSOR_FLAGS`."""
        name = f"wb_on{i}"
        if name not in self._consts:
            self._consts.add(name)
            outer.append(helper.make_node("Gather", [TENSOR_FLAGS, self._index_const(i)], [name], axis=0))
        return name

    def _int8_variant(self, node, tag: str, i8: str, outer: list) -> list:
        """The node on Q/DQ inputs (where the exporter puts them) with its fake-quantized weight."""
        g = self.facts
        t = self.targets[node.name]
        extra, inputs = [], {}
        for j, x in enumerate(node.input):
            if not x:
                continue
            if x == t.weight_input:
                # a computed weight, like the exporter's DequantizeLinear output (see _if)
                wq = self._init(f"{tag}_wq{j}", fake_quant_weight(g.constants[x].astype(np.float32), t.weight_axis))
                extra.append(helper.make_node("Identity", [wq], [wq + "_v"]))
                inputs[j] = wq + "_v"
                continue
            switch = self._switch(outer, node.name, j, i8, lambda i, _p: self._index_const(i), tag)
            if switch is None:
                continue
            ti = self._index_const(self.tensor_index[x])
            scale, q, dq = (f"{tag}_{s}{j}" for s in ("s", "q", "dq"))
            fake_quant = [helper.make_node("Gather", [SCALE, ti], [scale], axis=0),
                          helper.make_node("QuantizeLinear", [x, scale, "wb_zp"], [q]),
                          helper.make_node("DequantizeLinear", [q, scale, "wb_zp"], [dq])]
            on = self._tensor_on(outer, self.tensor_index[x])
            if switch != i8:  # quantized only for some INT8 states of its producers (a fused residual Add)
                outer.append(helper.make_node("And", [switch, on], [f"{tag}_on{j}"]))
                on = f"{tag}_on{j}"
            # the per-tensor switch (all on unless a range analysis turns one tensor off)
            branch(extra, on, fake_quant, dq, [], x, dq + "_sel")
            inputs[j] = dq + "_sel"
        return node_variant(node, tag + "q", inputs, extra)

    # -- running -----------------------------------------------------------------------------
    @property
    def lanes(self):
        """The sessions of the graph (:class:`~workbench.backends.lanes.Lanes`: a run's samples
        cut into one part per core), with exact ONNX semantics like every accuracy figure."""
        if self._lanes is None:
            from ..backends.lanes import ort_lanes
            from ..graph.semantics import EXACT

            self._lanes = ort_lanes(self.proto, self.threads, optimization=EXACT)
        return self._lanes

    def scales(self, ranges, overrides: dict | None = None, needed=()) -> np.ndarray:
        """float32 scales (amax / 127) of :attr:`tensors` from ``ranges`` and ``overrides``;
        a tensor in ``needed`` without a range is a WorkbenchError (others get scale 1)."""
        overrides = overrides or {}
        scale = np.ones(len(self.tensors), dtype=np.float32)
        for name, i in self.tensor_index.items():
            if name in overrides:
                scale[i] = symmetric_scale(overrides[name])
            elif name in ranges:
                scale[i] = symmetric_scale(ranges[name].amax)
            elif name in needed:
                raise WorkbenchError(
                    f"No calibrated range for tensor '{name}', which an INT8 node of the plan reads; "
                    "recalibrate observing it (tensors='quantizable' or 'all')."
                )
        return scale

    def int8_inputs(self, i8) -> list:
        """The tensors (in :attr:`tensors` order) that the nodes INT8 under ``i8`` (the
        :data:`INT8_FLAGS` switches) may read with Q/DQ."""
        read = {x for n, xs in self.qdq_tensors.items() if i8[self.index[n]] for x in xs}
        return [t for t in self.tensors if t in read]

    def flags(self, plan, ranges, amax_overrides: dict | None = None, tensors_off=()) -> dict:
        """The switch inputs for ``plan`` and ``ranges`` (plus extra amax overrides); the
        tensors in ``tensors_off`` keep their float values even where INT8 nodes read them."""
        i8 = np.zeros(len(self.nodes), dtype=bool)
        f16 = np.zeros(len(self.nodes), dtype=bool)
        outside = needs_all_fp16(plan, self.index)
        if outside:
            raise WorkbenchError(f"Node '{outside[0]}' is FP16 in the plan but has no switch here; "
                                 "build the emulation with all_fp16=True.")
        for n, k in self.index.items():
            p = str(plan.precision(n))
            i8[k] = p == "int8"
            f16[k] = p == "fp16"
        overrides = dict(getattr(plan, "amax_overrides", {}) or {})
        overrides.update(amax_overrides or {})
        needed = set(self.int8_inputs(i8))
        on = np.ones(len(self.tensors), dtype=bool)
        for name in tensors_off:
            on[self.tensor_index[name]] = False
        return {INT8_FLAGS: i8, FP16_FLAGS: f16, SCALE: self.scales(ranges, overrides, needed), TENSOR_FLAGS: on}

    def run(self, batches: list, flags: dict, output_names=None) -> dict:
        """Run every batch with the switch ``flags``; returns {output: all rows}. Pass batches
        merged with :func:`workbench.graph.feeds.merge_batches` to make one call per run."""
        return run_batches(self.lanes, batches, flags, output_names or [o.name for o in self.model.outputs])


def run_batches(lanes, batches: list, switches: dict, names: list) -> dict:
    """{output: all rows} of ``lanes`` (:class:`~workbench.backends.lanes.Lanes`) on every batch
    with the ``switches`` fed beside it."""
    chunks = [lanes.run(names, feed, switches) for feed in batches]
    if len(chunks) == 1:
        return dict(zip(names, chunks[0]))
    return {n: concat_rows([c[i] for c in chunks]) for i, n in enumerate(names)}  # images of several sizes


__all__ = ["SwitchableModel", "fake_quant_weight", "needs_all_fp16", "merge_batches", "run_batches", "INT8_FLAGS",
           "FP16_FLAGS", "SCALE", "TENSOR_FLAGS", "FILE_NOISE_REL", "file_noise"]
