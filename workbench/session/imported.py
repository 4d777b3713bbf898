"""A session on an already-quantized (Q/DQ) model.

Opening a Q/DQ model (PyTorch QAT export, ModelOpt, ONNX Runtime ``quantize_static``) reads it
with :mod:`workbench.imported`; the session then works on the recovered FP32 graph
(``model_info``), and:

* the plan starts from the model's precisions (INT8 where its inputs carry Q/DQ, FP16 where its
  tensors are float16) with the model's thresholds as amax overrides: the model's scales are
  kept (range source "model") until the user replaces one with the calibrated value
  (:meth:`use_calibrated_scales`, or clearing that tensor's threshold) or sets another;
* every range carries the model's amax as ``amax_by_method["model"]``: the histogram draws it
  as a "model" line next to every calibration method's, the layer table has ``amax_model``;
* exports keep the model's weight scales (``ModelRanges.weight_scales``) and are TensorRT-ready
  (symmetric INT8, Q/DQ on inputs); builds say that the FP32 reference is recovered.
"""
from __future__ import annotations

from ..errors import WorkbenchError

#: The range source of a threshold kept from the model.
MODEL_SOURCE = "model"


class ImportedMixin:
    """Part of :class:`workbench.session.Session`: Q/DQ models (see the module docstring)."""

    # ------------------------------------------------------------------ hooks used by the core
    def _read_model(self, path) -> tuple:
        """``(ModelInfo to work on, QuantizedModel or None)`` for ``path``: a Q/DQ model's
        recovered FP32 graph and the model it came from."""
        from ..imported import is_qdq_model, read_qdq_model
        from ..graph.model import ModelInfo

        info = ModelInfo.from_path(path)
        imported = read_qdq_model(info) if is_qdq_model(info) else None
        return (info, None) if imported is None else (imported.fp32, imported)

    def _initial_plan(self):
        """The plan a new session starts from: the model's own for a Q/DQ model, else the default."""
        from ..precision.plan import PrecisionPlan

        if self.imported is None:
            return PrecisionPlan.default(self._need_model(), self.plan_base)
        from ..imported.reexport import model_plan

        return model_plan(self.imported)

    def _reset_plan_in_place(self, plan) -> None:
        """``plan`` back to :meth:`_initial_plan` (for :meth:`reset_plan`)."""
        if self.imported is None:
            plan.reset()
            return
        start = self._initial_plan()
        for e in start:
            plan.set_node(e.node, e.precision, reason=e.reason, detail=e.detail)
        plan.clear_amax()
        for t, a in start.amax_overrides.items():
            plan.set_amax(t, a)

    def _observed_tensors(self):
        """What calibration observes: the default selection, plus the model's quantized tensors."""
        return "default" if self.imported is None else self.imported.tensors_to_observe()

    def _with_model_source(self, ranges):
        """``ranges`` with the model's amax as method "model" (and its weight scales)."""
        if self.imported is None or ranges is None:
            return ranges
        from ..imported.reexport import with_model_thresholds

        return with_model_thresholds(self.imported, ranges)

    def _reference_notes(self) -> list:
        """Sentences a build records about its FP32 reference."""
        return [self.imported.recovered_note] if self.imported is not None else []

    # ------------------------------------------------------------------ the API
    def model_thresholds(self) -> dict:
        """Tensor -> the open Q/DQ model's own amax ({} for an FP32 model)."""
        return self.imported.amax() if self.imported is not None else {}

    def range_source(self, tensor: str) -> str:
        """Where ``tensor``'s threshold comes from: "model" (kept from the Q/DQ model),
        "manual" (set by hand) or the calibration method's name."""
        overrides = self.plan.amax_overrides if self.plan is not None else {}
        if tensor in overrides:
            return MODEL_SOURCE if overrides[tensor] == self.model_thresholds().get(tensor) else "manual"
        return self.calib_settings.method

    def _model_tensors(self, tensors) -> list:
        model = self.model_thresholds()
        if not model:
            raise WorkbenchError("The open model is not a Q/DQ model: it has no thresholds of its own.")
        names = list(model) if tensors is None else ([tensors] if isinstance(tensors, str) else list(tensors))
        unknown = [t for t in names if t not in model]
        if unknown:
            raise WorkbenchError(f"The model has no Q/DQ threshold for {', '.join(repr(t) for t in unknown[:5])}; "
                                 f"it quantizes {len(model)} tensors, e.g. {', '.join(list(model)[:3])}.")
        return names

    def use_model_scales(self, tensors=None) -> list:
        """Keep the model's own threshold for ``tensors`` (a name, a list; None: every tensor the
        model quantizes). One undo step; returns the tensors."""
        names = self._model_tensors(tensors)
        model = self.model_thresholds()

        def change(plan):
            for t in names:
                plan.set_amax(t, model[t])
            return names
        return self._change_plan(change, f"model scales for {len(names)} tensor(s)")

    def use_calibrated_scales(self, tensors=None) -> list:
        """Replace the model's threshold of ``tensors`` (None: all kept ones) with the calibrated
        one of the current method. One undo step; returns the tensors changed."""
        names = self._model_tensors(tensors)
        names = [t for t in names if self.range_source(t) == MODEL_SOURCE]

        def change(plan):
            for t in names:
                plan.clear_amax(t)
            return names
        return self._change_plan(change, f"calibrated scales for {len(names)} tensor(s)")

    def quantized_findings(self, max_clipped: float | None = None) -> list:
        """What TensorRT would make of the open Q/DQ model (see ``QuantizedModel.findings``),
        plus, once calibrated, its scales that clip more than ``max_clipped`` of the values."""
        if self.imported is None:
            return []
        from ..imported import MAX_CLIPPED

        found = list(self.imported.findings)
        if self.stats is not None:
            found += self.imported.clipping_findings(self.stats, MAX_CLIPPED if max_clipped is None else max_clipped)
        return found
