"""Models that arrive already quantized (PyTorch QAT export, NVIDIA ModelOpt, ONNX Runtime's
``quantize_static``): read their Q/DQ scales and precisions, recover the FP32 graph, say what
TensorRT would make of them, and compare their thresholds with calibration.

    qm = read_qdq_model("model_qat.onnx")
    qm.table()          # every quantized tensor: scale, amax, zero point, axis, dtype
    qm.findings         # zero points, uint8, placements TensorRT would not fuse, ...
    qm.fp32             # ModelInfo of the recovered FP32 graph (calibrate / plan / export it)
    qm.plan             # the PrecisionPlan the model implies (INT8 where inputs are Q/DQ)
    qm.amax()           # the model's own thresholds, per activation tensor

See docs/QUANTIZED_MODELS.md.

Layer 8, already-quantized models. May import: graph, data, backends, calib, precision, export,
outputs and the top-level helpers.
"""
from .qtypes import QUANT_TYPES, QuantType
from .quantized import MAX_CLIPPED, QuantizedModel, is_qdq_model, read_qdq_model
from .records import Finding, QuantizedTensor

__all__ = ["read_qdq_model", "is_qdq_model", "QuantizedModel", "QuantizedTensor", "Finding",
           "QuantType", "QUANT_TYPES", "MAX_CLIPPED"]
