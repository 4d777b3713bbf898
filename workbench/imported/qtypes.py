"""Quantized element types a Q/DQ model can use, and exact dequantization of constants.

One table entry per ONNX element type: its name as the user reads it (INT8, UINT8, INT4,
FLOAT8E4M3FN, ...), its integer (or largest finite) range and whether TensorRT's explicit
INT8 path accepts it. ``amax`` follows TensorRT's convention for symmetric types
(``amax = scale x qmax``: 127 for INT8) and, for a non-zero zero point, is the largest |x|
the grid represents without clipping (the amax a symmetric re-export needs to keep it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from ..errors import WorkbenchError

_T = onnx.TensorProto


@dataclass(frozen=True)
class QuantType:
    """One quantized element type.

    Attributes:
        name: the ONNX name ("INT8", "FLOAT8E4M3FN", ...).
        elem_type: the ``onnx.TensorProto`` enum value.
        qmin / qmax: the integer range (for float types: -max finite, +max finite).
        is_float: FP8/FP4 types (values are floats, zero point must be 0).
        signed: whether negative codes exist.
    """

    name: str
    elem_type: int
    qmin: float
    qmax: float
    is_float: bool = False
    signed: bool = True

    @property
    def narrow_min(self) -> float:
        """The lowest code of TensorRT's symmetric grid: -qmax for signed types (-127 for
        INT8), qmin for unsigned ones."""
        return -self.qmax if self.signed else self.qmin


def _entries():
    table = [("INT8", -128, 127, False, True), ("UINT8", 0, 255, False, False),
             ("INT16", -32768, 32767, False, True), ("UINT16", 0, 65535, False, False),
             ("INT32", -2**31, 2**31 - 1, False, True),
             ("INT4", -8, 7, False, True), ("UINT4", 0, 15, False, False),
             ("FLOAT8E4M3FN", -448.0, 448.0, True, True), ("FLOAT8E4M3FNUZ", -240.0, 240.0, True, True),
             ("FLOAT8E5M2", -57344.0, 57344.0, True, True), ("FLOAT8E5M2FNUZ", -57344.0, 57344.0, True, True),
             ("FLOAT4E2M1", -6.0, 6.0, True, True)]
    out = {}
    for name, lo, hi, is_float, signed in table:
        elem = getattr(_T, name, None)
        if elem is not None:  # older onnx versions lack the newest types
            out[int(elem)] = QuantType(name, int(elem), lo, hi, is_float, signed)
    return out


QUANT_TYPES: dict = _entries()
#: What TensorRT's explicit INT8 quantization accepts: signed INT8, zero point 0.
TRT_INT8 = "INT8"


def quant_type(elem_type: int, where: str) -> QuantType:
    """The :class:`QuantType` of an ONNX elem_type, or WorkbenchError naming ``where``."""
    qt = QUANT_TYPES.get(int(elem_type))
    if qt is None:
        name = _T.DataType.Name(int(elem_type)) if int(elem_type) in _T.DataType.values() else elem_type
        raise WorkbenchError(f"{where} uses element type {name}, which is not a quantized type "
                             f"(expected one of {', '.join(q.name for q in QUANT_TYPES.values())}).")
    return qt


def elem_type_of(array: np.ndarray) -> int | None:
    """ONNX elem_type of a numpy array (ml_dtypes FP8/INT4 included), None when unknown."""
    try:
        return int(onnx.helper.np_dtype_to_tensor_dtype(np.asarray(array).dtype))
    except Exception:
        return None


def as_number_array(values: np.ndarray, qt: QuantType) -> np.ndarray:
    """Codes as float64 (float types) or int64 (integer types), for exact arithmetic."""
    arr = np.asarray(values)
    return arr.astype(np.float64) if qt.is_float else arr.astype(np.int64)


def broadcast_param(param: np.ndarray, shape: tuple, axis: int | None, block_size: int | None,
                    where: str) -> np.ndarray:
    """Reshape a scale or zero point so it broadcasts over a tensor of ``shape``.

    Per-tensor (``axis`` None) parameters are scalars; per-axis ones 1-D along ``axis``;
    blocked ones (opset 21 ``block_size``) have the tensor's rank and are repeated
    ``block_size`` times along ``axis``.
    """
    p = np.asarray(param)
    if axis is None or p.size == 1 and not block_size:
        return p.reshape(())
    rank = len(shape)
    ax = axis + rank if axis < 0 else axis
    if not 0 <= ax < rank:
        raise WorkbenchError(f"{where}: axis {axis} is out of range for a tensor of rank {rank}.")
    if block_size:
        if p.ndim != rank:
            raise WorkbenchError(f"{where}: a blocked scale needs rank {rank}, it has shape {p.shape}.")
        return np.repeat(p, block_size, axis=ax).take(range(shape[ax]), axis=ax)
    if p.ndim != 1 or p.shape[0] != shape[ax]:
        raise WorkbenchError(f"{where}: per-axis scale of shape {p.shape} does not match axis {axis} "
                             f"of a tensor of shape {tuple(shape)}.")
    new = [1] * rank
    new[ax] = -1
    return p.reshape(new)


def dequantize(codes: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None,
               axis: int | None, block_size: int | None, qt: QuantType, where: str) -> np.ndarray:
    """``(codes - zero_point) * scale`` as float32, as ONNX DequantizeLinear defines it.

    The difference is taken in int64 (exact, also for INT32 biases) and converted to
    float32 before the float32 multiplication, which is what ONNX Runtime computes.
    """
    x = as_number_array(codes, qt)
    s = broadcast_param(np.asarray(scale, dtype=np.float32), x.shape, axis, block_size, where)
    if zero_point is not None:
        z = broadcast_param(as_number_array(zero_point, qt), x.shape, axis, block_size, where)
        x = x - z
    return (x.astype(np.float32) * s).astype(np.float32)
