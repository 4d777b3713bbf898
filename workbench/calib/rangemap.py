"""Accessing ranges given as a ``Ranges`` object or a plain mapping."""
from __future__ import annotations

from typing import Mapping


def range_map(ranges) -> Mapping:
    """Tensor -> range for a plain mapping or a ``workbench.calib.ranges.Ranges`` (which has ``.tensors``);
    ``{}`` for None."""
    if ranges is None:
        return {}
    if not isinstance(ranges, Mapping) and hasattr(ranges, "tensors"):
        return ranges.tensors
    return ranges


def absmax(values) -> float:
    """max |x| of a float array (0.0 for empty or non-float arrays)."""
    import numpy as np

    arr = np.asarray(values)
    if arr.size == 0 or arr.dtype.kind != "f":
        return 0.0
    return float(np.max(np.abs(arr)))
