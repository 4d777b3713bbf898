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
from onnx import numpy_helper

from ..calib.amax import QMAX, check_amax, symmetric_scale
from ..backends.cpu_kernels import REDUCED_WEIGHT_QMAX
from ..errors import WorkbenchError
from ..precision.plan import FP16_MAX, Precision, PrecisionPlan
from ..calib.rangemap import range_map
from . import qdq
from .rewriter import Rewriter, apply_fp16

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
        from ..graph.facts import GraphFacts
        from ..graph.model import ModelInfo

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
            "quantize it again; pass --allow-existing-qdq (allow_existing_qdq=True) to keep the existing Q/DQ and "
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
    rw = Rewriter(g)
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
    # weight scales the ranges carry (a Q/DQ model's own, workbench.imported) are kept
    given = (getattr(ranges, "weight_scales", None) or {}) if wqmax == QMAX else {}
    for slot, (w, axis) in place.weights.items():
        key = (w, axis)
        if key not in weight_dq:
            fixed = given.get(w)
            qw, sw, zw = g.cached(("int8", w, axis, wqmax) + (() if fixed is None else (fixed.tobytes(),)),
                                  lambda w=w, axis=axis, fixed=fixed: _weight_protos(g, w, axis, wqmax, fixed))
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
        apply_fp16(g, rw, set(fp16_nodes), emulate=(variant == "ort"))
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
    with None, when ONNX Runtime's u8s8 kernels saturate on this CPU (workbench.backends.cpu_kernels)."""
    if variant != "cpu_uint8":
        if reduce_range:
            raise WorkbenchError("reduce_range applies to the cpu_uint8 variant only: TensorRT uses "
                                 "the full INT8 weight range [-127, 127].")
        return QMAX
    if reduce_range is None:
        from ..backends.cpu_kernels import u8s8_saturates

        reduce_range = u8s8_saturates()
        if reduce_range:
            notes.append("Weights quantized to 7 bits ([-63, 63]) because ONNX Runtime's u8s8 integer "
                         "kernels saturate on this CPU (x86 without VNNI); with 8-bit weights the "
                         "deployed model would lose most of its accuracy. Export on the deployment CPU.")
    return REDUCED_WEIGHT_QMAX if reduce_range else QMAX


def _weight_protos(g, w: str, axis: int | None, qmax: int = QMAX, scale=None):
    value = g.constants[w]
    if value.dtype != np.float32:
        raise WorkbenchError(f"Weight '{w}' has dtype {value.dtype}; INT8 export expects float32 weights.")
    if axis is not None and value.ndim == 0:
        axis = None
    q, scale = qdq.quantize_weight(value, axis, qmax, scale)
    zp = np.zeros(scale.shape, dtype=np.int8)
    return (numpy_helper.from_array(q), numpy_helper.from_array(scale),
            numpy_helper.from_array(zp))


def build_quantized(model_info, ranges: Mapping, plan: PrecisionPlan, *, variant: str = "trt",
                    allow_existing_qdq: bool = False, fp16_threshold: float = FP16_MAX,
                    reduce_range: bool | None = None) -> onnx.ModelProto:
    """The quantized model for ``plan`` as an in-memory ``onnx.ModelProto``.

    Args:
        model_info: the source :class:`workbench.graph.model.ModelInfo` (never modified).
        ranges: tensor name -> object with ``.amax`` (and ``.min``/``.max``), or a
            ``workbench.calib.ranges.Ranges``. Needed for every activation an INT8 node reads
            (unless the plan has an amax override for it).
        plan: the :class:`PrecisionPlan` (made for this model).
        variant: "trt" (the file for TensorRT), "ort" (the same Q/DQ with FP16 emulated, for
            evaluation in ONNX Runtime) or "cpu_uint8" (ONNX Runtime CPU deployment).
        allow_existing_qdq: when the model already has Q/DQ nodes, keep them and quantize only
            tensors they do not cover (default False: refuse with a WorkbenchError).
        fp16_threshold: an FP16 node whose observed activation |max| exceeds this stays FP32
            (default 65504; 512 is ModelOpt AutoCast's stricter setting).
        reduce_range: cpu_uint8 only: 7-bit weights ([-63, 63]). None (default): when ONNX
            Runtime's u8s8 kernels saturate on this CPU (:func:`workbench.backends.cpu_kernels.u8s8_saturates`).

    Use :func:`workbench.export.build.build` for the effective plan, scales and notes too.
    """
    return build(model_info, ranges, plan, variant=variant, allow_existing_qdq=allow_existing_qdq,
                 fp16_threshold=fp16_threshold, reduce_range=reduce_range).model
