"""Accuracy steps on top of the calibrated ranges (issue 21): cross-layer equalization,
SmoothQuant-style smoothing, weight rounding and bias correction, and the step table that keeps
each one only when the held-out output of the exported Q/DQ model improves.

Every step takes and returns an FP32 ``onnx.ModelProto`` (plus plain dicts: tensor -> amax,
node -> "int8"/"fp16"/"fp32"); exporting the returned model with the returned amax and the same
plan gives the improved explicit Q/DQ model: same op types, changed initializers only (and a
bias input where a Conv/Gemm had none). The core is numpy + onnx + onnxruntime (exact
semantics); all contact with workbench internals is in ``adapter``.

May import: graph, data, backends, calib, precision, export, evaluate (never search, session,
cli, ui).
"""
from .bias import BiasResult, correct_bias
from .equalize import ScalingResult, equalize, smooth
from .rounding import LayerRounding, RoundingResult, round_weights, solve_rounding
from .steps import STEPS, ImproveResult, StepRow, apply_steps, minmax_calibrate

__all__ = ["apply_steps", "STEPS", "ImproveResult", "StepRow", "minmax_calibrate", "equalize", "smooth",
           "ScalingResult", "round_weights", "solve_rounding", "RoundingResult", "LayerRounding",
           "correct_bias", "BiasResult"]
