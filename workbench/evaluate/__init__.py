"""Layer 9, evaluation: how good a plan is, measured with exact ONNX semantics.

Owns: the evaluator (FP32 reference once, output metrics, per-layer error, latency: ``evaluator``),
the metrics (``metrics``) and the switchable emulation graph that searches score plans on
(``emulate``, ``emulate_graph``).
May import: graph, data, backends, calib, precision, export, outputs and the top-level helpers.
"""
from .evaluator import EvalResult, Evaluator

__all__ = ["EvalResult", "Evaluator"]
