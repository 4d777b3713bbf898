"""The one place where the improve steps touch workbench internals.

Everything else in :mod:`workbench.improve` works on ``onnx.ModelProto`` + numpy + onnxruntime
and plain dicts (tensor -> amax, node -> "int8"/"fp16"/"fp32"). This module turns those into
the exporter's objects (ModelInfo, PrecisionPlan, ranges) and builds the explicit Q/DQ model
with the exporter itself, so that what the steps measure is the file the workbench writes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import onnx

from ..calib.amax import QMAX  # noqa: F401 (re-exported: the INT8 weight range [-127, 127])
from ..errors import InternalError, WorkbenchError  # noqa: F401 (re-exported)
from ..export import build_quantized
from ..export.qdq import weight_scales  # noqa: F401 (re-exported: the exporter's weight-scale rule)
from ..graph import ModelInfo
from ..graph.model import name_nodes  # noqa: F401 (re-exported: the workbench's node naming)
from ..precision import PrecisionPlan


@dataclass(frozen=True)
class _Range:
    """What the exporter reads of a range: amax, and min/max for its FP16 safety check."""

    amax: float
    min: float
    max: float


def as_ranges(amax: Mapping) -> dict:
    """Tensor -> range object for the exporter from tensor -> amax (floats, or objects with ``.amax``)."""
    out = {}
    for name, value in amax.items():
        a = float(getattr(value, "amax", value))
        lo = float(getattr(value, "min", -a))
        hi = float(getattr(value, "max", a))
        out[name] = _Range(a, lo, hi)
    return out


def plan_for(info: ModelInfo, plan: Mapping | None) -> PrecisionPlan:
    """The PrecisionPlan of ``info``: its default plan with ``plan`` (node -> precision name) applied."""
    p = PrecisionPlan.default(info)
    for node, precision in (plan or {}).items():
        if node in p and p.precision(node).value != str(precision).lower():
            p.set_node(node, str(precision).lower(), reason="user")
    return p


def plan_dict(model: onnx.ModelProto) -> dict:
    """Node -> precision name of the workbench's default plan for ``model``."""
    plan = PrecisionPlan.default(ModelInfo(_copy(model)))
    return {e.node: e.precision.value for e in plan}


def build_qdq(model: onnx.ModelProto, amax: Mapping, plan: Mapping | None = None) -> onnx.ModelProto:
    """The TensorRT Q/DQ model (exporter variant "trt") for the FP32 ``model``, ``amax`` and ``plan``.

    ``model`` is not modified (the exporter names unnamed nodes in place, so it gets a copy).
    """
    info = ModelInfo(_copy(model))
    return build_quantized(info, as_ranges(amax), plan_for(info, plan), variant="trt")


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out
