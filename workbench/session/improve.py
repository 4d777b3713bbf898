"""Session: the accuracy steps (equalization, smoothing, weight rounding, bias correction) on
top of the ranges, through the one calibration path (:mod:`workbench.search.improve_steps`).

:meth:`ImproveMixin.improve` keeps :attr:`~workbench.session.state.SessionState.improvement`;
builds and exports then use the improved model while the plan's precisions and amax overrides
are those it was judged under (a plan change makes it stale: builds and exports fall back to
the plain model and say so, until :meth:`improve` runs again).
"""
from __future__ import annotations

from ..errors import WorkbenchError
from .state import Event


def _plan_key(plan) -> tuple:
    return (tuple((e.node, e.precision.value) for e in plan), tuple(sorted(plan.amax_overrides.items())))


class ImproveMixin:
    """:meth:`improve`, :meth:`step_table` and the improved export source of :class:`~workbench.session.Session`."""

    def improve(self, steps=None, *, progress=None, cancel=None, strict: bool = False):
        """Try the accuracy ``steps`` (None: all of :data:`~workbench.search.improve_steps.STEP_NAMES`;
        ``[]``: none, back to the plain model) on the current ranges and plan; each is kept only
        when the exported model's output improves on the samples the ranges are judged on
        (:attr:`holdout`). ``strict``: a named step that cannot apply raises WorkbenchError.
        ``progress(done, total)`` per layer of weight rounding / bias correction (and each
        measurement); ``cancel`` (a ``threading.Event``) stops between layers: the steps finished
        are kept and the result is partial (``result.cancelled``, "cancelled" in the table).
        The result is saved with the project (:meth:`save`) and restored by :meth:`load`.
        Returns the :class:`~workbench.search.improve_steps.Improvement`."""
        from ..search.improve_steps import check_steps, improve
        from ..validate import check_bool

        check_bool(strict, "improve(strict=...)")
        wanted = check_steps(steps)
        self._need_ranges()
        if self.imported is not None or self.model_info.has_qdq():
            raise WorkbenchError("The accuracy steps cannot apply to an already quantized model: its own scales "
                                 "are kept. Open the FP32 model to improve it.")
        plan = self.plan if self.plan is not None else self._initial_plan()
        result = improve(self.model_info, self.base_ranges, plan, self.holdout, self.evaluator, steps=wanted,
                         strict=strict and steps is not None, batch_size=self.calib_settings.batch_size,
                         params={"percentile": self.calib_settings.percentile}, progress=progress, cancel=cancel)
        self.state.improvement = result
        self.state.improvement_plan = _plan_key(plan)
        self._notify(Event.RANGES)  # the layer table, the calibration panel and staleness read it
        return result

    @property
    def improvement(self):
        """The last :meth:`improve` result (None: none since the ranges were last chosen)."""
        return self.state.improvement

    def step_table(self) -> list:
        """The accuracy-step rows (dicts: step, layers, sqnr/metric before and after, applied,
        reason, seconds) of the last :meth:`improve`, or []."""
        return self.improvement.table() if self.improvement is not None else []

    def improvement_note(self) -> str | None:
        """Why the improved model is not in use (the plan changed since :meth:`improve`), or None."""
        imp = self.improvement
        if imp is None or not imp.applied() or self.plan is None:
            return None
        if self.state.improvement_plan != _plan_key(self.plan):
            return ("the plan changed since the accuracy steps ran: builds and exports use the plain model "
                    "until improve() runs again")
        return None

    def _export_source(self, plan, ranges) -> tuple:
        """(model_info, ranges, plan) to build or export: the improved model with its re-calibrated
        ranges (the plan's overrides on top) and the plan recording the steps, when the improvement
        is current; else the session's model, ``ranges`` and ``plan``."""
        imp = self.improvement
        if imp is None or plan is None or self.state.improvement_plan != _plan_key(plan):
            return self.model_info, ranges, plan
        plan = plan.copy()
        plan.steps = imp.record()
        if not imp.applied():
            return self.model_info, ranges, plan
        overrides = {t: a for t, a in plan.amax_overrides.items() if t in imp.ranges}
        return imp.model, imp.ranges.with_overrides(overrides), plan


# ------------------------------------------------------------------ project save / load
#: The improved model's changed nodes and initializers (serialized protos) in a project folder.
IMPROVEMENT_FILE = "improvement.npz"


