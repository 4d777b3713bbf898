"""Per-node precision plan: which nodes run in INT8, FP16 or FP32, and why.

A :class:`PrecisionPlan` is the defaults for a model plus the user's (or the automatic
search's) overrides, and per-tensor amax overrides (a threshold dragged in the UI).
It is a plain object: a dict of immutable :class:`NodePrecision` entries, a dict of
amax overrides and a reference to facts about the model shared by every copy, so
``copy()`` costs one small dict copy (the UI keeps an undo stack of plans and the
sensitivity search builds hundreds of variants).

Defaults, and why:

* INT8 by default: Conv, ConvTranspose, Gemm, MatMul (TensorRT's INT8 GEMM/conv kernels),
  MaxPool, AveragePool, GlobalAveragePool (TensorRT runs pooling in INT8 when its input is
  quantized, so the INT8 tensor stays INT8 through the pool) and Add when it merges two
  activations (a residual or branch add: TensorRT fuses it into the preceding INT8 conv
  when the other input is quantized).
* INT8-capable but FP32 (or the FP16 base) by default: Clip, Mul, BatchNormalization and
  Add with a constant operand. Clip/Relu6 right after a Conv is fused into the conv's
  epilogue, and BatchNormalization is folded into the conv weights; Q/DQ on their inputs
  would force an extra requantization of the conv output and break those fusions. Mul
  (gating, attention scaling, SE blocks) and a bias Add cost little compute and are
  precision-sensitive, so INT8 buys almost no speed there. They stay available as user
  overrides (ModelOpt's op list, DESIGN.md).
* Everything else keeps the model's float type, or FP16 when ``base="fp16"`` and the node
  can compute in FP16 (its ONNX schema lets its float inputs and outputs be float16).
"""
from __future__ import annotations

import difflib
import enum
import json
import math
import re
import weakref
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from .errors import WorkbenchError

FORMAT = "workbench-precision-plan"
FORMAT_VERSION = 1

#: Largest finite float16 value: an activation beyond it overflows to inf in FP16.
FP16_MAX = 65504.0
#: ModelOpt AutoCast's default data threshold, offered as a stricter FP16 safety setting.
FP16_STRICT_THRESHOLD = 512.0

