"""FP16 safety: keep a node out of FP16 when an observed range or a weight exceeds FP16's range.

DESIGN.md: an activation whose observed |max| exceeds 65504 must not be put in FP16
(ModelOpt AutoCast's stricter data threshold is 512, :data:`FP16_STRICT_THRESHOLD`).
"""
from __future__ import annotations

import math
from typing import Mapping

from .kinds import FP16_MAX, NodePrecision, Precision
from ..calib.rangemap import absmax, range_map


def unsafe_fp16_reason(plan, node: str, ranges: Mapping, threshold: float = FP16_MAX) -> str:
    """Why ``node`` is unsafe in FP16 ("" when it is safe): a float weight beyond 65504, or an
    observed |min|/|max| of one of its float16 slots beyond ``threshold``."""
    facts = plan._facts
    nd = facts.node(node)
    ins, outs = facts.slots(node)
    for t in [nd.input[i] for i in ins] + [nd.output[j] for j in outs]:
        if t in facts.constants:
            peak = absmax(facts.constants[t])
            if peak > FP16_MAX:
                return f"weight '{t}' has |value| {peak:.6g} > {FP16_MAX:g}"
        elif t in ranges:
            r = ranges[t]
            peak = max(abs(float(r.min)), abs(float(r.max)))
            if not math.isfinite(peak) or peak > threshold:
                return f"tensor '{t}' observed |max| {peak:.6g} > {threshold:g}"
    return ""


def with_fp16_safety(plan, ranges, threshold: float = FP16_MAX):
    """A copy of ``plan`` whose unsafe FP16 nodes are FP32 with reason "unsafe-fp16"."""
    ranges = range_map(ranges)
    out = plan.copy()
    for name in plan.fp16_nodes():
        why = unsafe_fp16_reason(plan, name, ranges, threshold)
        if why:
            out._entries[name] = NodePrecision(name, plan._facts.op_types[name], Precision.FP32,
                                               "unsafe-fp16", why, plan[name].origin)
    return out
