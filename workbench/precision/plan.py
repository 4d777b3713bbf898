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
import json
import re
from typing import Iterable, Iterator, Mapping

from ..calib.amax import check_amax
from ..errors import WorkbenchError
from .plan_io import PlanDiff, load_plan, plan_dataframe, plan_diff, plan_from_dict, plan_to_dict
from .safety import with_fp16_safety
from .kinds import FP16_MAX, PRECISIONS, REASONS, NodePrecision, Precision, as_precision  # noqa: F401


def default_precision(facts, node: str, base: str) -> Precision:
    """The default precision of ``node`` (the one rule; see the module docstring): INT8 for
    the default INT8 nodes, FP16 for FP16-capable nodes when ``base`` is "fp16", else FP32."""
    if node in facts.default_int8:
        return Precision.INT8
    if base == "fp16" and node in facts.fp16_capable:
        return Precision.FP16
    return Precision.FP32


def _close(name: str, names: Iterable[str], n: int = 5) -> str:
    near = difflib.get_close_matches(name, list(names), n=n, cutoff=0.5)
    return f" Close matches: {', '.join(repr(x) for x in near)}." if near else ""


class PrecisionPlan:
    """Per-node precision for one model, plus per-tensor amax overrides.

    Build one with :meth:`default`; change it with :meth:`set_node`, :meth:`set_pattern`,
    :meth:`set_op_type`, :meth:`set_amax`. Setters change the plan in place; take a
    :meth:`copy` first to keep the old one (undo).
    """

    def __init__(self, facts, entries: dict, amax: dict, base: str):
        self._facts = facts
        self._entries: dict[str, NodePrecision] = entries
        self._amax: dict[str, float] = amax
        self.base = base
        #: tensor -> who set its amax override ("Session.set_amax", "app threshold"...; see NodePrecision.origin)
        self.amax_origins: dict[str, str] = {}
        #: the accuracy steps applied with this plan (``Improvement.record()``), written as "steps"
        self.steps: dict | None = None

    # ----------------------------------------------------------------- construction
    @classmethod
    def default(cls, model_info, base: str = "fp32", *, ranges: Mapping | None = None,
                fp16_threshold: float = FP16_MAX) -> "PrecisionPlan":
        """The default plan for ``model_info`` (see the module docstring).

        Args:
            model_info: the :class:`workbench.graph.model.ModelInfo` to plan.
            base: "fp32" (non-INT8 nodes keep the model's float type) or "fp16" (non-INT8
                nodes that can compute in FP16 are FP16).
            ranges: optional tensor name -> range (``.min``/``.max``); when given, FP16 nodes
                whose observed ranges exceed ``fp16_threshold`` are kept FP32 right away
                (reason "unsafe-fp16"). Export applies the same check anyway.
            fp16_threshold: the |value| above which a tensor is unsafe in FP16 (default 65504;
                :data:`workbench.precision.kinds.FP16_STRICT_THRESHOLD` = 512 is ModelOpt AutoCast's stricter default).
        """
        from ..graph.model import ModelInfo
        from ..validate import check_type

        check_type(model_info, ModelInfo, "PrecisionPlan.default(model_info=...)",
                   expected="a ModelInfo (ModelInfo.from_path(path))")
        base = str(base).lower()
        if base not in ("fp32", "fp16"):
            raise WorkbenchError(f"Unknown plan base {base!r}; expected 'fp32' or 'fp16'.")
        facts = model_info.facts
        entries = {name: NodePrecision(name, facts.op_types[name], default_precision(facts, name, base), "default")
                   for name in facts.order}
        plan = cls(facts, entries, {}, base)
        if ranges is not None:
            plan = plan.with_fp16_safety(model_info, ranges, fp16_threshold)
        return plan

    def copy(self) -> "PrecisionPlan":
        """An independent copy (cheap: entries are immutable, only the dicts are copied)."""
        plan = PrecisionPlan(self._facts, dict(self._entries), dict(self._amax), self.base)
        plan.steps = self.steps
        plan.amax_origins = dict(self.amax_origins)
        return plan

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
        p = as_precision(precision)
        return [n for n in self._facts.order if self._entries[n].precision is p]

    def int8_nodes(self) -> list:
        return self.nodes_with(Precision.INT8)

    def fp16_nodes(self) -> list:
        return self.nodes_with(Precision.FP16)

    def can_run(self, node: str, precision: Precision | str) -> bool:
        """Whether ``node`` can be put in ``precision`` (INT8 needs a quantizable node, FP16
        a node whose schema allows float16)."""
        return PRECISIONS[as_precision(precision)].capable(self._facts, node)

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
                 detail: str = "", origin: str = "") -> None:
        """Put ``node`` in ``precision``.

        Args:
            node: exact node name (WorkbenchError with close matches when unknown).
            precision: "int8", "fp16", "fp32" or a :class:`Precision`.
            reason: one of :data:`REASONS` (default "user").
            detail: optional text shown in the table.
            origin: who asked (``NodePrecision.origin``, e.g. "app click"; default "").
        """
        p = as_precision(precision)
        if reason not in REASONS:
            raise WorkbenchError(f"Unknown reason {reason!r}; expected one of {', '.join(REASONS)}.")
        self._check_node(node)
        self._check_capable(node, p)
        self._entries[node] = NodePrecision(node, self._facts.op_types[node], p, reason, detail, origin)

    def _set_many(self, names: list, p: Precision, reason: str, what: str, origin: str = "") -> list:
        capable = [n for n in names if self.can_run(n, p)]
        if not capable:
            raise WorkbenchError(
                f"{what} matches {len(names)} node(s), none of which can run in {p}: "
                + ", ".join(names[:10]) + ("..." if len(names) > 10 else "")
            )
        for n in capable:
            self._entries[n] = NodePrecision(n, self._facts.op_types[n], p, reason, "", origin)
        return capable

    def set_pattern(self, pattern: str, precision: Precision | str, reason: str = "user",
                    origin: str = "") -> list:
        """Put every node whose name matches the regular expression ``pattern``
        (``re.search``) in ``precision``; nodes that cannot run in it are skipped. ``origin``:
        who asked (e.g. "--fp16 REGEX"; see :meth:`set_node`).

        Returns the names of the nodes changed. WorkbenchError when nothing matches or the
        expression is invalid.
        """
        p = as_precision(precision)
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            raise WorkbenchError(f"Invalid regular expression {pattern!r}: {exc}.") from None
        names = [n for n in self._facts.order if rx.search(n)]
        if not names:
            raise WorkbenchError(
                f"No node name matches the pattern {pattern!r}." + _close(pattern, self._facts.order)
            )
        return self._set_many(names, p, reason, f"Pattern {pattern!r}", origin)

    def set_op_type(self, op_type: str, precision: Precision | str, reason: str = "user",
                    origin: str = "") -> list:
        """Put every node of ``op_type`` that can run in ``precision`` in it; returns their
        names (``origin``: who asked, see :meth:`set_node`). WorkbenchError when the model has no such node."""
        p = as_precision(precision)
        names = [n for n in self._facts.order if self._facts.op_types[n] == op_type]
        if not names:
            ops = sorted(set(self._facts.op_types.values()))
            raise WorkbenchError(
                f"The model has no node of op type '{op_type}'; it has: {', '.join(ops)}."
            )
        return self._set_many(names, p, reason, f"Op type '{op_type}'", origin)

    def set_amax(self, tensor: str, amax: float, origin: str = "") -> None:
        """Override the calibrated amax of activation ``tensor`` (must be finite and > 0);
        ``origin``: who asked (kept in :attr:`amax_origins`)."""
        from ..validate import check_text

        check_text(tensor, "set_amax(tensor=...)", example="'conv1_out'")  # amax: check_amax below
        if tensor not in self._facts.float_tensors:
            raise WorkbenchError(
                f"Tensor '{tensor}' is not a float activation of this model."
                + _close(tensor, self._facts.float_tensors)
            )
        self._amax[tensor] = check_amax(tensor, amax)
        self.amax_origins.pop(tensor, None)
        if origin:
            self.amax_origins[tensor] = origin

    def clear_amax(self, tensor: str | None = None) -> None:
        """Remove the amax override of ``tensor``, or all overrides when None."""
        if tensor is None:
            self._amax.clear()
            self.amax_origins.clear()
        else:
            self._amax.pop(tensor, None)
            self.amax_origins.pop(tensor, None)

    def reset(self, node: str | None = None) -> None:
        """Back to the default precision for ``node``, or for every node when None."""
        names = [node] if node is not None else list(self._facts.order)
        for n in names:
            self._check_node(n)
            self._entries[n] = NodePrecision(n, self._facts.op_types[n],
                                             default_precision(self._facts, n, self.base), "default")

    # ------------------------------------------------------------------ FP16 safety
    def with_fp16_safety(self, model_info, ranges: Mapping | None,
                         threshold: float = FP16_MAX) -> "PrecisionPlan":
        """A copy where FP16 nodes that are unsafe in FP16 are FP32 with reason "unsafe-fp16"
        (:func:`workbench.precision.safety.with_fp16_safety`).

        Args:
            model_info: the ModelInfo this plan belongs to (its facts are the plan's).
            ranges: tensor name -> object with ``.min``/``.max`` (or a ``Ranges``).
            threshold: activation threshold (default 65504).
        """
        return with_fp16_safety(self, ranges, threshold)

    # ------------------------------------------------------------ compare and persist
    def diff(self, other: "PrecisionPlan") -> PlanDiff:
        """What changes from this plan to ``other`` (node precisions and amax overrides)."""
        return plan_diff(self, other)

    def to_dict(self) -> dict:
        """A JSON-ready dict (every node, in graph order, and the amax overrides)."""
        return plan_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping, model_info, *, source: str = "plan") -> "PrecisionPlan":
        """Rebuild a plan saved by :meth:`to_dict` for ``model_info`` (WorkbenchError when it is
        for another model)."""
        return plan_from_dict(cls, data, model_info, source=source)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def save(self, path, *, overwrite: bool = False):
        """Write the plan as JSON (atomically) and return the path; an existing file is refused
        unless ``overwrite``."""
        from .._io import atomic_write_text
        from ..validate import check_new_file

        return atomic_write_text(check_new_file(path, "The plan file", overwrite=overwrite), self.to_json() + "\n")

    @classmethod
    def load(cls, path, model_info) -> "PrecisionPlan":
        """Read a plan saved by :meth:`save` for ``model_info``."""
        return load_plan(cls, path, model_info)

    def to_dataframe(self):
        """A pandas DataFrame: node, op_type, precision, reason, detail (graph order)."""
        return plan_dataframe(self)

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