def _ranges_digest(ranges) -> str:
    """What an improvement was computed on top of: every tensor's amax (bit-exact)."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(ranges.tensors):
        h.update(f"{name}={float(ranges.tensors[name].amax).hex()};".encode())
    return h.hexdigest()[:24]


def improvement_state(session) -> tuple:
    """(JSON part, arrays) saving the session's improvement so that a loaded project exports the
    same files: the step table, the per-layer figures, the re-calibrated amax, and the improved
    model as the nodes and initializers that differ from the original (serialized protos, so they
    come back bit for bit). (None, {}) without an improvement."""
    import numpy as np

    imp = session.improvement
    if imp is None or session.base_ranges is None:
        return None, {}
    base = session.base_ranges
    meta = {"rows": [r.as_dict() for r in imp.rows], "judged_on": imp.judged_on, "requested": list(imp.requested),
            "seconds": imp.seconds, "cancelled": bool(imp.cancelled), "layer_details": imp.layer_details(),
            "plan_key": [list(map(list, part)) for part in session.state.improvement_plan or ((), ())],
            "base_ranges": _ranges_digest(base), "ranges": {}, "nodes": [], "initializers": [], "removed": []}
    arrays: dict = {}
    if not imp.applied():
        return meta, arrays
    for name, r in imp.ranges.tensors.items():
        old = base.tensors.get(name)
        if old is None or float(r.amax) != float(old.amax) or r.reason != old.reason:
            meta["ranges"][name] = {"amax": float(r.amax), "reason": r.reason}
    original, improved = session.model_info.model.graph, imp.model.model.graph
    if len(original.node) != len(improved.node):
        raise WorkbenchError("The improved model has other nodes than the original; it cannot be saved.")
    for i, (a, b) in enumerate(zip(original.node, improved.node)):
        if a.SerializeToString() != b.SerializeToString():
            meta["nodes"].append(i)
            arrays[f"node{i}"] = np.frombuffer(b.SerializeToString(), np.uint8)
    before = {t.name: t.SerializeToString() for t in original.initializer}
    after = {t.name: t for t in improved.initializer}
    for name, t in after.items():
        data = t.SerializeToString()
        if before.get(name) != data:
            meta["initializers"].append(name)
            arrays[f"init{len(meta['initializers']) - 1}"] = np.frombuffer(data, np.uint8)
    meta["removed"] = [name for name in before if name not in after]
    meta["digest"] = arrays_digest(arrays)
    return meta, arrays


def arrays_digest(arrays) -> str:
    """A digest of the saved protos (the session file names the exact file it goes with)."""
    import hashlib

    h = hashlib.sha256()
    for key in sorted(arrays):
        h.update(key.encode())
        h.update(bytes(arrays[key]))
    return h.hexdigest()[:24]


def restore_improvement(session, meta: dict, arrays) -> str | None:
    """Put a saved improvement (:func:`improvement_state`) back into ``session`` (after its ranges
    were re-derived from the saved statistics). Returns why it could not (None when restored)."""
    import onnx

    from ..improve import StepRow
    from ..search.improve_steps import ImprovedModel, Improvement

    base = session.base_ranges
    if base is None or session.model_info is None:
        return "there are no ranges to apply it to (calibrate and run improve() again)"
    if meta.get("base_ranges") != _ranges_digest(base):
        return "the ranges are not those it was computed on (run improve() again)"
    rows = [StepRow(**{k: v for k, v in r.items()}) for r in meta["rows"]]
    key = tuple(tuple(tuple(x) for x in part) for part in meta["plan_key"])
    model_info, ranges = session.model_info, base
    if any(r.applied for r in rows):
        proto = onnx.ModelProto()
        proto.CopyFrom(session.model_info.model)
        g = proto.graph
        for i in meta["nodes"]:
            g.node[i].ParseFromString(bytes(arrays[f"node{i}"]))
        inits = {t.name: t for t in g.initializer}
        for k, name in enumerate(meta["initializers"]):
            t = onnx.TensorProto()
            t.ParseFromString(bytes(arrays[f"init{k}"]))
            if name in inits:
                inits[name].CopyFrom(t)
            else:
                g.initializer.append(t)
        for name in meta["removed"]:
            g.initializer.remove(next(t for t in g.initializer if t.name == name))
        model_info = ImprovedModel(proto, session.model_info)
        changed = meta["ranges"]
        if changed:
            ranges = base.with_amax({t: v["amax"] for t, v in changed.items()},
                                    reasons={t: v["reason"] for t, v in changed.items()})
    session.state.improvement = Improvement(model_info, ranges, rows, meta["judged_on"], list(meta["requested"]),
                                            float(meta["seconds"]), bool(meta["cancelled"]),
                                            saved_details=meta["layer_details"])
    session.state.improvement_plan = key
    return None
