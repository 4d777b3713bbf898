"""Rewrite a Q/DQ model into its FP32 graph.

What the rewrite does (protobuf, one pass; like ``workbench.export.build`` it keeps node
order, so the result stays topologically sorted, and it only removes, renames and inserts):

* A QuantizeLinear -> DequantizeLinear pair is removed; the readers of the DQ read the Q's
  float input again. On a float constant (PyTorch QAT export of weights) that is the
  original FP32 weight.
* A DequantizeLinear of a stored quantized constant (int8 weights, int32 biases, FP8/INT4
  codes) becomes a float32 initializer holding ``(codes - zero_point) * scale`` under the DQ
  output's name: the FP32 values are the dequantized ones (the originals are not in the file).
* A model output written by a removed DQ keeps its name (the float tensor is renamed to it).
* A Transpose of a quantized constant (PyTorch's QAT export of a MatMul weight:
  Q -> DQ -> Transpose -> MatMul) becomes a constant, as in the FP32 model.
* ONNX Runtime's ``quantize_static`` removes a Relu (or Clip) in front of an asymmetric Q
  whose range starts at 0, because the Q clamps there. Where a pair's range starts exactly
  at 0 (zero point = lowest code), its input is not known to be >= 0 and the Q was its only
  reader, a Relu is put back, so the FP32 graph computes what the model computes apart from
  rounding: a ReLU6 (Clip 0..6) when the range ends at 6, else a Relu (a removed Clip whose
  calibrated range stopped below its upper bound cannot be recovered; that is reported).
* FP16 parts (float16 initializers and tensors, Cast nodes between float types) become FP32.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import InternalError
from ..graph.edit import Names, assemble, copy_node, unread
from ..graph.model import WEIGHTED_OPS
from .parse import Structure
from .qtypes import dequantize
from .records import Finding, QuantizedTensor, Recovered

_HALF = (TensorProto.FLOAT16, TensorProto.BFLOAT16)
_FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16)
#: Ops whose output is never negative.
_NONNEG_OPS = {"Relu", "Sigmoid", "Softmax", "Abs", "Exp", "Sqrt", "Softplus", "HardSigmoid",
               "ReduceL1", "ReduceL2", "ReduceSumSquare"}
#: Ops whose output is >= 0 when their data input(s) are: (op -> input indices, None = all).
_KEEPS_SIGN = {"MaxPool": (0,), "AveragePool": (0,), "GlobalAveragePool": (0,),
               "GlobalMaxPool": (0,), "Flatten": (0,), "Reshape": (0,), "Transpose": (0,),
               "Squeeze": (0,), "Unsqueeze": (0,), "Identity": (0,), "Slice": (0,),
               "Gather": (0,), "Resize": (0,), "Upsample": (0,), "Expand": (0,), "Tile": (0,),
               "Split": (0,), "DepthToSpace": (0,), "SpaceToDepth": (0,), "ReduceMax": (0,),
               "ReduceMean": (0,), "ReduceSum": (0,), "Clip": (0,), "Concat": None, "Add": None,
               "Mul": None, "Max": None, "Min": None, "Sum": None, "Mean": None}
#: A restored activation whose Q range ends this close to 6 (relative) is a ReLU6.
RELU6_TOLERANCE = 1e-4
#: Constant reshaping ops a weight may pass through before its Conv/Gemm/MatMul.
_PASS_THROUGH = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Cast")


def _float32_tensor(t: TensorProto) -> TensorProto:
    out = numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name)
    return out


class _Rewrite:
    def __init__(self, info, structure: Structure):
        self.info, self.s = info, structure
        self.g = info.graph
        self.by_name = info.node_by_name
        self.types = info.tensor_types
        self.consts = info.constants
        self.slots: dict = {}
        for n in info.nodes:
            for i, t in enumerate(n.input):
                if t:
                    self.slots.setdefault(t, []).append((n.name, i))
        self.graph_inputs = {i.name for i in self.g.input}
        self.graph_outputs = [o.name for o in self.g.output]
        self.names = Names.of(self.g)
        self.alias: dict = {}      # removed tensor -> tensor read instead
        self.rename: dict = {}     # kept tensor -> final name
        self.removed: set = set()  # node names
        self.out_map: dict = {}    # (node, output index) -> new output name
        self.after: dict = {}      # node -> nodes inserted right after it
        self.tail: list = []       # nodes appended at the end (Identity for outputs)
        self.new_inits: dict = {}  # name -> float32 array
        self.folded: dict = {}     # quantized constant -> [(folded Transpose output, perm)]
        self.findings: list = list(structure.findings)
        self.half = any(t in _HALF for t in self.types.values())

    def unique(self, base: str) -> str:
        return self.names.unique(base)

    def resolve(self, t: str) -> str:
        seen = set()
        while t in self.alias and t not in seen:
            seen.add(t)
            t = self.alias[t]
        return t

    def final(self, t: str) -> str:
        r = self.resolve(t)
        return self.rename.get(r, r)

    # ------------------------------------------------------------------ the three removals
    def remove_qdq(self) -> None:
        for p in self.s.pairs:
            self.removed.update([p.q.name] + [d.name for d in p.dqs])
            for d in p.dqs:
                self.alias[d.output[0]] = p.q.input[0]
        for sd in self.s.stored:
            d, prm = sd.dq, sd.params
            self.removed.add(d.name)
            self.new_inits[d.output[0]] = dequantize(
                self.consts[d.input[0]], prm.scale, prm.zero_point, prm.axis, prm.block_size,
                prm.qtype, f"DequantizeLinear '{d.name}'")

    def fold_weight_transposes(self) -> None:
        """A Transpose of a quantized constant becomes a constant: PyTorch exports the weight of a
        fake-quantized MatMul as Q -> DQ -> Transpose -> MatMul, and the FP32 model had it folded."""
        quantized = {p.q.input[0] for p in self.s.pairs if p.q.input[0] in self.consts} | set(self.new_inits)
        for n in self.info.nodes:
            src = self.resolve(n.input[0]) if n.op_type == "Transpose" and n.input else None
            if src not in quantized or n.name in self.removed or n.output[0] in self.graph_outputs:
                continue
            value = self.new_inits[src] if src in self.new_inits else np.asarray(self.consts[src])
            perm = next((list(a.ints) for a in n.attribute if a.name == "perm"), None)
            perm = perm or list(range(value.ndim))[::-1]
            self.removed.add(n.name)
            self.new_inits[n.output[0]] = np.ascontiguousarray(np.transpose(value, perm))
            self.folded.setdefault(src, []).append((n.output[0], perm))

    def remove_half_casts(self) -> None:
        """Drop Cast nodes between float types; prefer the float32 side's name."""
        if not self.half:
            return
        for n in self.info.nodes:
            if n.op_type != "Cast" or n.name in self.removed:
                continue
            src, dst = n.input[0], n.output[0]
            to = next((a.i for a in n.attribute if a.name == "to"), None)
            if to not in _FLOATS or self.types.get(src) not in _FLOATS or to == self.types.get(src):
                continue
            self.removed.add(n.name)
            self.alias[dst] = src
            producer = self.info.producers.get(src)
            if (to == TensorProto.FLOAT and producer is not None and producer not in self.removed
                    and src not in self.graph_inputs and src not in self.graph_outputs
                    and src not in self.rename and dst not in self.graph_inputs):
                self.rename[src] = dst

    # ------------------------------------------------------------------ Relu restoration
    def restore_relus(self) -> dict:
        candidates = {}
        for p in self.s.pairs:
            prm, x = p.params, p.q.input[0]
            if (prm.qtype.is_float or prm.axis is not None or prm.block_size is not None
                    or int(prm.zero_point) != prm.qtype.qmin):
                continue  # only a range that starts exactly at 0
            readers = self.slots.get(x, ())
            if (x in self.consts or x in self.graph_inputs or x in self.graph_outputs
                    or len(readers) != 1 or readers[0][0] != p.q.name):
                continue
            candidates[x] = p
        nonneg = {t for t, v in self.consts.items() if np.asarray(v).dtype.kind in "fiu"
                  and np.asarray(v).size and np.all(np.asarray(v) >= 0)}
        restored = {}
        for n in self.info.nodes:
            if n.name in self.removed:
                continue
            ins = [self.resolve(t) for t in n.input]
            if n.op_type in _NONNEG_OPS or (n.op_type == "Clip" and len(ins) > 1 and ins[1] in nonneg):
                nonneg.update(n.output)
            elif n.op_type in _KEEPS_SIGN:
                idx = _KEEPS_SIGN[n.op_type]
                data = [t for i, t in enumerate(ins) if t and (idx is None or i in idx)]
                if data and all(t in nonneg for t in data):
                    nonneg.update(n.output)
            for j, y in enumerate(n.output):
                if y in candidates and y not in nonneg:
                    restored[y] = self._restore(n, j, y, candidates[y])
                    nonneg.add(y)
        return restored

    def _restore(self, n, j: int, y: str, pair) -> str:
        """Put a Relu (or a ReLU6 when the range ends at 6) between ``n`` and its output ``y``."""
        prm = pair.params
        hi = float((prm.qtype.qmax - float(prm.zero_point)) * float(prm.scale))
        relu6 = abs(hi - 6.0) <= 6.0 * RELU6_TOLERANCE
        pre = self.unique(f"{y}_before_relu")
        self.out_map[(n.name, j)] = pre
        name = self.unique(f"{y}_{'Relu6' if relu6 else 'Relu'}_restored")
        if not relu6:
            node = helper.make_node("Relu", [pre], [y], name=name)
        elif self.info.opset >= 11:
            lo_name, hi_name = self.unique(f"{name}_min"), self.unique(f"{name}_max")
            self.new_inits[lo_name] = np.array(0.0, np.float32)
            self.new_inits[hi_name] = np.array(6.0, np.float32)
            node = helper.make_node("Clip", [pre, lo_name, hi_name], [y], name=name)
        else:
            node = helper.make_node("Clip", [pre], [y], name=name, min=0.0, max=6.0)
        self.after.setdefault(n.name, []).append(node)
        what = (f"a ReLU6 (Clip 0..6) '{name}' in its place, since the range ends at {hi:.7g}" if relu6 else
                f"a Relu '{name}' in its place (if it was a Clip/ReLU6, its upper bound is not "
                f"recoverable: the range ends at {hi:.6g}, where calibration stopped)")
        self.findings.append(Finding(
            "restored_relu", "info",
            f"Q/DQ on '{y}' (output of {n.op_type} '{n.name}') has a range starting exactly at 0 "
            f"({pair.q.name}: {prm.qtype.name} zero point {int(prm.zero_point)}), the mark of ONNX "
            f"Runtime removing a Relu or Clip there: the recovered graph has {what}.",
            tensor=y, node=n.name))
        return name

    # ------------------------------------------------------------------ output names
    def keep_output_names(self) -> None:
        for o in self.graph_outputs:
            if o not in self.alias or self.final(o) == o:
                continue
            src = self.resolve(o)
            if (src in self.info.producers and self.info.producers[src] not in self.removed
                    and src not in self.graph_inputs and src not in self.graph_outputs
                    and src not in self.rename and src not in self.consts):
                self.rename[src] = o
            else:
                self.tail.append(helper.make_node("Identity", [self.final(src)], [o],
                                                  name=self.unique(f"{o}_Identity")))

    # ------------------------------------------------------------------ records
    def records(self, restored: dict) -> list:
        out_set = set(self.graph_outputs)
        # consumer slots of each removed DQ output, in the final graph
        readers: dict = {}
        for n in self.info.nodes:
            if n.name in self.removed:
                continue
            for i, t in enumerate(n.input):
                seen = set()
                while t and t not in seen:
                    seen.add(t)
                    readers.setdefault(t, []).append((n.name, i))
                    t = self.alias.get(t)
        recs = []
        for p in self.s.pairs:
            x = p.q.input[0]
            outs = [d.output[0] for d in p.dqs]
            cons = tuple(dict.fromkeys(s for o in outs for s in readers.get(o, ())))
            const = x in self.consts
            recs += self._with_folded(x, QuantizedTensor(
                self.final(x), self._kind(cons) if const else "activation", p.params.qtype,
                p.params.scale, p.params.zero_point, p.params.axis, p.params.block_size, cons,
                any(self._reaches_output(o, out_set) for o in outs), p.q.name,
                tuple(d.name for d in p.dqs), x, exact_fp32=const), readers)
        for sd in self.s.stored:
            o = sd.dq.output[0]
            cons = tuple(readers.get(o, ()))
            prm = sd.params
            recs += self._with_folded(o, QuantizedTensor(
                self.final(o), self._kind(cons), prm.qtype, prm.scale, prm.zero_point, prm.axis,
                prm.block_size, cons, o in out_set, None, (sd.dq.name,), sd.dq.input[0]), readers)
        return recs

    def _with_folded(self, src: str, rec: QuantizedTensor, readers: dict) -> list:
        """``rec`` (when something still reads it) and one record per folded Transpose of it,
        with the axis (and blocked scales) transposed."""
        out = [rec] if rec.consumers or not self.folded.get(src) else []
        for t, perm in self.folded.get(src, ()):
            cons = tuple(readers.get(t, ()))
            rank = len(perm)
            axis = None if rec.axis is None else perm.index(rec.axis % rank)
            scale, zp = rec.scale, rec.zero_point
            if rec.block_size is not None:
                scale, zp = np.transpose(scale, perm), np.transpose(zp, perm)
            out.append(replace(rec, tensor=self.final(t), kind=self._kind(cons), scale=scale,
                               zero_point=zp, axis=axis, consumers=cons))
        return out

    def _reaches_output(self, t: str, outs: set) -> bool:
        return t in outs or any(self.resolve(o) == self.resolve(t) for o in outs if o in self.alias)

    def _kind(self, consumers: tuple) -> str:
        todo, seen = list(consumers), set()
        kind = "constant"
        while todo:
            node, i = todo.pop()
            if (node, i) in seen:
                continue
            seen.add((node, i))
            n = self.by_name[node]
            if n.op_type in WEIGHTED_OPS and i == 1:
                return "weight"
            if n.op_type in ("Conv", "ConvTranspose", "Gemm", "BatchNormalization") and i == 2:
                kind = "bias"
            elif n.op_type in _PASS_THROUGH and i == 0 and len(seen) < 16:
                todo += self.slots.get(n.output[0], [])
        return kind

    # ------------------------------------------------------------------ emit
    def emit(self) -> onnx.ModelProto:
        src = self.info.model
        nodes = []
        for n in self.info.nodes:
            if n.name in self.removed:
                continue
            n2 = copy_node(n, inputs={i: self.final(t) for i, t in enumerate(n.input) if t},
                           outputs={j: self.out_map.get((n.name, j), self.rename.get(t, t))
                                    for j, t in enumerate(n.output) if t})
            nodes.append(n2)
            for extra in self.after.get(n.name, ()):
                extra.input[0] = self.rename.get(extra.input[0], extra.input[0])
                extra.output[0] = self.rename.get(extra.output[0], extra.output[0])
                nodes.append(extra)
        nodes += self.tail
        # constants that only removed nodes read are dropped; unused user constants stay
        dead = unread({t for n in self.info.nodes for t in n.input}, nodes, self.graph_outputs)
        inits = [_float32_tensor(t) if self.half and t.data_type in _HALF else t
                 for t in src.graph.initializer if t.name not in dead]
        added = [numpy_helper.from_array(value, self.rename.get(name, name)) for name, value in self.new_inits.items()]
        if self.half:
            for n in nodes:
                _fp32_attributes(n)
        m = assemble(src, nodes, initializers=inits, new_initializers=added, dead=dead,
                     inputs=[i for i in src.graph.input if i.name not in dead],
                     keep_value_info=lambda name: name not in self.alias)
        m.producer_name, m.producer_version = src.producer_name, src.producer_version
        m.doc_string, m.domain, m.model_version = src.doc_string, src.domain, src.model_version
        if self.half:
            gr = m.graph
            for vi in list(gr.input) + list(gr.output) + list(gr.value_info):
                if vi.type.tensor_type.elem_type in _HALF:
                    vi.type.tensor_type.elem_type = TensorProto.FLOAT
        return m