#: Op types that are INT8 by default when the model has them as quantizable nodes.
DEFAULT_INT8_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "MaxPool", "AveragePool",
                    "GlobalAveragePool", "Add")


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
    """

    node: str
    op_type: str
    precision: Precision
    reason: str = "default"
    detail: str = ""


def _as_precision(value: Precision | str) -> Precision:
    try:
        return Precision(str(value).lower())
    except ValueError:
        raise WorkbenchError(
            f"Unknown precision {value!r}; expected one of: int8, fp16, fp32."
        ) from None


def _close(name: str, names: Iterable[str], n: int = 5) -> str:
    near = difflib.get_close_matches(name, list(names), n=n, cutoff=0.5)
    return f" Close matches: {', '.join(repr(x) for x in near)}." if near else ""


class _ModelFacts:
    """What a plan needs to know about a model, computed once per ModelInfo and shared."""

    def __init__(self, model_info):
        from .export.fp16 import fp16_slots  # lazy: the export package imports this module

        self.fingerprint = model_info.fingerprint()
        self.order: list[str] = [n.name for n in model_info.nodes]
        self.op_types: dict[str, str] = {n.name: n.op_type for n in model_info.nodes}
        targets = model_info.quantizable_nodes()
        self.targets = {t.node: t for t in targets}
        self.int8_capable = frozenset(self.targets)
        default = set()
        for t in targets:
            if t.op_type == "Add":
                if len(t.activation_inputs) >= 2:  # a residual / branch add, not a bias add
                    default.add(t.node)
            elif t.op_type in DEFAULT_INT8_OPS:
                default.add(t.node)
        self.default_int8 = frozenset(default)
        opset = model_info.opset
        self.fp16_capable = frozenset(
            n.name for n in model_info.nodes if fp16_slots(n, opset, model_info)[1]
        )
        self.float_tensors = frozenset(model_info.float_tensors())


_FACTS: "weakref.WeakKeyDictionary[Any, _ModelFacts]" = weakref.WeakKeyDictionary()


def model_facts(model_info) -> _ModelFacts:
    """Facts about ``model_info`` (cached per ModelInfo object)."""
    facts = _FACTS.get(model_info)
    if facts is None:
        facts = _FACTS[model_info] = _ModelFacts(model_info)
    return facts


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


class PrecisionPlan:
    """Per-node precision for one model, plus per-tensor amax overrides.

    Build one with :meth:`default`; change it with :meth:`set_node`, :meth:`set_pattern`,
    :meth:`set_op_type`, :meth:`set_amax`. Setters change the plan in place; take a
    :meth:`copy` first to keep the old one (undo).
    """

    def __init__(self, facts: _ModelFacts, entries: dict, amax: dict, base: str):
        self._facts = facts
        self._entries: dict[str, NodePrecision] = entries
        self._amax: dict[str, float] = amax
        self.base = base

    # ----------------------------------------------------------------- construction
    @classmethod
    def default(cls, model_info, base: str = "fp32", *, ranges: Mapping | None = None,
                fp16_threshold: float = FP16_MAX) -> "PrecisionPlan":
        """The default plan for ``model_info`` (see the module docstring).

        Args:
            model_info: the :class:`workbench.model.ModelInfo` to plan.
            base: "fp32" (non-INT8 nodes keep the model's float type) or "fp16" (non-INT8
                nodes that can compute in FP16 are FP16).
            ranges: optional tensor name -> range (``.min``/``.max``); when given, FP16 nodes
                whose observed ranges exceed ``fp16_threshold`` are kept FP32 right away
                (reason "unsafe-fp16"). Export applies the same check anyway.
            fp16_threshold: the |value| above which a tensor is unsafe in FP16 (default 65504;
                :data:`FP16_STRICT_THRESHOLD` = 512 is ModelOpt AutoCast's stricter default).
        """
        base = str(base).lower()
        if base not in ("fp32", "fp16"):
            raise WorkbenchError(f"Unknown plan base {base!r}; expected 'fp32' or 'fp16'.")
        facts = model_facts(model_info)
        entries = {}
        for name in facts.order:
            if name in facts.default_int8:
                prec = Precision.INT8
            elif base == "fp16" and name in facts.fp16_capable:
                prec = Precision.FP16
            else:
                prec = Precision.FP32
            entries[name] = NodePrecision(name, facts.op_types[name], prec, "default")
        plan = cls(facts, entries, {}, base)
        if ranges is not None:
            plan = plan.with_fp16_safety(model_info, ranges, fp16_threshold)
        return plan

    def copy(self) -> "PrecisionPlan":
        """An independent copy (cheap: entries are immutable, only the dicts are copied)."""
        return PrecisionPlan(self._facts, dict(self._entries), dict(self._amax), self.base)

    # ----------------------------------------------------------------------- access
    @property
    def model_fingerprint(self) -> str:
        return self._facts.fingerprint

    @property
    def nodes(self) -> list:
        """Node names in graph order."""
        return list(self._facts.order)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[NodePrecision]:
        return (self._entries[n] for n in self._facts.order)

    def __getitem__(self, node: str) -> NodePrecision:
        self._check_node(node)
        return self._entries[node]

    def __contains__(self, node: str) -> bool:
        return node in self._entries

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrecisionPlan):
            return NotImplemented
        return (self._facts.fingerprint == other._facts.fingerprint
                and self._entries == other._entries and self._amax == other._amax)

    def precision(self, node: str) -> Precision:
        """The precision of ``node``."""
        return self[node].precision

    def nodes_with(self, precision: Precision | str) -> list:
        """Names of the nodes in ``precision``, in graph order."""
        p = _as_precision(precision)
        return [n for n in self._facts.order if self._entries[n].precision is p]

    def int8_nodes(self) -> list:
        return self.nodes_with(Precision.INT8)

    def fp16_nodes(self) -> list:
        return self.nodes_with(Precision.FP16)

    def can_run(self, node: str, precision: Precision | str) -> bool:
        """Whether ``node`` can be put in ``precision`` (INT8 needs a quantizable node, FP16
        a node whose schema allows float16)."""
        p = _as_precision(precision)
        if p is Precision.INT8:
            return node in self._facts.int8_capable
        if p is Precision.FP16:
            return node in self._facts.fp16_capable
        return node in self._entries

    @property
    def amax_overrides(self) -> dict:
        """Tensor name -> amax set by the user (a copy)."""
        return dict(self._amax)

    # ---------------------------------------------------------------------- changes
    def _check_node(self, node: str) -> None:
        if node not in self._entries:
            raise WorkbenchError(
                f"Node '{node}' is not in this model ({len(self._entries)} nodes)."
                + _close(node, self._facts.order)
            )

    def _check_capable(self, node: str, p: Precision) -> None:
        if self.can_run(node, p):
            return
        op = self._facts.op_types[node]
        if p is Precision.INT8:
            raise WorkbenchError(
                f"Node '{node}' ({op}) cannot run in INT8: INT8 needs one of the op types "
                f"{', '.join(sorted({t.op_type for t in self._facts.targets.values()}) or ['(none in this model)'])} "
                "with a float activation input."
            )
        raise WorkbenchError(
            f"Node '{node}' ({op}) cannot run in FP16: its ONNX schema has no float16 "
            "input/output pair (e.g. Shape, Cast, integer ops)."
        )

    def set_node(self, node: str, precision: Precision | str, reason: str = "user",
                 detail: str = "") -> None:
        """Put ``node`` in ``precision``.

        Args:
            node: exact node name (WorkbenchError with close matches when unknown).
            precision: "int8", "fp16", "fp32" or a :class:`Precision`.
            reason: one of :data:`REASONS` (default "user").
            detail: optional text shown in the table.
        """
        p = _as_precision(precision)
        if reason not in REASONS:
            raise WorkbenchError(f"Unknown reason {reason!r}; expected one of {', '.join(REASONS)}.")
        self._check_node(node)
        self._check_capable(node, p)
        self._entries[node] = NodePrecision(node, self._facts.op_types[node], p, reason, detail)

    def _set_many(self, names: list, p: Precision, reason: str, what: str) -> list:
        capable = [n for n in names if self.can_run(n, p)]
        if not capable:
            raise WorkbenchError(
                f"{what} matches {len(names)} node(s), none of which can run in {p}: "
                + ", ".join(names[:10]) + ("..." if len(names) > 10 else "")
            )
        for n in capable:
            self._entries[n] = NodePrecision(n, self._facts.op_types[n], p, reason, "")
        return capable

    def set_pattern(self, pattern: str, precision: Precision | str, reason: str = "user") -> list:
        """Put every node whose name matches the regular expression ``pattern``
        (``re.search``) in ``precision``; nodes that cannot run in it are skipped.

        Returns the names of the nodes changed. WorkbenchError when nothing matches or the
        expression is invalid.
        """
        p = _as_precision(precision)
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            raise WorkbenchError(f"Invalid regular expression {pattern!r}: {exc}.") from None
        names = [n for n in self._facts.order if rx.search(n)]
        if not names:
            raise WorkbenchError(
                f"No node name matches the pattern {pattern!r}." + _close(pattern, self._facts.order)
            )
        return self._set_many(names, p, reason, f"Pattern {pattern!r}")

    def set_op_type(self, op_type: str, precision: Precision | str, reason: str = "user") -> list:
        """Put every node of ``op_type`` that can run in ``precision`` in it; returns their
        names. WorkbenchError when the model has no such node."""
        p = _as_precision(precision)
        names = [n for n in self._facts.order if self._facts.op_types[n] == op_type]
        if not names:
            ops = sorted(set(self._facts.op_types.values()))
            raise WorkbenchError(
                f"The model has no node of op type '{op_type}'; it has: {', '.join(ops)}."
            )
        return self._set_many(names, p, reason, f"Op type '{op_type}'")

    def set_amax(self, tensor: str, amax: float) -> None:
        """Override the calibrated amax of activation ``tensor`` (must be finite and > 0)."""
        if tensor not in self._facts.float_tensors:
            raise WorkbenchError(
                f"Tensor '{tensor}' is not a float activation of this model."
                + _close(tensor, self._facts.float_tensors)
            )
        try:
            value = float(amax)
        except (TypeError, ValueError):
            value = float("nan")
        if not math.isfinite(value) or value <= 0:
            raise WorkbenchError(f"amax for tensor '{tensor}' must be finite and > 0, got {amax!r}.")
        self._amax[tensor] = value

    def clear_amax(self, tensor: str | None = None) -> None:
        """Remove the amax override of ``tensor``, or all overrides when None."""
        if tensor is None:
            self._amax.clear()
        else:
            self._amax.pop(tensor, None)

    def reset(self, node: str | None = None) -> None:
        """Back to the default precision for ``node``, or for every node when None."""
        names = [node] if node is not None else list(self._facts.order)
        for n in names:
            self._check_node(n)
            if n in self._facts.default_int8:
                p = Precision.INT8
            elif self.base == "fp16" and n in self._facts.fp16_capable:
                p = Precision.FP16
            else:
                p = Precision.FP32
            self._entries[n] = NodePrecision(n, self._facts.op_types[n], p, "default")

    # ------------------------------------------------------------------ FP16 safety
    def with_fp16_safety(self, model_info, ranges: Mapping | None,
                         threshold: float = FP16_MAX) -> "PrecisionPlan":
        """A copy where FP16 nodes that are unsafe in FP16 are FP32 with reason "unsafe-fp16".

        A node is unsafe when the observed |min| or |max| of one of its float activation
        inputs/outputs (``ranges[tensor].min/.max``, when present) exceeds ``threshold``, or
        one of its float weights has a value beyond 65504 (FP16's largest finite value).
        Args:
            model_info: the ModelInfo this plan belongs to.
            ranges: tensor name -> object with ``.min``/``.max`` (or a ``Ranges`` with ``.tensors``).
            threshold: activation threshold (default 65504).
        """
        from .export.fp16 import fp16_slots

        ranges = _range_map(ranges)
        out = self.copy()
        nodes = model_info.node_by_name
        constants = model_info.constants
        for name in self.fp16_nodes():
            node = nodes[name]
            ins, outs = fp16_slots(node, model_info.opset, model_info)
            tensors = [node.input[i] for i in ins] + [node.output[j] for j in outs]
            why = ""
            for t in tensors:
                if t in constants:
                    peak = _absmax(constants[t])
                    if peak > FP16_MAX:
                        why = f"weight '{t}' has |value| {peak:.6g} > {FP16_MAX:g}"
                        break
                elif t in ranges:
                    r = ranges[t]
                    peak = max(abs(float(r.min)), abs(float(r.max)))
                    if not math.isfinite(peak) or peak > threshold:
                        why = f"tensor '{t}' observed |max| {peak:.6g} > {threshold:g}"
                        break
            if why:
                out._entries[name] = NodePrecision(
                    name, self._facts.op_types[name], Precision.FP32, "unsafe-fp16", why)
        return out

    # ----------------------------------------------------------------------- compare
    def diff(self, other: "PrecisionPlan") -> PlanDiff:
        """What changes from this plan to ``other`` (node precisions and amax overrides)."""
        d = PlanDiff()
        for n in self._facts.order:
            a = self._entries.get(n)
            b = other._entries.get(n)
            if a is None or b is None or a.precision is not b.precision:
                d.nodes.append((n, a.precision if a else None, b.precision if b else None))
        for t in sorted(set(self._amax) | set(other._amax)):
            if self._amax.get(t) != other._amax.get(t):
                d.amax.append((t, self._amax.get(t), other._amax.get(t)))
        return d

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """A JSON-ready dict (every node, in graph order, and the amax overrides)."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "model_fingerprint": self._facts.fingerprint,
            "base": self.base,
            "nodes": [
                {"node": e.node, "op_type": e.op_type, "precision": e.precision.value,
                 "reason": e.reason, **({"detail": e.detail} if e.detail else {})}
                for e in self
            ],
            "amax_overrides": dict(sorted(self._amax.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping, model_info, *, source: str = "plan") -> "PrecisionPlan":
        """Rebuild a plan saved by :meth:`to_dict` for ``model_info``.

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
            p = _as_precision(r.get("precision", "fp32"))
            reason = r.get("reason", "user")
            if reason not in REASONS:
                reason = "user"
            plan._check_capable(r["node"], p)
            plan._entries[r["node"]] = NodePrecision(
                r["node"], facts.op_types[r["node"]], p, reason, r.get("detail", ""))
        for t, v in (data.get("amax_overrides") or {}).items():
            plan.set_amax(t, v)
        return plan

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def save(self, path):
        """Write the plan as JSON (atomically) and return the path."""
        from ._io import atomic_write_text

        return atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path, model_info) -> "PrecisionPlan":
        """Read a plan saved by :meth:`save` for ``model_info`` (see :meth:`from_dict`)."""
        from pathlib import Path

        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorkbenchError(f"Plan file '{p}' does not exist.") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WorkbenchError(f"Plan file '{p}' is not readable JSON ({exc}).") from None
        return cls.from_dict(data, model_info, source=f"Plan file '{p}'")

    def to_dataframe(self):
        """A pandas DataFrame: node, op_type, precision, reason, detail (graph order)."""
        import pandas as pd

        return pd.DataFrame(
            [{"node": e.node, "op_type": e.op_type, "precision": e.precision.value,
              "reason": e.reason, "detail": e.detail} for e in self],
            columns=["node", "op_type", "precision", "reason", "detail"],
        )

    def summary(self) -> dict:
        """Counts of nodes per precision, e.g. {"int8": 59, "fp16": 0, "fp32": 35}."""
        counts = {p.value: 0 for p in Precision}
        for e in self._entries.values():
            counts[e.precision.value] += 1
        return counts

    def __repr__(self) -> str:
        c = self.summary()
        return (f"PrecisionPlan(base={self.base!r}, int8={c['int8']}, fp16={c['fp16']}, "
                f"fp32={c['fp32']}, amax_overrides={len(self._amax)})")


def _range_map(ranges) -> Mapping:
    """Accept a plain mapping or a ``workbench.ranges.Ranges`` (which has ``.tensors``)."""
    if ranges is None:
        return {}
    if not isinstance(ranges, Mapping) and hasattr(ranges, "tensors"):
        return ranges.tensors
    return ranges


def _absmax(values) -> float:
    import numpy as np

    arr = np.asarray(values)
    if arr.size == 0 or arr.dtype.kind != "f":
        return 0.0
    return float(np.max(np.abs(arr)))
