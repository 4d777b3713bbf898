"""The model's own thresholds as a range source ("model"), and a TensorRT-ready re-export.

* :func:`with_model_thresholds`: calibrated ranges of the recovered FP32 graph with each
  tensor's model amax added as ``amax_by_method["model"]`` (shown next to every calibration
  method's) and the model's weight scales attached.
* :func:`model_plan`: the model's implied plan with its thresholds as amax overrides: the
  starting point that keeps the model's scales; clearing an override replaces that tensor's
  scale with the calibrated one.
* :func:`export_tensorrt_ready`: write the symmetric-INT8, inputs-only Q/DQ model TensorRT
  expects from the model's own plan and scales (no data needed).

The exporter keeps a weight's scales when the ranges carry them (``ModelRanges.weight_scales``),
so a re-export of a TensorRT-ready model without changes writes the same activation and weight
scales. Activation scales are kept through ``amax = scale x 127`` (exact in float64).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from ..calib.ranges import Ranges, TensorRange

#: The name of the model's own thresholds among the range methods' (histogram line, column).
MODEL_SOURCE = "model"


@dataclass
class ModelRanges(Ranges):
    """:class:`~workbench.calib.ranges.Ranges` plus ``weight_scales`` (weight tensor -> float32 scales
    the exporter uses instead of ``max|w| / 127``)."""

    weight_scales: dict = field(default_factory=dict)


def _as_model_ranges(ranges: Ranges, tensors: dict, weight_scales: dict) -> ModelRanges:
    kw = {f.name: getattr(ranges, f.name) for f in fields(ranges) if f.init and f.name != "weight_scales"}
    kw["tensors"] = tensors
    return ModelRanges(**kw, weight_scales=dict(weight_scales))


def with_model_thresholds(qm, ranges: Ranges) -> ModelRanges:
    """``ranges`` (of ``qm.fp32``) with ``amax_by_method["model"]`` for every tensor the model
    quantizes per tensor, and the model's keepable weight scales."""
    amax = qm.amax()
    tensors = {n: replace(r, amax_by_method={**r.amax_by_method, MODEL_SOURCE: amax[n]}) if n in amax else r
               for n, r in ranges.tensors.items()}
    return _as_model_ranges(ranges, tensors, qm.weight_scales())


def model_only_ranges(qm) -> ModelRanges:
    """Ranges from the model alone (no data): each per-tensor activation's model amax, with the
    grid's ends as min/max (used by the FP16 safety check)."""
    tensors = {}
    for name, t in qm.activations.items():
        if t.amax is None:
            continue
        tensors[name] = TensorRange(name, t.amax, {MODEL_SOURCE: t.amax}, float(t.lo), float(t.hi))
    return ModelRanges(MODEL_SOURCE, tensors, model_fingerprint=qm.fp32.fingerprint(),
                       weight_scales=qm.weight_scales())


def model_plan(qm):
    """A copy of the model's implied plan with its thresholds as amax overrides."""
    plan = qm.plan.copy()
    floats = set(qm.fp32.float_tensors())
    for t, a in qm.amax().items():
        if t in floats:
            plan.set_amax(t, a)
    return plan


def dropped_qdq(qm, build_result) -> list:
    """Activations the model quantizes that a TensorRT-ready export of its plan leaves float
    (Q/DQ on outputs, on an Add input TensorRT fuses, in front of non-INT8 ops)."""
    kept = set(build_result.activation_scales)
    return [t for t in qm.activations if t not in kept]


def export_tensorrt_ready(qm, out_path, *, ranges=None, plan=None, variant: str = "trt", **kw):
    """Write the TensorRT-ready Q/DQ model of ``qm`` (see :func:`workbench.export.export_model`).

    Args:
        ranges: ranges of ``qm.fp32`` (default: :func:`model_only_ranges`).
        plan: a plan of ``qm.fp32`` (default: :func:`model_plan`, the model's precisions and scales).
        variant, kw: passed to ``export_model``.

    The result's notes say which of the model's Q/DQ were not kept, and where a scale changed
    because TensorRT needs symmetric INT8.
    """
    from ..export import export_model

    ranges = model_only_ranges(qm) if ranges is None else ranges
    plan = model_plan(qm) if plan is None else plan
    res = export_model(qm.fp32, ranges, plan, out_path, variant=variant, **kw)
    dropped = dropped_qdq(qm, res.build)
    if dropped:
        res.notes.append(f"Q/DQ of the model not kept (TensorRT places them otherwise): {', '.join(dropped[:8])}"
                         + (" ..." if len(dropped) > 8 else "") + ".")
    changed = [t for t, s in res.build.activation_scales.items() if t in qm.activations
               and qm.activations[t].amax is not None
               and not (qm.activations[t].dtype == "INT8" and qm.activations[t].symmetric)]
    if changed and variant == "trt":
        res.notes.append(f"{len(changed)} asymmetric/uint8 scale(s) became symmetric INT8 (amax = the "
                         f"largest |x| of the model's range): {', '.join(changed[:8])}"
                         + (" ..." if len(changed) > 8 else "") + ".")
    return res
