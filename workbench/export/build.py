"""Build the quantized ONNX model for a plan, in memory.

Why protobuf and not onnx-graphsurgeon here (STYLE.md item 5 prefers a small IR): the
evaluator rebuilds the model for every plan change and every sensitivity step, and a
graphsurgeon round trip converts every initializer to numpy and back (plus a toposort) on
each call. The edit itself is small and append-only, so a tiny rewriter does it directly:
nodes are only *added* (Q/DQ, Cast) next to the tensor they read, existing nodes only get
an input or output renamed, and the original node order is kept, so the result stays
topologically sorted without sorting. Facts about the source model (producers, consumers,
quantized weights, FP16 weights) are computed once per ModelInfo and cached.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..amax import QMAX, check_amax, symmetric_scale
from ..cpu_kernels import REDUCED_WEIGHT_QMAX
from ..errors import InternalError, WorkbenchError
from ..plan import FP16_MAX, Precision, PrecisionPlan
from ..rangemap import range_map
from . import qdq

VARIANTS = ("trt", "ort", "cpu_uint8")
#: What each variant's file is for (printed in reports and ExportResult).
VARIANT_ROLES = {
    "trt": "for TensorRT (Q/DQ + real FP16 tensors; build with trtexec/Polygraphy strongly typed)",
    "ort": "for evaluation in ONNX Runtime on CPU (same Q/DQ; FP16 emulated by FP32<->FP16 "
           "cast round trips)",
    "cpu_uint8": "for CPU deployment with ONNX Runtime (uint8 asymmetric activations, int8 "
                 "per-channel weights; FP16 plan entries run in FP32)",
}
#: Per-channel DequantizeLinear (the ``axis`` attribute) exists from opset 13.
MIN_QDQ_OPSET = 13


def _prepare(model_info, upgrade: bool):
    """The GraphFacts to build from: the model's own, or (``upgrade``) those of a copy converted
    to opset :data:`MIN_QDQ_OPSET` (cached with the model's facts)."""
    facts = model_info.facts
    if not upgrade:
        return facts
    def convert():
        from ..graph import GraphFacts
        from ..model import ModelInfo

        try:
            model = onnx.version_converter.convert_version(model_info.model, MIN_QDQ_OPSET)
        except Exception as exc:
            raise WorkbenchError(
                f"Model '{model_info.name}' has opset {model_info.opset}; per-channel INT8 "
                f"weights need opset {MIN_QDQ_OPSET} and the ONNX version converter failed "
                f"({exc}). Re-export the model with opset >= {MIN_QDQ_OPSET}."
            ) from None
        return GraphFacts(ModelInfo(model, model_info.path), model_info.opset)
    return facts.cached(("upgraded", MIN_QDQ_OPSET), convert)


@dataclass
class BuildResult:
    """A built model and what went into it.

    ``model``: the ONNX model. ``variant``/``role``: which file this is and what it is for.
    ``plan``: the effective plan (FP16 nodes demoted for safety carry reason "unsafe-fp16").
    ``activation_scales``: tensor -> scale of every activation Q/DQ (for the cpu_uint8
    variant, the uint8 scale). ``zero_points``: tensor -> zero point. ``weight_scales``:
    weight tensor -> per-channel scales. ``notes``: plain sentences for the report.
    """

    model: onnx.ModelProto
    variant: str
    role: str
    plan: PrecisionPlan
    activation_scales: dict = field(default_factory=dict)
    zero_points: dict = field(default_factory=dict)
    weight_scales: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


class _Rewriter:
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
        name, k = base, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name

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
        src = self.g.model
        m = onnx.ModelProto()
        m.ir_version = src.ir_version
        m.opset_import.extend(src.opset_import)
        m.producer_name = "workbench"
        m.producer_version = "0.1"
        m.metadata_props.extend(src.metadata_props)
        gr = m.graph
        gr.name = src.graph.name
        gr.input.extend(src.graph.input)
        gr.output.extend(src.graph.output)
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
                n2 = onnx.NodeProto()
                n2.CopyFrom(n)
                for i in range(len(n2.input)):
                    new = self.input_map.get((n.name, i))
                    if new is not None:
                        n2.input[i] = new
                for j in range(len(n2.output)):
                    new = self.output_map.get((n.name, j))
                    if new is not None:
                        n2.output[j] = new
                n = n2
            out_nodes.append(n)
            for o in n.output:
                emit_after(o)
        if self.after:  # every anchor is a graph input, initializer or node output
            raise InternalError(f"unplaced nodes for tensors {sorted(self.after)[:5]}")

        used = {t for n in out_nodes for t in n.input} | self.g.graph_outputs
        dead = {t for t in self.replaced if t not in used}
        gr.node.extend(n for n in out_nodes
                       if not (n.op_type == "Constant" and n.output and n.output[0] in dead))
        gr.initializer.extend(t for t in src.graph.initializer if t.name not in dead)
        for name, proto in self.inits:
            t = gr.initializer.add()
            t.CopyFrom(proto)
            t.name = name
        produced = {t for n in gr.node for t in n.output}
        gr.value_info.extend(v for v in src.graph.value_info if v.name in produced)
        return m


def _fp32_output_consumers(g, y: str, fp16: set) -> bool:
    """Whether ``y`` (an FP16 node's output) is read by something that needs FP32."""
    if y in g.graph_outputs or y in g.subgraph_reads:
        return True
    for consumer, i in g.consumer_slots.get(y, ()):
        if consumer not in fp16 or i not in g.slots(consumer)[0]:
            return True
    return False


def build(model_info, ranges, plan: PrecisionPlan, *, variant: str = "trt",
          allow_existing_qdq: bool = False, fp16_threshold: float = FP16_MAX,
          reduce_range: bool | None = None) -> BuildResult:
    """Build the quantized model for ``plan`` (see :func:`workbench.export.build_quantized`)."""
    if variant not in VARIANTS:
        raise WorkbenchError(f"Unknown export variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
    if plan.model_fingerprint != model_info.fingerprint():
        raise WorkbenchError(
            f"The precision plan was made for another model (fingerprint "
            f"{plan.model_fingerprint[:12]}, '{model_info.name}' has {model_info.fingerprint()[:12]})."
        )
    existing = model_info.has_qdq()
    if existing and not allow_existing_qdq:
        raise WorkbenchError(
            f"Model '{model_info.name}' already contains quantization nodes "
            f"({', '.join(existing[:5])}{' ...' if len(existing) > 5 else ''}). Refusing to "
            "quantize it again; pass allow_existing_qdq=True to keep the existing Q/DQ and "
            "quantize only the tensors they do not cover."
        )
    rmap = range_map(ranges)
    notes: list[str] = []
    eff = plan.with_fp16_safety(model_info, rmap, fp16_threshold) if plan.fp16_nodes() else plan
    for e in eff:
        if e.reason == "unsafe-fp16" and plan[e.node].precision is Precision.FP16:
            notes.append(f"Node '{e.node}' kept in FP32 instead of FP16: {e.detail}.")
    int8_nodes = eff.int8_nodes()
    fp16_nodes = eff.fp16_nodes() if variant != "cpu_uint8" else []
    if variant == "cpu_uint8" and eff.fp16_nodes():
        notes.append(f"{len(eff.fp16_nodes())} FP16 node(s) of the plan run in FP32 in the "
                     "cpu_uint8 variant (ONNX Runtime CPU has no fast FP16 kernels).")
    if not model_info.quantizable_nodes() and not eff.fp16_nodes():
        ops = ", ".join(sorted({n.op_type for n in model_info.nodes}))
        raise WorkbenchError(
            f"Model '{model_info.name}' has no node that can run in INT8 (it has: {ops}); "
            "nothing to quantize. Use an FP16 plan (base='fp16') or a model with Conv, Gemm "
            "or MatMul layers."
        )

    need_upgrade = bool(int8_nodes) and model_info.opset < MIN_QDQ_OPSET
    g = _prepare(model_info, need_upgrade)
    if need_upgrade:
        notes.append(f"Opset upgraded from {model_info.opset} to {MIN_QDQ_OPSET} with the ONNX "
                     "version converter: per-channel DequantizeLinear needs opset 13.")
    overrides = plan.amax_overrides

    def has_range(t: str) -> bool:
        return t in overrides or t in rmap

    place = qdq.place_qdq(g, int8_nodes, variant, has_range)
    if place.skipped_existing:
        notes.append(f"Kept the model's existing Q/DQ on {len(place.skipped_existing)} tensor(s); "
                     "they were not quantized again.")
    rw = _Rewriter(g)
    result = BuildResult(None, variant, VARIANT_ROLES[variant], eff, notes=notes)
    wqmax = _weight_qmax(variant, reduce_range, notes)

    # --- activations: one Q/DQ per tensor, shared by its INT8 consumers
    missing = [t for t in place.activations if not has_range(t)]
    if missing:
        shown = ", ".join(f"'{t}' (read by {place.activations[t][0][0]})" for t in missing[:5])
        raise WorkbenchError(
            f"No calibrated range for {len(missing)} tensor(s) that INT8 nodes read: {shown}"
            f"{' ...' if len(missing) > 5 else ''}. Collect statistics for them, set an amax "
            "override, or keep those nodes in FP16/FP32."
        )
    for t, slots in place.activations.items():
        amax = check_amax(t, overrides.get(t, getattr(rmap.get(t), "amax", None)),
                              [s[0] for s in slots])
        if variant == "cpu_uint8":
            r = rmap.get(t)
            scale, zp = qdq.uint8_params(amax, getattr(r, "min", None), getattr(r, "max", None))
        else:
            scale, zp = symmetric_scale(amax), np.int8(0)
        s_name = rw.init(f"{t}_scale", np.array(scale, dtype=np.float32))
        z_name = rw.init(f"{t}_zero_point", np.array(zp))
        q = rw.node(t, "QuantizeLinear", [t, s_name, z_name], f"{t}_quantized")
        dq = rw.node(q, "DequantizeLinear", [q, s_name, z_name], f"{t}_dequantized")
        for slot in slots:
            rw.input_map[slot] = dq
        result.activation_scales[t] = float(scale)
        result.zero_points[t] = int(zp)

    # --- weights: int8 initializer -> per-channel DequantizeLinear (shared per weight/axis)
    weight_dq: dict[tuple, str] = {}
    for slot, (w, axis) in place.weights.items():
        key = (w, axis)
        if key not in weight_dq:
            qw, sw, zw = g.cached(("int8", w, axis, wqmax),
                                  lambda w=w, axis=axis: _weight_protos(g, w, axis, wqmax))
            q_name = rw.init(f"{w}_int8", qw)
            s_name = rw.init(f"{w}_scale", sw)
            z_name = rw.init(f"{w}_zero_point", zw)
            attrs = {"axis": axis} if axis is not None and numpy_helper.to_array(sw).ndim else {}
            weight_dq[key] = rw.node(q_name, "DequantizeLinear", [q_name, s_name, z_name],
                                     f"{w}_dequantized", **attrs)
            rw.replaced.add(w)
            result.weight_scales[w] = numpy_helper.to_array(sw)
        rw.input_map[slot] = weight_dq[key]

    # --- FP16 nodes
    if fp16_nodes:
        _apply_fp16(g, rw, set(fp16_nodes), emulate=(variant == "ort"))
        if variant == "trt":
            notes.append(f"{len(fp16_nodes)} node(s) run in FP16: float16 tensors and weights, "
                         "Cast nodes at the FP32 boundaries.")
        else:
            notes.append(f"{len(fp16_nodes)} FP16 node(s) emulated in FP32: inputs, weights and "
                         "outputs rounded to float16 values by cast round trips.")
    result.model = rw.build()
    return result


def _weight_qmax(variant: str, reduce_range: bool | None, notes: list) -> int:
    """127, or 63 (7-bit weights) for the cpu_uint8 variant when ``reduce_range`` is True or,
    with None, when ONNX Runtime's u8s8 kernels saturate on this CPU (workbench.cpu_kernels)."""
    if variant != "cpu_uint8":
        if reduce_range:
            raise WorkbenchError("reduce_range applies to the cpu_uint8 variant only: TensorRT uses "
                                 "the full INT8 weight range [-127, 127].")
        return QMAX
    if reduce_range is None:
        from ..cpu_kernels import u8s8_saturates

        reduce_range = u8s8_saturates()
        if reduce_range:
            notes.append("Weights quantized to 7 bits ([-63, 63]) because ONNX Runtime's u8s8 integer "
                         "kernels saturate on this CPU (x86 without VNNI); with 8-bit weights the "
                         "deployed model would lose most of its accuracy. Export on the deployment CPU.")
    return REDUCED_WEIGHT_QMAX if reduce_range else QMAX


def _weight_protos(g, w: str, axis: int | None, qmax: int = QMAX):
    value = g.constants[w]
    if value.dtype != np.float32:
        raise WorkbenchError(f"Weight '{w}' has dtype {value.dtype}; INT8 export expects float32 weights.")
    if axis is not None and value.ndim == 0:
        axis = None
    q, scale = qdq.quantize_weight(value, axis, qmax)
    zp = np.zeros(scale.shape, dtype=np.int8)
    return (numpy_helper.from_array(q), numpy_helper.from_array(scale),
            numpy_helper.from_array(zp))


def _apply_fp16(g, rw: _Rewriter, fp16: set, *, emulate: bool) -> None:
    """Real FP16 (Cast to float16 around the node, float16 weights) or its FP32 emulation."""
    to_fp16: dict[str, str] = {}   # fp32 tensor -> its float16 (or rounded) version

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
    for name in fp16:
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
    for name in fp16:
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


def build_quantized(model_info, ranges: Mapping, plan: PrecisionPlan, *, variant: str = "trt",
                    allow_existing_qdq: bool = False, fp16_threshold: float = FP16_MAX,
                    reduce_range: bool | None = None) -> onnx.ModelProto:
    """The quantized model for ``plan`` as an in-memory ``onnx.ModelProto``.

    Args:
        model_info: the source :class:`workbench.model.ModelInfo` (never modified).
        ranges: tensor name -> object with ``.amax`` (and ``.min``/``.max``), or a
            ``workbench.ranges.Ranges``. Needed for every activation an INT8 node reads
            (unless the plan has an amax override for it).
        plan: the :class:`PrecisionPlan` (made for this model).
        variant: "trt" (the file for TensorRT), "ort" (the same Q/DQ with FP16 emulated, for
            evaluation in ONNX Runtime) or "cpu_uint8" (ONNX Runtime CPU deployment).
        allow_existing_qdq: when the model already has Q/DQ nodes, keep them and quantize only
            tensors they do not cover (default False: refuse with a WorkbenchError).
        fp16_threshold: an FP16 node whose observed activation |max| exceeds this stays FP32
            (default 65504; 512 is ModelOpt AutoCast's stricter setting).
        reduce_range: cpu_uint8 only: 7-bit weights ([-63, 63]). None (default): when ONNX
            Runtime's u8s8 kernels saturate on this CPU (:func:`workbench.cpu_kernels.u8s8_saturates`).

    Use :func:`workbench.export.build.build` for the effective plan, scales and notes too.
    """
    return build(model_info, ranges, plan, variant=variant, allow_existing_qdq=allow_existing_qdq,
                 fp16_threshold=fp16_threshold, reduce_range=reduce_range).model
