"""What every range algorithm shares: histogram conventions, constants, warnings, input checks.

Internal to :mod:`workbench.calib` (import the algorithms through
:mod:`workbench.calib.algorithms`). The amax validity rule and the scale ``amax / 127`` come
from :mod:`workbench.calib.amax`, the one definition every layer uses.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .amax import MIN_AMAX, is_valid_amax, symmetric_scale  # noqa: F401 (MIN_AMAX re-exported)
from ..errors import WorkbenchError

NUM_BINS = 2048
NUM_QUANT_BINS = 128
START_BIN = 128
#: The percentile of the "percentile" method (and of ranges files that do not record one).
DEFAULT_PERCENTILE = 99.99
DEGENERATE_AMAX = 1.0
# KL values within this (absolute) of the minimum are ties. The vectorised sums differ from
# a direct per-candidate sum by ~1e-14 (measured); real differences between neighbouring
# candidates are orders of magnitude larger.
TIE_TOLERANCE = 1e-10
# MSE values within this relative distance of the minimum are ties (the prefix-sum form
# differs from a direct sum by ~1e-11 relative, measured).
MSE_TIE_TOLERANCE = 1e-9

# Candidates are processed in blocks aligned to multiples of the block size, so memory stays
# bounded for extended histograms and the index tables (which depend only on the candidates)
# are computed once and shared by every histogram.
_BLOCK_ELEMENTS = 1 << 19


def _block_rows(cols: int) -> int:
    return 2048 if cols <= 256 else max(1, _BLOCK_ELEMENTS // cols)


def _aligned_blocks(first: int, last: int, rows: int):
    """Yield (block index, first candidate, last candidate) covering first..last."""
    for b in range(first // rows, last // rows + 1):
        yield b, max(first, b * rows), min(last, (b + 1) * rows - 1)


class CalibrationWarning(UserWarning):
    """Something about a tensor's statistics the user should know (not an error)."""


class DegenerateTensorWarning(CalibrationWarning):
    """A tensor had no usable range (empty, all zero, only NaN/Inf, constant)."""


def warn_degenerate(name: str | None, reason: str, amax: float) -> None:
    """Emit one DegenerateTensorWarning naming the tensor, why, and the amax used."""
    who = f"tensor '{name}': " if name else ""  # callers without a name add their own prefix
    warnings.warn(
        f"{who}{reason}; using amax {amax:g} (scale {float(symmetric_scale(amax)):.6g})",
        DegenerateTensorWarning,
        stacklevel=3,
    )


# --------------------------------------------------------------------------- input checks


def _as_hist(hist, name: str | None = None) -> np.ndarray:
    """Validate a histogram and return it as a 1-D float64 array (a new array)."""
    who = f"tensor '{name}': " if name else ""
    h = np.array(hist, dtype=np.float64, copy=True)
    if h.ndim != 1:
        raise WorkbenchError(f"{who}histogram must be 1-D, got shape {h.shape}")
    if h.size and (not np.all(np.isfinite(h)) or h.min() < 0):
        raise WorkbenchError(f"{who}histogram counts must be finite and >= 0")
    return h


def _check_width(bin_width: float, name: str | None) -> float:
    w = float(bin_width)
    if not (math.isfinite(w) and w > 0):
        who = f"tensor '{name}': " if name else ""
        raise WorkbenchError(f"{who}bin_width must be positive and finite, got {bin_width!r}")
    return w


def _finish(amax: float, name: str | None, what: str) -> float:
    """Guarantee a valid amax (:func:`workbench.calib.amax.is_valid_amax`; warn and use
    DEGENERATE_AMAX otherwise)."""
    if is_valid_amax(amax):
        return float(amax)
    warn_degenerate(name, f"{what} gave amax {amax!r}", DEGENERATE_AMAX)
    return DEGENERATE_AMAX


def _pick_min_last(values: np.ndarray, tol: float) -> int:
    """Index of the smallest value; values within ``tol`` of it count as equal, the last wins."""
    best = float(np.min(values))
    if not math.isfinite(best):  # all infinite: every candidate ties
        return len(values) - 1
    return int(np.flatnonzero(values <= best + tol)[-1])


# --------------------------------------------------------------------------- entropy
