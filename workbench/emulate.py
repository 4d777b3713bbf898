"""A switchable fake-quantization model: one ONNX Runtime session for every precision plan.

Sensitivity analysis and the automatic mixed-precision search evaluate hundreds of plans.
Rebuilding and reloading a Q/DQ model for each would take most of their time, so this module
builds ONE emulation graph in which every quantizable node's inputs pass through

    If(int8[k], DQ(Q(x, scale_t)), If(fp16[k], fp32(fp16(x)), x))

with the per-node flags ``int8`` / ``fp16`` and the per-tensor scales fed as graph inputs.
Weights get the same switch between their per-channel fake-quantized, FP16-rounded and
original values (precomputed constants), and an FP16 node's output is rounded to FP16 too.
A plan change is then just a different feed. The numbers equal those of the "ort" export
variant of the same plan (checked in the tests); the exported model is still what gets
evaluated when the user rebuilds.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .errors import WorkbenchError
from .amax import symmetric_scale
from .export.qdq import quantize_weight
from .model import ModelInfo

INT8_FLAGS = "wb_int8"
FP16_FLAGS = "wb_fp16"
SCALE = "wb_scale"


def fake_quant_weight(w: np.ndarray, axis: int) -> np.ndarray:
    """Per-output-channel symmetric INT8 round trip of a weight, bit-identical to what the
    exported ``DequantizeLinear`` computes from :func:`workbench.export.qdq.quantize_weight`."""
    q, scale = quantize_weight(w, axis)
    shape = [1] * q.ndim
    shape[axis] = -1
    return (q.astype(np.float32) * scale.reshape(shape)).astype(np.float32)


def _fp16_round(x: str, name: str) -> list:
    """Nodes that round ``x`` to float16 and back into ``name``."""
    return [helper.make_node("Cast", [x], [name + "_16"], to=TensorProto.FLOAT16),
            helper.make_node("Cast", [name + "_16"], [name], to=TensorProto.FLOAT)]


def _branch(nodes: list, cond: str, then_nodes: list, then_out: str, else_value: str, out: str) -> None:
    """Append ``out = cond ? (then_nodes -> then_out) : else_value`` as an ONNX ``If``.

    An ``If`` runs only the taken branch, so a switched-off fake-quant costs nothing (a
    ``Where`` would compute both sides on every run: about 5x the FP32 model's time here).
    """
    then_nodes = list(then_nodes) + [helper.make_node("Identity", [then_out], [out + "_t"])]
    then_g = helper.make_graph(then_nodes, out + "_then", [],
                               [helper.make_tensor_value_info(out + "_t", TensorProto.FLOAT, None)])
    else_g = helper.make_graph([helper.make_node("Identity", [else_value], [out + "_e"])], out + "_else", [],
                               [helper.make_tensor_value_info(out + "_e", TensorProto.FLOAT, None)])
    nodes.append(helper.make_node("If", [cond], [out], then_branch=then_g, else_branch=else_g))


def needs_all_fp16(plan, switched) -> list:
    """Nodes of ``plan`` in reduced precision that are not in ``switched``."""
    return [n for n in plan.nodes if n not in switched and str(plan.precision(n)) != "fp32"]


class SwitchableModel:
    """Fake-quant emulation of ``model`` whose per-node precision is chosen at run time.

    Every quantizable node gets INT8 and FP16 switches; with ``all_fp16`` every other node that
    can run in FP16 (per the exporter's schema rule, :func:`workbench.fp16_slots.fp16_slots`)
    gets an FP16 switch too. Other nodes stay FP32.

    Args:
        model: the FP32 model.
        all_fp16: also switch the non-quantizable nodes (needed for FP16-base plans; each switch
            costs a little on every run, so it is off for plans that keep those nodes FP32).
    """

    def __init__(self, model: ModelInfo, all_fp16: bool = False):
        from .fp16_slots import fp16_slots

        self.model = model
        self.all_fp16 = all_fp16
        self.targets = {t.node: t for t in model.quantizable_nodes()}
        self.fp16 = {n.name: fp16_slots(n, model.opset, model) for n in model.nodes}
        self.nodes = [n.name for n in model.nodes
                      if n.name in self.targets or (all_fp16 and self.fp16[n.name][1])]
        if not self.nodes:
            raise WorkbenchError(f"'{model.name}' has no node that can run in INT8 or FP16.")
        self.index = {n: k for k, n in enumerate(self.nodes)}
        self.qdq_tensors = {n: list(t.activation_inputs) for n, t in self.targets.items()}
        self.tensors = list(dict.fromkeys(x for xs in self.qdq_tensors.values() for x in xs))
        self.tensor_index = {t: i for i, t in enumerate(self.tensors)}
        self.proto = self._build()
        self._session = None

    # -- graph -------------------------------------------------------------------------------
    def _build(self) -> onnx.ModelProto:
        m = self.model
        proto = onnx.ModelProto()
        proto.CopyFrom(m.model)
        g = proto.graph
        if m.opset < 13:  # per-channel and runtime scales need QuantizeLinear-13
            raise WorkbenchError(f"The emulation model needs opset >= 13, '{m.name}' has {m.opset}.")
        g.input.extend([
            helper.make_tensor_value_info(INT8_FLAGS, TensorProto.BOOL, [len(self.nodes)]),
            helper.make_tensor_value_info(FP16_FLAGS, TensorProto.BOOL, [len(self.nodes)]),
            helper.make_tensor_value_info(SCALE, TensorProto.FLOAT, [len(self.tensors)]),
        ])
        new_nodes, inits = [], [numpy_helper.from_array(np.array(0, np.int8), "wb_zp")]

        def const_index(i: int, prefix: str) -> str:
            name = f"{prefix}_{i}"
            inits.append(numpy_helper.from_array(np.array(i, np.int64), name))
            return name

        for node in g.node:
            if node.name not in self.index:
                new_nodes.append(node)
                continue
            t = self.targets.get(node.name)
            half_in, half_out = (set(x) for x in self.fp16[node.name])
            k = self.index[node.name]
            tag = f"wb{k}"
            ki = const_index(k, f"{tag}_k")
            i8, f16 = f"{tag}_i8", f"{tag}_f16"
            new_nodes += [helper.make_node("Gather", [INT8_FLAGS, ki], [i8], axis=0),
                          helper.make_node("Gather", [FP16_FLAGS, ki], [f16], axis=0)]
            fused = self._fusable_add_inputs(node, t) if t is not None and node.op_type == "Add" else []
            for j, x in enumerate(node.input):
                if not x:
                    continue
                if t is not None and x == t.weight_input:
                    w = m.constants[x].astype(np.float32)
                    wq, wh, sw = f"{tag}_wq{j}", f"{tag}_wh{j}", f"{tag}_w{j}"
                    inits += [numpy_helper.from_array(fake_quant_weight(w, t.weight_axis), wq),
                              numpy_helper.from_array(w.astype(np.float16).astype(np.float32), wh)]
                    _branch(new_nodes, f16, [], wh, x, sw + "_h")
                    _branch(new_nodes, i8, [], wq, sw + "_h", sw)
                    node.input[j] = sw
                elif x in m.constants:
                    if j in half_in:  # other float parameters (a bias): rounded like the weights
                        ch, sw = f"{tag}_ch{j}", f"{tag}_c{j}"
                        inits.append(numpy_helper.from_array(
                            m.constants[x].astype(np.float16).astype(np.float32), ch))
                        _branch(new_nodes, f16, [], ch, x, sw)
                        node.input[j] = sw
                elif j in half_in or (t is not None and x in t.activation_inputs):
                    y = f"{tag}_in{j}"
                    if j in half_in:
                        _branch(new_nodes, f16, _fp16_round(x, f"{tag}_h{j}"), f"{tag}_h{j}", x, y + "_h")
                    else:
                        new_nodes.append(helper.make_node("Identity", [x], [y + "_h"]))
                    if t is not None and x in self.qdq_tensors[node.name]:
                        ti = const_index(self.tensor_index[x], f"{tag}_t{j}")
                        scale, q, dq = (f"{tag}_{s}{j}" for s in ("s", "q", "dq"))
                        switch = self._add_switch(new_nodes, t, node, j, i8, fused, const_index, tag)
                        fake_quant = [
                            helper.make_node("Gather", [SCALE, ti], [scale], axis=0),
                            helper.make_node("QuantizeLinear", [x, scale, "wb_zp"], [q]),
                            helper.make_node("DequantizeLinear", [q, scale, "wb_zp"], [dq]),
                        ]
                        _branch(new_nodes, switch, fake_quant, dq, y + "_h", y)
                    else:
                        new_nodes.append(helper.make_node("Identity", [y + "_h"], [y]))
                    node.input[j] = y
            new_nodes.append(node)
            # An FP16 node also rounds its result; INT8 nodes compute in higher precision.
            for j, out in enumerate(node.output):
                if out and j in half_out:
                    raw = f"{tag}_raw{j}"
                    node.output[j] = raw
                    _branch(new_nodes, f16, _fp16_round(raw, f"{tag}_oh{j}"), f"{tag}_oh{j}", raw, out)
        del g.node[:]
        g.node.extend(new_nodes)
        g.initializer.extend(inits)
        return proto

    def _fusable_add_inputs(self, node, target) -> list:
        """(input index, producer) of Add inputs TensorRT may fuse into their producer.

        Mirrors :func:`workbench.export.qdq._fused_add_input`: an input that comes straight from
        a weighted node (Conv/ConvTranspose/Gemm/MatMul) read by nothing else is left without
        Q/DQ when that producer is INT8 (the first such input only).
        """
        m = self.model
        out = []
        for j, x in enumerate(node.input):
            prod = m.producers.get(x)
            if (x in target.activation_inputs and prod in self.index
                    and m.node_by_name[prod].op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul")
                    and len(m.consumers.get(x, ())) == 1 and x not in {o.name for o in m.outputs}):
                out.append((j, prod))
        return out

    def _add_switch(self, nodes: list, target, node, j: int, i8: str, fused: list, const_index, tag: str) -> str:
        """The flag that turns on Q/DQ of input ``j``: the node's INT8 flag, except for a fusable
        Add input, which is quantized only when no earlier fusable input's producer is INT8 and
        its own producer is not INT8 either."""
        idx = [k for k, (jj, _) in enumerate(fused) if jj == j]
        if not idx:
            return i8
        flag = i8
        for k, (_, prod) in enumerate(fused[: idx[0] + 1]):
            pi = const_index(self.index[prod], f"{tag}_p{j}_{k}")
            p_i8, not_p, out = f"{tag}_p{j}_{k}_i8", f"{tag}_p{j}_{k}_not", f"{tag}_sw{j}_{k}"
            nodes += [helper.make_node("Gather", [INT8_FLAGS, pi], [p_i8], axis=0),
                      helper.make_node("Not", [p_i8], [not_p]),
                      helper.make_node("And", [flag, not_p], [out])]
            flag = out
        return flag

    # -- running -----------------------------------------------------------------------------
    @property
    def session(self):
        if self._session is None:
            from .backends.ort import OrtSessionLoader
            from .semantics import EXACT

            # Exact ONNX semantics, like every accuracy figure (workbench.semantics).
            self._session = OrtSessionLoader(self.proto, optimization=EXACT)()
        return self._session

    def flags(self, plan, ranges, amax_overrides: dict | None = None) -> dict:
        """The switch inputs for ``plan`` and ``ranges`` (plus extra amax overrides)."""
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
        needed = {x for n, xs in self.qdq_tensors.items() if i8[self.index[n]] for x in xs}
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
        return {INT8_FLAGS: i8, FP16_FLAGS: f16, SCALE: scale}

    def run(self, batches: list, flags: dict, output_names=None) -> dict:
        """Run every batch with the switch ``flags``; returns {output: all rows}."""
        names = output_names or [o.name for o in self.model.outputs]
        chunks = [self.session.run(names, {**feed, **flags}) for feed in batches]
        return {n: np.concatenate([c[i] for c in chunks]) for i, n in enumerate(names)}
