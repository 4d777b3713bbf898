"""The MSE search: the bin edge minimising the expected squared error of symmetric INT8
quantisation of the histogram (see :mod:`workbench.calib.algorithms`)."""
from __future__ import annotations

import functools

import numpy as np

from ..errors import WorkbenchError
from ._base import (
    DEGENERATE_AMAX,
    MSE_TIE_TOLERANCE,
    _aligned_blocks,
    _as_hist,
    _block_rows,
    _check_width,
    _finish,
    _pick_min_last,
    warn_degenerate,
)



@functools.lru_cache(maxsize=8)
def _level_starts(block: int, rows: int, qmax: int) -> np.ndarray:
    """First bin of levels 1..qmax for candidates k = block*rows .. (block+1)*rows - 1.

    ``b[r, m-1]`` = number of bins whose centre ``j + 0.5`` lies below the level boundary
    ``(m - 0.5) * s`` with ``s = k / qmax`` bins:
    ``2*qmax*j + qmax < (2m-1)k  <=>  j < ((2m-1)k - qmax) / (2*qmax)``, exact integer
    arithmetic. Never above k (so never past the histogram). Read-only (cached).
    """
    k = np.arange(block * rows, (block + 1) * rows, dtype=np.int64)[:, None]
    m = np.arange(1, qmax + 1, dtype=np.int64)[None, :]
    num = (2 * m - 1) * k - qmax
    b = np.maximum(-((-num) // (2 * qmax)), 0).astype(np.int32)
    b.setflags(write=False)
    return b


def mse_errors(hist, num_bits: int = 8) -> np.ndarray:
    """Expected squared quantisation error for every candidate amax = k bins, k = 1..n.

    Errors are in units of bin_width**2 and summed over the histogram (not divided by the
    count). Each bin is represented by its centre ``j + 0.5``; with scale ``s = k / qmax``
    (``qmax = 2**(num_bits-1) - 1``) a centre ``c`` maps to level ``min(round(c / s), qmax)``.
    The error of a value does not depend on how rounding ties break, so levels are ranges of
    bins found with integer arithmetic and the error per level comes from prefix sums.

    Returns:
        float64 array of length ``n`` (index ``k - 1``); empty when the histogram is empty.
    """
    if not (2 <= int(num_bits) <= 16):
        raise WorkbenchError(f"num_bits must be between 2 and 16, got {num_bits!r}")
    h = _as_hist(hist)
    n = h.size
    if n == 0:
        return np.zeros(0, np.float64)
    qmax = (1 << (int(num_bits) - 1)) - 1
    # Doubled centres 2j+1 are integers, so the prefix sums stay exact for integer counts.
    c2 = 2.0 * np.arange(n) + 1.0
    h0 = np.concatenate(([0.0], np.cumsum(h)))
    h1 = np.concatenate(([0.0], np.cumsum(h * c2)))
    total2 = float(np.sum(h * c2 * c2))
    odd = 2.0 * np.arange(1, qmax + 1) - 1.0  # m^2 - (m-1)^2 for m = 1..qmax
    out = np.empty(n, np.float64)
    rows = _block_rows(qmax)
    for block, lo, hi in _aligned_blocks(1, n, rows):
        b = _level_starts(block, rows, qmax)[lo - block * rows : hi - block * rows + 1]
        k = np.arange(lo, hi + 1, dtype=np.float64)[:, None]
        # With level L_m = m * s (doubled: m * 2k/qmax), levels partitioning the bins, and
        # telescoping sum_m m (F[b_m+1] - F[b_m]) = qmax F[n] - sum_m F[b_m]:
        sum_m_s1 = qmax * h1[n] - h1[b].sum(axis=1)
        sum_m2_s0 = qmax * qmax * h0[n] - h0[b] @ odd
        step2 = 2.0 * k[:, 0] / qmax
        # sum h (c2 - L)^2 / 4; the top level also carries every clipped value.
        out[lo - 1 : hi] = (
            total2 - 2.0 * step2 * sum_m_s1 + step2 * step2 * sum_m2_s0
        ) / 4.0
    return out


def mse_amax(hist, bin_width: float, num_bits: int = 8, *, name: str | None = None) -> float:
    """amax at a bin edge minimising the expected squared quantisation error.

    Args:
        hist: histogram counts of |x|.
        bin_width: width of every bin (> 0).
        num_bits: signed integer width (8 -> 127 levels per side).
        name: tensor name, only used in warnings.

    Returns:
        ``k * bin_width`` for the best ``k`` in 1..n (ties to the larger ``k``).
    """
    h = _as_hist(hist, name)
    if h.sum() <= 0:
        warn_degenerate(name, "histogram is empty (no non-zero finite values)", DEGENERATE_AMAX)
        return DEGENERATE_AMAX
    w = _check_width(bin_width, name)
    err = mse_errors(h, num_bits)
    k = _pick_min_last(err, MSE_TIE_TOLERANCE * abs(float(err.min()))) + 1
    return _finish(k * w, name, "mse")
