"""TensorRT's entropy calibration (EntropyCalibration2) as published, and the zero-bin variant
of pytorch-quantization / ModelOpt; vectorised over candidates (see
:mod:`workbench.calib.algorithms` for the definition)."""
from __future__ import annotations

import functools
from typing import Iterable, Sequence

import numpy as np

from ..errors import WorkbenchError
from ._base import (
    DEGENERATE_AMAX,
    NUM_QUANT_BINS,
    START_BIN,
    TIE_TOLERANCE,
    _aligned_blocks,
    _as_hist,
    _block_rows,
    _check_width,
    _finish,
    _pick_min_last,
    warn_degenerate,
)


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
