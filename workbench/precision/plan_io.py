"""A precision plan as JSON and as a table, and the difference between two plans.

Functions over a plan (any object with the :class:`workbench.precision.plan.PrecisionPlan` interface);
this module does not import the plan module, which calls it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ..errors import WorkbenchError
from .kinds import REASONS, NodePrecision, as_precision

FORMAT = "workbench-precision-plan"
FORMAT_VERSION = 1


@dataclass
class PlanDiff:
    """Differences between two plans: ``nodes`` rows (node, before, after) and ``amax``
    rows (tensor, before, after) where a missing override is None."""

    nodes: list = field(default_factory=list)
    amax: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.nodes or self.amax)

    def __str__(self) -> str:
        lines = [f"{n}: {a} -> {b}" for n, a, b in self.nodes]
        lines += [f"amax[{t}]: {a} -> {b}" for t, a, b in self.amax]
        return "\n".join(lines) if lines else "(no differences)"


def plan_diff(a, b) -> PlanDiff:
    """What changes from plan ``a`` to plan ``b`` (node precisions and amax overrides)."""
    d = PlanDiff()
    for n in a._facts.order:
        x = a._entries.get(n)
        y = b._entries.get(n)
        if x is None or y is None or x.precision is not y.precision:
            d.nodes.append((n, x.precision if x else None, y.precision if y else None))
    for t in sorted(set(a._amax) | set(b._amax)):
        if a._amax.get(t) != b._amax.get(t):
            d.amax.append((t, a._amax.get(t), b._amax.get(t)))
    return d


def plan_to_dict(plan) -> dict:
    """A JSON-ready dict (every node, in graph order, and the amax overrides)."""
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model_fingerprint": plan._facts.fingerprint,
        "base": plan.base,
        "nodes": [
            {"node": e.node, "op_type": e.op_type, "precision": e.precision.value,
             "reason": e.reason, **({"detail": e.detail} if e.detail else {}),
             **({"origin": e.origin} if e.origin else {})}
            for e in plan
        ],
        "amax_overrides": dict(sorted(plan._amax.items())),
        **({"amax_origins": dict(sorted(plan.amax_origins.items()))} if getattr(plan, "amax_origins", None) else {}),
        **({"steps": plan.steps} if getattr(plan, "steps", None) else {}),
    }


def plan_from_dict(cls, data: Mapping, model_info, *, source: str = "plan"):
    """Rebuild a plan (class ``cls``) saved by :func:`plan_to_dict` for ``model_info``.

    Nodes of the model that the saved plan does not mention get their defaults. A plan
    naming nodes the model does not have, or with other op types, is for another model:
    WorkbenchError naming them.
    """
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise WorkbenchError(f"{source} is not a workbench precision plan (no format '{FORMAT}').")
    if int(data.get("version", 0)) > FORMAT_VERSION:
        raise WorkbenchError(
            f"{source} has plan format version {data.get('version')}; this workbench reads "
            f"up to {FORMAT_VERSION}."
        )
    plan = cls.default(model_info, base=data.get("base", "fp32"))
    facts = plan._facts
    rows = data.get("nodes", [])
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) and isinstance(r.get("node"), str)
                                             for r in rows):
        raise WorkbenchError(f"{source}: 'nodes' must be a list of objects such as "
                             f"{{\"node\": \"conv1\", \"precision\": \"fp16\"}}, found {json.dumps(rows)[:80]}. "
                             "Write plans with PrecisionPlan.save or workbench quantize.")
    if not isinstance(data.get("amax_overrides") or {}, Mapping):
        raise WorkbenchError(f"{source}: 'amax_overrides' must be an object mapping tensor names to amax values.")
    unknown = [r.get("node") for r in rows if r.get("node") not in facts.op_types]
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:8]) + (" ..." if len(unknown) > 8 else "")
        raise WorkbenchError(
            f"{source} is for another model: {len(unknown)} of its nodes are not in "
            f"'{model_info.name}': {shown}."
        )
    wrong_op = [r["node"] for r in rows
                if r.get("op_type") and r["op_type"] != facts.op_types[r["node"]]]
    if wrong_op:
        raise WorkbenchError(
            f"{source} is for another model: op types differ for node(s) "
            + ", ".join(repr(n) for n in wrong_op[:8]) + "."
        )
    for r in rows:
        p = as_precision(r.get("precision", "fp32"))
        reason = r.get("reason", "user")
        if reason not in REASONS:
            reason = "user"
        plan._check_capable(r["node"], p)
        plan._entries[r["node"]] = NodePrecision(
            r["node"], facts.op_types[r["node"]], p, reason, r.get("detail", ""), str(r.get("origin") or ""))
    origins = data.get("amax_origins") if isinstance(data.get("amax_origins"), Mapping) else {}
    for t, v in (data.get("amax_overrides") or {}).items():
        plan.set_amax(t, v, origin=str(origins.get(t) or ""))
    steps = data.get("steps")
    if steps is not None and not isinstance(steps, Mapping):
        raise WorkbenchError(f"{source}: 'steps' must be an object (the accuracy steps applied), found "
                             f"{json.dumps(steps)[:80]}.")
    plan.steps = dict(steps) if steps else None
    return plan


def load_plan(cls, path, model_info):
    """Read a plan file written by ``plan.save`` for ``model_info`` (see :func:`plan_from_dict`)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkbenchError(f"Plan file '{p}' does not exist.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkbenchError(f"Plan file '{p}' is not readable JSON ({exc}).") from None
    return plan_from_dict(cls, data, model_info, source=f"Plan file '{p}'")


def plan_dataframe(plan):
    """A pandas DataFrame: node, op_type, precision, reason, detail (graph order)."""
    import pandas as pd

    return pd.DataFrame(
        [{"node": e.node, "op_type": e.op_type, "precision": e.precision.value,
          "reason": e.reason, "detail": e.detail} for e in plan],
        columns=["node", "op_type", "precision", "reason", "detail"],
    )
