"""Percentile and min-max thresholds, and the share of a histogram a threshold clips."""
from __future__ import annotations

import math

import numpy as np

from ._base import (
    DEFAULT_PERCENTILE,
    DEGENERATE_AMAX,
    _as_hist,
    _check_width,
    _finish,
    is_valid_amax,
    warn_degenerate,
)
from ..errors import WorkbenchError



def percentile_amax(
    hist, bin_width: float, percentile: float = DEFAULT_PERCENTILE, *, name: str | None = None
) -> float:
    """Smallest bin edge where the histogram CDF reaches ``percentile`` percent.

    Args:
        hist: histogram counts of |x|.
        bin_width: width of every bin (> 0).
        percentile: in (0, 100]; default 99.99.
        name: tensor name, only used in warnings and errors.

    Returns:
        ``(b + 1) * bin_width`` where ``b`` is the first bin whose cumulative count is
        ``>= percentile / 100 * total`` (the upper edge of that bin).
    """
    p = float(percentile)
    if not (0.0 < p <= 100.0):
        raise WorkbenchError(f"percentile must be in (0, 100], got {percentile!r}")
    h = _as_hist(hist, name)
    total = h.sum()
    if total <= 0:
        warn_degenerate(name, "histogram is empty (no non-zero finite values)", DEGENERATE_AMAX)
        return DEGENERATE_AMAX
    w = _check_width(bin_width, name)
    cum = np.cumsum(h)
    # Compare counts, not fractions: p = 100 must land exactly on the last non-empty bin.
    b = int(np.searchsorted(cum, min(p / 100.0 * total, cum[-1]), side="left"))
    return _finish((b + 1) * w, name, "percentile")



def minmax_amax(absmax: float, *, name: str | None = None) -> float:
    """amax = max |x| (``DEGENERATE_AMAX`` with a warning when that is 0, tiny or not finite)."""
    a = float(absmax)
    if is_valid_amax(a):
        return a
    warn_degenerate(name, f"max |x| is {a!r}", DEGENERATE_AMAX)
    return DEGENERATE_AMAX


def clipped_fraction(hist, bin_width: float, amax: float) -> float:
    """Share of the histogram's values above ``amax`` (0..1).

    Values are assumed uniform inside a bin, so the bin holding ``amax`` counts in part.
    0.0 for an empty histogram.
    """
    h = _as_hist(hist)
    total = h.sum()
    if total <= 0:
        return 0.0
    w = _check_width(bin_width, None)
    pos = float(amax) / w  # amax in bins
    if pos >= h.size:
        return 0.0
    if pos <= 0:
        return 1.0
    b = int(math.floor(pos))
    above = h[b + 1 :].sum() + h[b] * (b + 1 - pos)
    return float(min(max(above / total, 0.0), 1.0))
