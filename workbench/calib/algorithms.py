"""Pure calibration algorithms: histogram of |x| in, amax out (numpy only, no I/O).

Every function takes a histogram ``hist`` of |x| (non-negative counts, bin ``j`` covers
``[j * bin_width, (j + 1) * bin_width)``, the last bin also holds its upper edge) and returns
an ``amax``: the clipping threshold, so that the INT8 scale is ``amax / 127``.

Methods (``METHODS``):

- ``"entropy"``: TensorRT's EntropyCalibration2 as published. For every candidate ``i`` from
  ``start_bin`` (128) to the bin count: P = the first ``i`` bins, with the mass of all bins
  beyond ``i`` added to bin ``i - 1``; Q = the first ``i`` bins merged into 128 groups (bin
  ``j`` goes to group ``digitize(j, linspace(0, i, 129)) - 1``, as NVIDIA's
  pytorch-quantization groups them), each group's total spread evenly over its non-empty bins
  (bins empty in the histogram stay 0 in Q). KL(P || Q) of the normalised distributions,
  infinite where Q = 0 but P > 0 (and when the first ``i`` bins are all empty). The candidate
  with the smallest KL wins; KL values within ``TIE_TOLERANCE`` of the minimum count as ties
  and the LARGER ``i`` wins (less clipping). ``amax = i * bin_width``.
  This is what TensorRT's own calibrator does as published; it is not the default (see
  ``DEFAULT_METHOD``): on ReLU-like tensors the spike of exact zeros dominates the KL and
  the search collapses to the smallest candidate.
- ``"entropy_zero_fix"``: the same search after setting bin 0's count to bin 1's, as
  pytorch-quantization and ModelOpt do to damp the spike of exact zeros after ReLU.
  With a spike of exact zeros the published search clips much harder: Q spreads bin 0's
  spike over the other bins of group 0, which costs more the more bins a group holds, so
  small candidates win (|N(0,1)| with 50 % zeros and a few outliers at 10..20: about 2.3
  published vs 4.3 with the fix; without exact zeros the two agree).
- ``"minmax"``: ``amax = max |x|``.
- ``"percentile"``: the smallest bin edge at which the histogram's CDF reaches ``p`` percent,
  i.e. the UPPER edge of the bin in which the cumulative count first reaches ``p / 100`` of
  the total (no interpolation inside the bin). It is never below the exact percentile of
  the binned values and at most one bin width above it. (pytorch-quantization returns the
  lower edge of that bin instead, which clips the bin that holds the percentile.)
- ``"mse"``: the bin edge ``k * bin_width`` (``k`` = 1 .. bin count) minimising the expected
  squared error of symmetric quantisation (``2**(num_bits-1) - 1`` = 127 levels per side,
  scale ``amax / 127``, round to nearest, clip at ``amax``), each bin represented by its
  centre. Ties (within a relative ``MSE_TIE_TOLERANCE``, 1e-9) go to the larger amax.

Degenerate tensors. A histogram without mass (empty, all counts zero: a tensor that was
empty, only NaN/Inf, or never non-zero) has no range to calibrate: every method returns
``DEGENERATE_AMAX`` (1.0) and warns with ``DegenerateTensorWarning``. 1.0 rather than a
tiny value because any positive amax represents zeros exactly, a tiny scale such as
1e-6 / 127 underflows in FP16 (and TensorRT rejects a zero scale), and 1.0 is of the order
of typical activation ranges should the tensor be non-zero at inference. Any amax below
``MIN_AMAX`` (its float32 scale would be denormal or zero) or not finite is replaced the
same way, so every function here returns a finite amax > 0. Constant tensors are detected
by the collector (it knows min and max) and get ``amax = |constant|`` with a warning; on a
bare histogram the methods above give the upper edge of the occupied bin ("entropy" may
give the whole range, since ties go to the larger candidate).
"""
from __future__ import annotations

import functools
import math
import warnings
from typing import Iterable, Sequence

import numpy as np

from ..errors import WorkbenchError

NUM_BINS = 2048
NUM_QUANT_BINS = 128
START_BIN = 128
METHODS = ("entropy", "entropy_zero_fix", "minmax", "percentile", "mse")
# The default, chosen by measurement on the sample EfficientNet-Lite0 (ReLU6: 50-80 % exact zeros
# and a spike of saturated values at 6), INT8 output SQNR vs FP32 over three calibration subsets:
# mse 17.8-18.0 dB, percentile 17.6-17.8, minmax 17.4-17.5, entropy_zero_fix 14.4 (it clips the
# saturated values), published entropy 0.0 (it collapses to the smallest candidate). README "Methods".
DEFAULT_METHOD = "mse"
DEFAULT_PERCENTILE = 99.99
DEGENERATE_AMAX = 1.0
# Below this the float32 scale amax/127 is denormal (FP16 and TensorRT would flush it to 0).
MIN_AMAX = float(np.finfo(np.float32).tiny) * 127.0
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
        f"{who}{reason}; using amax {amax:g} (scale {amax / 127:.6g})",
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
    """Guarantee a finite amax > 0 (warn and use DEGENERATE_AMAX otherwise)."""
    if math.isfinite(amax) and amax >= MIN_AMAX:
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


