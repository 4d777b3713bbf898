"""The precisions a node can run in, as a registry (STYLE.md item 10).

Each entry says how to show the precision (label, colour) and which nodes can run in it (a
rule over :class:`workbench.graph.GraphFacts`). Adding one (FP8 E4M3 is next) means an entry
here, its Q/DQ writer in :mod:`workbench.export` and its switch in :mod:`workbench.evaluate.emulate`;
the plan, the CLI and the UI read the registry.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable

from ..errors import WorkbenchError

#: Largest finite float16 value: an activation beyond it overflows to inf in FP16.
FP16_MAX = 65504.0
#: ModelOpt AutoCast's default data threshold, offered as a stricter FP16 safety setting.
FP16_STRICT_THRESHOLD = 512.0


class Precision(str, enum.Enum):
    """The precision a node runs in."""

    INT8 = "int8"
    FP16 = "fp16"
    FP32 = "fp32"

    def __str__(self) -> str:  # "int8", not "Precision.INT8", in tables and messages
        return self.value


REASONS = ("default", "user", "auto", "unsafe-fp16")


@dataclass(frozen=True)
class NodePrecision:
    """One row of the plan.

    Args:
        node: the ONNX node name.
        op_type: its op type.
        precision: the :class:`Precision` it runs in.
        reason: "default", "user", "auto" (automatic search) or "unsafe-fp16" (asked for FP16,
            kept FP32 because an observed range or weight exceeds the FP16 threshold).
        detail: free text explaining the reason (e.g. which tensor was out of FP16 range).
        origin: who made a "user" change ("--fp16 REGEX", "app click", "Session.set_precision",
            "--plan FILE"...); recorded in a result's recipe, not part of the plan's equality.
    """

    node: str
    op_type: str
    precision: Precision
    reason: str = "default"
    detail: str = ""
    origin: str = field(default="", compare=False)


def as_precision(value: Precision | str) -> Precision:
    """``value`` ("int8", "FP16", a Precision...) as a :class:`Precision`; WorkbenchError if unknown."""
    try:
        return Precision(str(value).lower())
    except ValueError:
        raise WorkbenchError(
            f"Unknown precision {value!r}; expected one of: int8, fp16, fp32."
        ) from None



@dataclass(frozen=True)
class PrecisionInfo:
    """One precision of the registry: ``label`` and ``color`` for tables and plots, ``capable``
    (facts, node) -> bool, and ``quantized`` (it needs a range per input tensor)."""

    precision: Precision
    label: str
    color: str
    description: str
    capable: Callable
    quantized: bool = False


PRECISIONS = {p.precision: p for p in (
    PrecisionInfo(Precision.INT8, "INT8", "#1f77b4", "symmetric INT8 through explicit Q/DQ",
                  lambda facts, node: node in facts.int8_capable, quantized=True),
    PrecisionInfo(Precision.FP16, "FP16", "#ff7f0e", "float16 tensors and weights",
                  lambda facts, node: node in facts.fp16_capable),
    PrecisionInfo(Precision.FP32, "FP32", "#7f7f7f", "the model's own float type",
                  lambda facts, node: node in facts.op_types),
)}
