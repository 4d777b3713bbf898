"""What reading a Q/DQ model yields: one :class:`QuantizedTensor` per quantized tensor and
:class:`Finding` sentences about what TensorRT would do with the model."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .qtypes import QuantType

#: Finding severities: "error" (TensorRT rejects it or runs it otherwise than the model
#: says), "warning" (costs accuracy or speed on TensorRT), "info" (worth knowing).
SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class QuantizedTensor:
    """One quantized tensor of the model and its quantization parameters, as written.

    Attributes:
        tensor: the float tensor's name in the recovered FP32 graph.
        kind: "activation" (a QuantizeLinear -> DequantizeLinear pair on a computed tensor),
            "weight" (read by Conv/ConvTranspose/Gemm/MatMul as their weight, possibly
            through Transpose/Reshape), "bias" (Conv/ConvTranspose/Gemm input 2) or
            "constant" (another constant, e.g. a Mul operand).
        qtype: the quantized element type (:class:`~workbench.imported.qtypes.QuantType`).
        scale: float32 scales exactly as stored: 0-d per tensor, 1-d along ``axis`` per
            channel, the tensor's rank when blocked.
        zero_point: the zero point codes (int64; float64 for FP8/FP4), shaped like ``scale``.
        axis: the channel axis (None: per tensor).
        block_size: the opset-21 block size (None: not blocked).
        consumers: ((node, input index), ...) reading the dequantized tensor, in the
            recovered graph (node names are those of the Q/DQ model).
        graph_output: whether the dequantized tensor is a model output.
        q_node: the QuantizeLinear node in the Q/DQ model (None for a DequantizeLinear of
            a stored quantized constant).
        dq_nodes: the DequantizeLinear node(s) in the Q/DQ model.
        source_tensor: the quantized value's input in the Q/DQ model (the Q's input or the
            DQ's stored constant).
        exact_fp32: for constants, whether the recovered float values are the original
            ones (a Q -> DQ on a float constant) rather than dequantized codes.
    """

    tensor: str
    kind: str
    qtype: QuantType
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None
    block_size: int | None
    consumers: tuple
    graph_output: bool
    q_node: str | None
    dq_nodes: tuple
    source_tensor: str
    exact_fp32: bool = False

    @property
    def dtype(self) -> str:
        return self.qtype.name

    @property
    def per_channel(self) -> bool:
        return self.axis is not None or self.block_size is not None

    @property
    def symmetric(self) -> bool:
        """All zero points are 0."""
        return bool(np.all(np.asarray(self.zero_point) == 0))

    @property
    def lo(self) -> np.ndarray:
        """The lowest value the grid represents, ``(qmin - zero_point) * scale`` (float64)."""
        return (self.qtype.qmin - self.zero_point.astype(np.float64)) * self.scale.astype(np.float64)

    @property
    def hi(self) -> np.ndarray:
        """The highest value the grid represents, ``(qmax - zero_point) * scale`` (float64)."""
        return (self.qtype.qmax - self.zero_point.astype(np.float64)) * self.scale.astype(np.float64)

    @property
    def amax_array(self) -> np.ndarray:
        """Per-element amax (float64): ``scale x qmax`` when the zero point is 0 (TensorRT's
        convention, 127 for INT8), else the largest |x| the grid holds without clipping,
        ``scale x max(qmax - zp, zp - qmin')`` with qmin' = -qmax for signed types."""
        z = self.zero_point.astype(np.float64)
        s = self.scale.astype(np.float64)
        return s * np.maximum(self.qtype.qmax - z, z - self.qtype.narrow_min)

    @property
    def amax(self) -> float | None:
        """The amax of a per-tensor quantized tensor (None when per channel)."""
        return None if self.per_channel else float(self.amax_array)

    @property
    def consumer_nodes(self) -> list:
        return list(dict.fromkeys(node for node, _ in self.consumers))

    def scale_text(self, digits: int = 6) -> str:
        """The scale as one line: the value, or "n values, min..max" per channel."""
        s = np.asarray(self.scale, dtype=np.float64)
        if s.size == 1:
            return f"{float(s.reshape(())):.{digits}g}"
        return f"{s.size} values {s.min():.{digits}g}..{s.max():.{digits}g}"

    def zero_point_text(self) -> str:
        z = np.asarray(self.zero_point)
        if z.size == 1:
            v = z.reshape(()).item()
            return str(int(v)) if float(v).is_integer() else str(v)
        lo, hi = z.min().item(), z.max().item()
        return str(int(lo)) if lo == hi else f"{lo:g}..{hi:g}"


@dataclass(frozen=True)
class Finding:
    """One sentence about the model: what it does, what TensorRT expects instead.

    Attributes:
        code: a stable key, e.g. "zero_point", "unsigned", "output_qdq", "missing_residual_qdq".
        severity: "error", "warning" or "info" (see :data:`SEVERITIES`).
        message: the full sentence, naming the tensor/node and what TensorRT expects.
        tensor / node: what it is about (None when not one tensor/node).
    """

    code: str
    severity: str
    message: str
    tensor: str | None = None
    node: str | None = None

    def __str__(self) -> str:
        return f"{self.severity.upper()}: {self.message}"


@dataclass
class Recovered:
    """The recovered FP32 graph and what the recovery did (internal result of recover.py)."""

    model: object
    tensors: list = field(default_factory=list)
    findings: list = field(default_factory=list)
    fp16_nodes: dict = field(default_factory=dict)   # node -> "FLOAT16" / "BFLOAT16"
    restored: dict = field(default_factory=dict)     # tensor -> restored node name
    kept_nodes: list = field(default_factory=list)   # Q/DQ nodes left in place