@functools.lru_cache(maxsize=8)
def _group_starts(block: int, rows: int, num_quant_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Group table for the candidates i = block*rows .. (block+1)*rows - 1.

    Returns ``starts`` (rows, num_quant_bins + 1) with ``starts[r, k]`` = the first bin of
    group k for candidate i and ``starts[r, -1] = i``, and ``last_group`` (rows,) = the group
    holding bin i-1. Bin j is in group k when ``space[k] <= j < space[k+1]`` with ``space``
    exactly ``np.linspace(0, i, num_quant_bins + 1)`` (which computes ``k * (i / num)``), so
    the first bin of group k is ``ceil(space[k])``. Read-only (cached).
    """
    i = np.arange(block * rows, (block + 1) * rows, dtype=np.float64)[:, None]
    k = np.arange(num_quant_bins + 1, dtype=np.float64)[None, :]
    starts = np.ceil(k * (i / num_quant_bins)).astype(np.int64)
    starts[:, -1] = i[:, 0].astype(np.int64)
    last_group = (starts[:, :-1] <= i - 1).sum(axis=1) - 1
    starts.setflags(write=False)
    last_group.setflags(write=False)
    return starts, last_group


def entropy_divergences(
    hist,
    *,
    zero_bin_fix: bool = False,
    num_quant_bins: int = NUM_QUANT_BINS,
    start_bin: int = START_BIN,
) -> tuple[np.ndarray, np.ndarray]:
    """KL(P || Q) of every entropy candidate, vectorised (see the module docstring).

    Args:
        hist: histogram counts of |x| (1-D, >= 0).
        zero_bin_fix: set bin 0's count to bin 1's first (pytorch-quantization / ModelOpt).
        num_quant_bins: groups Q is merged into (128 = INT8 magnitude levels).
        start_bin: the smallest candidate bin count (128 in TensorRT). When the histogram has
            fewer bins, the only candidate is the whole histogram.

    Returns:
        ``(candidates, kl)``: candidate bin counts ``i`` (int64) and their divergences
        (float64, ``inf`` where Q is zero but P is not). Both empty when the histogram has no mass.
    """
    h = _as_hist(hist)
    if zero_bin_fix and h.size >= 2:
        h[0] = h[1]
    n = h.size
    total = float(h.sum())
    if n == 0 or total <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    if num_quant_bins < 1:
        raise WorkbenchError(f"num_quant_bins must be >= 1, got {num_quant_bins}")
    first = min(max(int(start_bin), 1), n)

    cum = np.concatenate(([0.0], np.cumsum(h)))  # cum[m] = mass of bins < m
    nonempty = np.concatenate(([0], np.cumsum(h > 0)))  # non-empty bins < m
    with np.errstate(divide="ignore", invalid="ignore"):
        hlogh = np.where(h > 0, h * np.log(h), 0.0)
    cum_hlogh = np.concatenate(([0.0], np.cumsum(hlogh)))

    candidates = np.arange(first, n + 1, dtype=np.int64)
    kl = np.empty(candidates.size, np.float64)
    rows = _block_rows(num_quant_bins + 1)
    for block, lo, hi in _aligned_blocks(first, n, rows):
        i = candidates[lo - first : hi - first + 1]
        starts, last_group = _group_starts(block, rows, int(num_quant_bins))
        starts = starts[lo - block * rows : hi - block * rows + 1]
        last_group = last_group[lo - block * rows : hi - block * rows + 1]
        group_mass = np.diff(cum[starts], axis=1)  # (ncand, groups)
        group_nonempty = np.diff(nonempty[starts], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            # sum_j Q_j log Q_j-ish term: each non-empty bin of group k has Q = S_k / n_k.
            glog = np.where(group_mass > 0, group_mass * np.log(group_mass / group_nonempty), 0.0)
            sum_group = glog.sum(axis=1)
            q_last = (
                np.take_along_axis(group_mass, last_group[:, None], 1)[:, 0]
                / np.take_along_axis(group_nonempty, last_group[:, None], 1)[:, 0]
            )
            kept = cum[i]  # mass of the first i bins = sum of Q before normalising
            tail = total - kept
            h_last = h[i - 1]
            p_last = h_last + tail
            # sum_j P_j log P_j: bins < i-1 unchanged, bin i-1 carries the tail.
            sum_plogp = cum_hlogh[i - 1] + np.where(p_last > 0, p_last * np.log(p_last), 0.0)
            # sum_j P_j log Q_j: like sum_group except bin i-1 has P = h + tail.
            sum_plogq = sum_group + np.where(h_last > 0, tail * np.log(q_last), 0.0)
            block_kl = (sum_plogp - sum_plogq) / total + np.log(kept / total)
        # Q = 0 where P > 0: the last bin is empty but receives the tail, or Q has no mass.
        block_kl[((h_last == 0) & (tail > 0)) | (kept <= 0)] = np.inf
        kl[lo - first : hi - first + 1] = block_kl
    return candidates, kl


def entropy_amax(
    hist,
    bin_width: float,
    *,
    zero_bin_fix: bool = False,
    num_quant_bins: int = NUM_QUANT_BINS,
    start_bin: int = START_BIN,
    name: str | None = None,
) -> float:
    """amax of TensorRT's entropy calibration (EntropyCalibration2), see the module docstring.

    Args:
        hist: histogram counts of |x|.
        bin_width: width of every bin (> 0).
        zero_bin_fix: False (default) = TensorRT as published; True = the pytorch-quantization /
            ModelOpt variant that first sets bin 0's count to bin 1's.
        num_quant_bins: groups Q is merged into (128 for INT8).
        start_bin: smallest candidate bin count (128).
        name: tensor name, only used in warnings.

    Returns:
        ``i * bin_width`` for the winning candidate ``i`` (ties to the larger ``i``).
    """
    h = _as_hist(hist, name)
    if h.sum() <= 0:
        warn_degenerate(name, "histogram is empty (no non-zero finite values)", DEGENERATE_AMAX)
        return DEGENERATE_AMAX
    w = _check_width(bin_width, name)
    candidates, kl = entropy_divergences(
        h, zero_bin_fix=zero_bin_fix, num_quant_bins=num_quant_bins, start_bin=start_bin
    )
    if candidates.size == 0:
        # Only possible with zero_bin_fix when all mass sat in bin 0: keep the occupied range.
        last = int(np.flatnonzero(h > 0)[-1]) + 1
        return _finish(last * w, name, "entropy")
    i = int(candidates[_pick_min_last(kl, TIE_TOLERANCE)])
    return _finish(i * w, name, "entropy")


def entropy_amax_many(
    hists: Sequence,
    bin_widths: Iterable[float],
    *,
    zero_bin_fix: bool = False,
    num_quant_bins: int = NUM_QUANT_BINS,
    start_bin: int = START_BIN,
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """:func:`entropy_amax` for many tensors; histograms may have different lengths.

    The per-candidate work is vectorised inside :func:`entropy_divergences`, and the group
    table is shared (cached) between histograms of the same length, so this is a plain loop.

    Returns:
        float64 array of amax, one per histogram.
    """
    widths = list(bin_widths)
    if len(widths) != len(hists):
        raise WorkbenchError(f"got {len(hists)} histograms but {len(widths)} bin widths")
    out = np.empty(len(hists), np.float64)
    for t, (h, w) in enumerate(zip(hists, widths)):
        out[t] = entropy_amax(
            h,
            w,
            zero_bin_fix=zero_bin_fix,
            num_quant_bins=num_quant_bins,
            start_bin=start_bin,
            name=None if names is None else names[t],
        )
    return out


# --------------------------------------------------------------------------- percentile


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


# --------------------------------------------------------------------------- MSE


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


# --------------------------------------------------------------------------- min-max and all


def minmax_amax(absmax: float, *, name: str | None = None) -> float:
    """amax = max |x| (``DEGENERATE_AMAX`` with a warning when that is 0, tiny or not finite)."""
    a = float(absmax)
    if math.isfinite(a) and a >= MIN_AMAX:
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


def all_amax(
    hist,
    bin_width: float,
    absmax: float,
    *,
    percentile: float = DEFAULT_PERCENTILE,
    num_bits: int = 8,
    name: str | None = None,
) -> dict[str, float]:
    """amax of every method in ``METHODS`` for one tensor.

    Args:
        hist: histogram counts of |x|.
        bin_width: width of every bin.
        absmax: max |x| over the finite values (for ``"minmax"``).
        percentile: for ``"percentile"`` (default 99.99).
        num_bits: for ``"mse"`` (default 8).
        name: tensor name, used in warnings.

    A histogram without mass gives ``DEGENERATE_AMAX`` for every method and ONE warning.
    """
    h = _as_hist(hist, name)
    if h.sum() <= 0:
        warn_degenerate(name, "no non-zero finite values were seen", DEGENERATE_AMAX)
        return {m: DEGENERATE_AMAX for m in METHODS}
    return {m: compute_amax(m, h, bin_width, absmax, percentile=percentile, num_bits=num_bits, name=name)
            for m in METHODS}


def compute_amax(
    method: str,
    hist,
    bin_width: float,
    absmax: float,
    *,
    percentile: float = DEFAULT_PERCENTILE,
    num_bits: int = 8,
    name: str | None = None,
) -> float:
    """amax of one method by name (one of ``METHODS``); arguments as in :func:`all_amax`."""
    if method == "entropy":
        return entropy_amax(hist, bin_width, name=name)
    if method == "entropy_zero_fix":
        return entropy_amax(hist, bin_width, zero_bin_fix=True, name=name)
    if method == "minmax":
        return minmax_amax(absmax, name=name)
    if method == "percentile":
        return percentile_amax(hist, bin_width, percentile, name=name)
    if method == "mse":
        return mse_amax(hist, bin_width, num_bits, name=name)
    raise WorkbenchError(f"unknown calibration method '{method}'; choose one of {', '.join(METHODS)}")