def _fp32_attributes(node) -> None:
    """Float16 constants and type attributes of ``node`` become float32."""
    for a in node.attribute:
        if a.type == onnx.AttributeProto.TENSOR and a.t.data_type in _HALF:
            a.t.CopyFrom(_float32_tensor(a.t))
        elif a.type == onnx.AttributeProto.INT and a.name in ("to", "dtype") and a.i in _HALF:
            a.i = TensorProto.FLOAT


def recover(info, structure: Structure) -> Recovered:
    """The FP32 graph of ``info`` (a ModelInfo of a Q/DQ model) and what was read from it."""
    rw = _Rewrite(info, structure)
    rw.remove_qdq()
    rw.fold_weight_transposes()
    rw.remove_half_casts()
    restored = rw.restore_relus()
    rw.keep_output_names()
    model = rw.emit()
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise InternalError(f"The FP32 graph recovered from '{info.name}' fails the ONNX checker: "
                            f"{str(exc).strip().splitlines()[0]}") from None
    fp16 = {}
    if rw.half:
        for n in info.nodes:
            if n.name in rw.removed or n.op_type in ("Cast", "Constant") or n.name in structure.kept:
                continue
            kinds = {rw.types.get(t) for t in n.output if t} & set(_HALF)
            if kinds:
                fp16[n.name] = "BFLOAT16" if TensorProto.BFLOAT16 in kinds else "FLOAT16"
        io = [v.name for v in list(info.graph.input) + list(info.graph.output)
              if v.type.tensor_type.elem_type in _HALF]
        if io:
            rw.findings.append(Finding(
                "half_io", "info",
                f"Model inputs/outputs {', '.join(io[:5])} are float16/bfloat16; the recovered "
                "FP32 graph takes and returns float32 there."))
    return Recovered(model, rw.records(restored), rw.findings, fp16, restored, list(structure.kept))
