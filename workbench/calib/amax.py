"""The INT8 threshold rules every layer shares: the validity of an amax and TensorRT's scale.

TensorRT's INT8 is symmetric: scale = amax / 127, zero point 0 (DESIGN.md). An amax must be
finite and > 0 (TensorRT rejects a zero scale). One definition each (STYLE.md item 11).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import WorkbenchError

#: The largest INT8 magnitude TensorRT uses: range [-127, 127].
QMAX = 127
#: The smallest valid amax: below it the float32 scale amax/127 is denormal (FP16 and TensorRT
#: flush it to 0, and TensorRT rejects a zero scale).
MIN_AMAX = float(np.finfo(np.float32).tiny) * QMAX


def is_valid_amax(value) -> bool:
    """Whether ``value`` is a usable INT8 threshold: a finite number >= :data:`MIN_AMAX`."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(v) and v >= MIN_AMAX


def symmetric_scale(amax: float) -> np.float32:
    """TensorRT's activation scale: ``float32(amax / 127)`` (zero point 0)."""
    return np.float32(float(amax) / QMAX)


def check_amax(tensor: str, amax, nodes: list | None = None) -> float:
    """``amax`` as a float if it is a valid threshold for ``tensor`` (finite and > 0), else a
    WorkbenchError naming the tensor (and the INT8 ``nodes`` reading it, when given)."""
    if is_valid_amax(amax) and not isinstance(amax, bool):
        return float(amax)
    used = f" (input of INT8 node(s) {', '.join(nodes[:3])})" if nodes else ""
    hint = (" Set an amax override or keep those nodes in FP16/FP32." if nodes else "")
    raise WorkbenchError(f"Tensor '{tensor}'{used} has amax {amax!r}; an INT8 threshold "
                         f"(scale = amax / 127) must be finite and > 0 (at least {MIN_AMAX:.3g}).{hint}")
