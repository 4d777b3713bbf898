"""Interactive INT8/FP16 quantization workbench for ONNX models deployed on NVIDIA TensorRT.

The core (calibration, plans, export, evaluation) imports without the UI or TensorRT:

    from workbench import ModelInfo, open_data, collect_statistics, compute_ranges
    from workbench import PrecisionPlan, build_quantized, export_model, Evaluator

``Session`` is the plain state object behind the app; ``Workbench`` is the notebook app
(needs the ``ui`` extra). Both are imported lazily.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import Cancelled, InternalError, StaleError, WorkbenchError

_LAZY = {
    "ModelInfo": "workbench.graph.model",
    "load_model": "workbench.graph.model",
    "open_data": "workbench.data",
    "ImagePreprocess": "workbench.data",
    "PRESETS": "workbench.data",
    "collect_statistics": "workbench.calib.collect",
    "Statistics": "workbench.calib.stats",
    "compute_ranges": "workbench.calib.ranges",
    "Ranges": "workbench.calib.ranges",
    "PrecisionPlan": "workbench.precision.plan",
    "Precision": "workbench.precision.plan",
    "build_quantized": "workbench.export",
    "export_model": "workbench.export",
    "Evaluator": "workbench.evaluate.evaluator",
    "calibrate": "workbench.search.calibration",
    "improve": "workbench.search.improve_steps",
    "sensitivity": "workbench.search.sensitivity",
    "auto_mixed_precision": "workbench.search.sensitivity",
    "Session": "workbench.session",
    "Workbench": "workbench.ui.app",
}

__all__ = ["WorkbenchError", "StaleError", "Cancelled", "InternalError", *_LAZY]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
