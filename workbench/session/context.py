"""What a figure needs beside it to be read: what changed between two builds (the history's
labels), the scale of the FP32 output (an SQNR or an error means little without it, nothing
when the output is near zero), top-1 as counts of samples, and the backends a build can use
here. Numbers and short facts only: the app words and styles them (``workbench.ui``)."""
from __future__ import annotations

import math

#: an FP32 output whose RMS is below this is "near zero": its SQNR compares the error with almost nothing
NEAR_ZERO_RMS = 1e-3


def build_context(build) -> dict:
    """Numbers that give a build's figures their context, from its summary (``samples`` and
    ``reference_rms``: :meth:`workbench.evaluate.Evaluator.context`): ``samples``, ``top1_count``
    (samples whose top-1 class equals FP32's; None without top-1), ``rms`` of the FP32 output
    (None when not recorded), ``near_zero`` (RMS below :data:`NEAR_ZERO_RMS`), ``error_rms_share``
    (the error's RMS as a share of the output's, from the SQNR)."""
    s = build.summary
    n = int(s.get("samples") or 0)
    top1, sqnr, rms = s.get("top1_agreement"), s.get("sqnr_db"), s.get("reference_rms")
    count = int(round(top1 * n)) if n and top1 is not None and math.isfinite(top1) else None
    share = 10 ** (-sqnr / 20) if sqnr is not None and math.isfinite(sqnr) else None
    return {"samples": n, "top1_count": count, "rms": rms, "near_zero": rms is not None and rms < NEAR_ZERO_RMS,
            "error_rms_share": share}


def plan_changes(old_plan, new_plan, old_method: str | None, new_method: str, *,
                 ranges_recomputed: bool = False) -> dict:
    """What differs from a build's (``old_plan``, ``old_method``) to (``new_plan``, ``new_method``):
    ``moves`` {precision after: [nodes]}, ``amax`` [(tensor, before, after)] (None: calibrated),
    ``method`` (before, after) or None, ``ranges_recomputed``."""
    d = old_plan.diff(new_plan)
    moves: dict = {}
    for node, _, after in d.nodes:
        moves.setdefault(str(after).upper(), []).append(node)
    method = (old_method, new_method) if old_method != new_method else None
    return {"moves": moves, "amax": list(d.amax), "method": method,
            "ranges_recomputed": bool(ranges_recomputed and method is None)}


def _names(items: list, most: int = 2) -> str:
    return ", ".join(items[:most]) + (f" +{len(items) - most}" if len(items) > most else "")


def change_label(previous, plan, method: str, *, ranges_recomputed: bool = False) -> str:
    """A short label for a build of ``plan`` / ``method``: what changed since ``previous`` (a Build,
    or None for the first): "conv3 → FP16", "2 nodes → INT8: a, b", "amax x 2.3 → 1.5",
    "ranges mse → entropy"; never empty ("no change since build 2")."""
    if previous is None:
        n8 = len(plan.int8_nodes())
        return f"first build ({n8} INT8, method {method})"
    c = plan_changes(previous.plan, plan, previous.method, method, ranges_recomputed=ranges_recomputed)
    parts = []
    for prec, nodes in c["moves"].items():
        parts.append(f"{nodes[0]} → {prec}" if len(nodes) == 1 else f"{len(nodes)} nodes → {prec}: {_names(nodes)}")
    if c["amax"]:
        if len(c["amax"]) == 1:
            t, a, b = c["amax"][0]
            parts.append(f"amax {t} {_fmt(a)} → {_fmt(b)}")
        else:
            parts.append(f"amax of {len(c['amax'])} tensors: {_names([t for t, _, _ in c['amax']])}")
    if c["method"]:
        parts.append(f"ranges {c['method'][0]} → {c['method'][1]}")
    if c["ranges_recomputed"]:
        parts.append("ranges recomputed")
    return "; ".join(parts) or f"no change since build {previous.id}"


def _fmt(v) -> str:
    return "calibrated" if v is None else f"{float(v):.4g}"


def backend_choices() -> list:
    """The builds the app can offer here, from the backend registry, one per installed TensorRT
    flavor: dicts with ``label``, ``backend``, ``flavor`` (None, "trt", "rtx"), ``available``,
    ``runs`` (can time here) and ``reason``."""
    from ..backends.registry import backends
    from ..backends.trt_import import FLAVORS, installed_flavors
    from ..backends.trt_status import trt_status

    out = []
    for entry in backends():
        if entry.name != "trt":
            ok, reason = entry.available()
            runs, why = entry.can_run()
            out.append({"label": entry.label, "backend": entry.name, "flavor": None, "available": ok,
                        "runs": runs, "reason": why if ok else reason})
            continue
        found = installed_flavors()
        if not found:
            ok, reason = entry.available()
            out.append({"label": entry.label, "backend": entry.name, "flavor": None, "available": False,
                        "runs": False, "reason": reason})
        for key, version in found.items():
            status = trt_status(key)
            out.append({"label": f"{FLAVORS[key].label} {version}", "backend": entry.name, "flavor": key,
                        "available": status.can_build, "runs": status.can_run, "reason": status.reason})
    return out
