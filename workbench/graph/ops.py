"""Op-type lists every layer shares (one definition each)."""
from __future__ import annotations

import onnx

#: Op types whose inputs can carry Q/DQ for TensorRT (NVIDIA ModelOpt's list, DESIGN.md).
INT8_OPS = (
    "Add", "AveragePool", "BatchNormalization", "Clip", "Conv", "ConvTranspose", "Gemm",
    "GlobalAveragePool", "MatMul", "MaxPool", "Mul",
)
#: Op types with a weight input that gets per-output-channel scales.
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
#: Pooling ops TensorRT runs in INT8 when their input is quantized.
POOL_OPS = ("MaxPool", "AveragePool", "GlobalAveragePool")
#: Ops that mean a model is already quantized.
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
           "QLinearMatMul", "ConvInteger", "MatMulInteger")
FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
               onnx.TensorProto.BFLOAT16)
