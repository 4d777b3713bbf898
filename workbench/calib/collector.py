"""Streaming per-tensor statistics: running min/max, special-value counts and a |x| histogram.

The histogram follows TensorRT's published method: ``num_bins`` (2048) bins over
``[0, max |x| of the first batch]``; a later batch whose max |x| lies beyond the range
extends it by appending bins of the SAME width. Memory is the histogram only; it never
grows with the number of batches except through that extension.

Defined behaviours:

- NaN and +/-Inf are counted (``nan_count``, ``posinf_count``, ``neginf_count``) and left
  out of everything else: ``min``, ``max``, ``absmax`` and the histogram cover finite values.
- Batches that are all zero before any non-zero value arrives: the bin width is undefined,
  so the histogram is deferred (``hist`` is empty, ``bin_width`` is 0.0) while the zeros are
  counted; when the first batch with a non-zero value arrives, the range is set from it and
  the zeros seen so far are added to bin 0. So ``hist.sum()`` always equals the number of
  finite values once the histogram exists.
- Binning: bin = floor(|x| * (1 / bin_width)) in float64 (the same bins as ``np.histogram``
  over ``[0, len(hist) * bin_width]``); values on the top edge go to the last bin.
- An extension that would need more than ``max_bins`` bins (a later batch hundreds of times
  larger than the first) merges every ``f`` adjacent bins first (bin width times ``f``) and
  warns with ``CalibrationWarning``: the result then deviates from TensorRT's, but memory
  stays bounded. ``coarsen_factor`` records the total factor (1 = exact TensorRT binning).
- ``compute_amax`` on a tensor without a usable range (no values, only NaN/Inf, all zero)
  returns ``DEGENERATE_AMAX`` and warns ``DegenerateTensorWarning``; a constant non-zero
  tensor (min == max) returns ``|constant|`` for every method, also with a warning.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..errors import WorkbenchError
from . import _base as alg
from . import registry
from .basic import clipped_fraction
from ._kernels import kernels

# 2**18 bins of int64 = 2 MiB per tensor: 128 times the first batch's range.
MAX_BINS = 1 << 18
# Elements binned per step: keeps the temporaries in cache and memory flat for huge tensors.
CHUNK_SIZE = 1 << 16
_FORMAT_VERSION = 1
_INT_FIELDS = ("count", "nan_count", "posinf_count", "neginf_count", "zero_count", "batches",
               "coarsen_factor", "num_bins", "max_bins")
_FLOAT_FIELDS = ("bin_width", "min", "max")


class HistogramCollector:
    """Accumulates statistics of one tensor over many batches (see the module docstring).

    Args:
        num_bins: bins of the first histogram (2048, as TensorRT).
        max_bins: upper bound on bins after extension (default ``MAX_BINS`` = 262144).
        name: tensor name, used in warnings and error messages.

    Attributes:
        hist: int64 counts of |x| per bin (empty until the first non-zero finite value).
        bin_width: width of every bin (0.0 while the histogram is deferred).
        min, max: smallest / largest finite value (``inf`` / ``-inf`` before any).
        count: all elements seen, NaN and Inf included.
        nan_count, posinf_count, neginf_count, zero_count: special values seen.
        batches: number of ``collect`` calls.
        coarsen_factor: 1 unless an extension beyond ``max_bins`` merged bins.
    """

    def __init__(self, num_bins: int = alg.NUM_BINS, *, max_bins: int = MAX_BINS, name: str | None = None):
        if int(num_bins) < 1 or int(max_bins) < int(num_bins):
            raise WorkbenchError(
                f"need 1 <= num_bins <= max_bins, got num_bins={num_bins}, max_bins={max_bins}"
            )
        self.num_bins = int(num_bins)
        self.max_bins = int(max_bins)
        self.name = name
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Forget everything collected so far (settings and name are kept)."""
        self.hist = np.zeros(0, np.int64)
        self.bin_width = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.count = 0
        self.nan_count = 0
        self.posinf_count = 0
        self.neginf_count = 0
        self.zero_count = 0
        self.batches = 0
        self.coarsen_factor = 1

    @property
    def inf_count(self) -> int:
        """+Inf and -Inf values seen."""
        return self.posinf_count + self.neginf_count

    @property
    def finite_count(self) -> int:
        """Finite values seen (the histogram's total once it exists)."""
        return self.count - self.nan_count - self.inf_count

    @property
    def absmax(self) -> float:
        """max |x| over the finite values (0.0 before any)."""
        if self.finite_count == 0:
            return 0.0
        return float(max(-self.min, self.max))

    @property
    def range_max(self) -> float:
        """Upper edge of the histogram (``len(hist) * bin_width``)."""
        return self.hist.size * self.bin_width

    def __repr__(self) -> str:
        return (
            f"HistogramCollector(name={self.name!r}, count={self.count}, min={self.min:g}, "
            f"max={self.max:g}, bins={self.hist.size}, bin_width={self.bin_width:g}, "
            f"nan={self.nan_count}, inf={self.inf_count}, zeros={self.zero_count})"
        )

    # ------------------------------------------------------------------ collect

    def collect(self, x, rows: int | None = None):
        """Add one batch of values (any shape; float, int or bool array-like).

        Args:
            rows: the number of samples on axis 0. When given and ``x`` has them, the min/max
                passes run per row instead of over the flat array (the same single pass each, so
                for free) and the per-row max |x| over finite values (0 for a row without any)
                is returned as a float64 array; that is how the calibration pass records the
                sample where each tensor peaks. The statistics are the same either way.

        Returns:
            the per-row max |x| (length ``rows``), or None when ``rows`` is not given or ``x``
            has no axis 0 of that length.
        """
        a = np.asarray(x)
        if a.dtype.kind not in "fiub":
            raise WorkbenchError(f"{self._who()}: cannot collect statistics of dtype {a.dtype}")
        if a.dtype.kind != "f":
            a = a.astype(np.float64)
        per_row = rows is not None and a.ndim >= 1 and a.shape[0] == rows
        flat = a.reshape(-1)
        self.batches += 1
        self.count += flat.size
        if flat.size == 0:
            return np.zeros(rows, np.float64) if per_row else None
        row_absmax = None
        if per_row:
            grid = flat.reshape(rows, -1)  # a view of flat: no copy
            row_lo, row_hi = grid.min(axis=1), grid.max(axis=1)
            lo, hi = row_lo.min(), row_hi.max()  # min/max are exact: the flat pass's values
        else:
            lo, hi = flat.min(), flat.max()
        if not (np.isfinite(lo) and np.isfinite(hi)):  # rare: only then pay for the masks
            self.nan_count += int(np.count_nonzero(np.isnan(flat)))
            self.posinf_count += int(np.count_nonzero(flat == np.inf))
            self.neginf_count += int(np.count_nonzero(flat == -np.inf))
            finite_mask = np.isfinite(flat)
            if per_row:  # max |x| of each row's finite values, 0 for a row without any
                row_absmax = np.where(finite_mask, np.abs(flat), 0).reshape(rows, -1).max(axis=1)
                row_absmax = row_absmax.astype(np.float64)
            flat = flat[finite_mask]
            if flat.size == 0:
                return row_absmax
            lo, hi = flat.min(), flat.max()
        elif per_row:
            row_absmax = np.maximum(-row_lo, row_hi).astype(np.float64)
        self._add_finite(flat, lo, hi)
        return row_absmax

    def _add_finite(self, flat: np.ndarray, lo, hi) -> None:
        """Fold a batch's finite values (min ``lo``, max ``hi``) into min/max, zeros and histogram."""
        finite = flat.size
        # the compiled kernel counts zeros while binning; numpy needs its own pass
        fast = kernels() if flat.dtype in (np.float32, np.float64) and (lo < 0 or hi > 0) else None
        zeros = 0 if fast is not None else int(np.count_nonzero(flat == 0))
        self.zero_count += int(zeros)
        self.min = min(self.min, float(lo))
        self.max = max(self.max, float(hi))
        batch_absmax = float(max(-lo, hi))
        if batch_absmax == 0.0:
            if self.hist.size:
                self.hist[0] += finite
            return  # deferred: counted in zero_count / finite_count, binned later
        if not self.hist.size:
            self.bin_width = batch_absmax / self.num_bins
            self.hist = np.zeros(self.num_bins, np.int64)
            self.hist[0] = self.finite_count - finite  # earlier batches were all zeros
        elif batch_absmax > self.range_max:
            self._extend(batch_absmax)
        if fast is not None:
            self.zero_count += int(fast(flat, 1.0 / self.bin_width, self.hist))
        else:
            self._bin(flat)

    def _extend(self, batch_absmax: float) -> None:
        """Append bins of the same width so the range reaches ``batch_absmax``."""
        needed = math.ceil(batch_absmax / self.bin_width)
        if needed > self.max_bins:
            factor = math.ceil(needed / self.max_bins)
            pad = (-self.hist.size) % factor
            merged = np.concatenate((self.hist, np.zeros(pad, np.int64))).reshape(-1, factor).sum(axis=1)
            self.hist = merged
            self.bin_width *= factor
            self.coarsen_factor *= factor
            warnings.warn(
                f"{self._who()}: a batch reached |x| = {batch_absmax:g}, "
                f"{needed} bins of the first batch's width; merged every {factor} bins to stay "
                f"within {self.max_bins} bins (histogram no longer bit-identical to TensorRT's)",
                alg.CalibrationWarning,
                stacklevel=4,  # _extend <- _add_finite <- collect <- the caller
            )
            needed = math.ceil(batch_absmax / self.bin_width)
        if needed > self.hist.size:
            self.hist = np.concatenate((self.hist, np.zeros(needed - self.hist.size, np.int64)))

    def _bin(self, flat: np.ndarray) -> None:
        """Add finite values to the histogram (the range already covers them)."""
        nbins = self.hist.size
        inv = 1.0 / self.bin_width
        chunk = max(CHUNK_SIZE, 8 * nbins)  # amortise bincount's length-nbins output
        # float64 costs ~15 % more than float32 here and bins exactly like np.histogram.
        buf = np.empty(min(chunk, flat.size), np.float64)
        for start in range(0, flat.size, chunk):
            part = flat[start : start + chunk]
            b = buf[: part.size]
            np.abs(part, out=b)
            np.multiply(b, inv, out=b)
            counts = np.bincount(b.astype(np.intp), minlength=nbins)
            if counts.size > nbins:  # the top edge (and rounding at it) belongs to the last bin
                counts[nbins - 1] += counts[nbins:].sum()
            self.hist += counts[:nbins]

    # ------------------------------------------------------------------ amax

    def degenerate_reason(self) -> str | None:
        """Why this tensor has no usable range, or None when it has one."""
        if self.count == 0:
            return "no values were collected"
        if self.finite_count == 0:
            return f"only NaN/Inf values ({self.nan_count} NaN, {self.inf_count} Inf)"
        if self.absmax == 0.0:
            return f"all {self.finite_count} finite values are zero"
        if self.absmax < alg.MIN_AMAX:
            return f"max |x| = {self.absmax:g} is too small for a float32 scale"
        if self.min == self.max:
            return f"constant value {self.min:g}"
        return None

    def _degenerate_amax(self) -> float | None:
        reason = self.degenerate_reason()
        if reason is None:
            return None
        amax = self.absmax if self.min == self.max and self.absmax >= alg.MIN_AMAX else alg.DEGENERATE_AMAX
        alg.warn_degenerate(self.name, reason, amax)
        return amax

    def compute_amax(self, method: str = registry.BASE_METHOD, **params) -> float:
        """amax by one histogram method of :mod:`workbench.calib.registry` (e.g. "mse",
        "minmax", "percentile"); ``params`` such as ``percentile=99.9`` or ``num_bits=8``
        override the method's defaults."""
        m = registry.get_method(method)
        if m.compute is None:
            raise WorkbenchError(f"{self._who()}: the range method '{method}' is not computed from a "
                                 "histogram; choose one of " + ", ".join(registry.histogram_methods()))
        special = self._degenerate_amax()
        if special is not None:
            return special
        return m.amax(self.hist, self.bin_width, self.absmax, name=self.name, **params)

    def compute_all(self, **params) -> dict[str, float]:
        """amax of every histogram method (one warning at most for a degenerate tensor).

        Remembered for the collector's current state and ``params``: a calibration reads them
        several times (the ranges of a method, every method's score, the ``auto`` candidates,
        a method switch in the app), and entropy's is the costly one."""
        special = self._degenerate_amax()
        if special is not None:
            return {m: special for m in registry.histogram_methods()}
        key = (id(self.hist), self.hist.size, self.count, self.batches, self.bin_width, self.zero_count,
               self.coarsen_factor, tuple(sorted(params.items())), tuple(registry.histogram_methods()))
        memo = self.__dict__.setdefault("_all_amax", {})
        if key not in memo:
            if len(memo) >= 4:
                memo.clear()
            memo[key] = registry.all_amax(self.hist, self.bin_width, self.absmax, name=self.name, **params)
        return dict(memo[key])

    def clipped_fraction(self, amax: float) -> float:
        """Share of the finite values above ``amax`` (uniform within a bin)."""
        if not self.hist.size:
            return 0.0
        return clipped_fraction(self.hist, self.bin_width, amax)

    # ------------------------------------------------------------------ save / load

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The full state as numpy arrays (for ``np.savez``); :meth:`from_arrays` inverts it exactly."""
        out = {"version": np.array(_FORMAT_VERSION, np.int64), "hist": self.hist.copy()}
        for f in _FLOAT_FIELDS:
            out[f] = np.array(getattr(self, f), np.float64)
        for f in _INT_FIELDS:
            out[f] = np.array(getattr(self, f), np.int64)
        return out

    @classmethod
    def from_arrays(cls, arrays, *, name: str | None = None) -> "HistogramCollector":
        """Rebuild a collector from :meth:`to_arrays` output (a dict or an ``NpzFile`` view).

        Raises WorkbenchError naming the missing or malformed field.
        """
        who = f"saved statistics of tensor '{name}'" if name else "saved statistics"
        missing = [k for k in ("version", "hist", *_FLOAT_FIELDS, *_INT_FIELDS) if k not in arrays]
        if missing:
            raise WorkbenchError(f"{who} lack field(s) {', '.join(missing)}")
        if int(np.asarray(arrays["version"])) != _FORMAT_VERSION:
            raise WorkbenchError(
                f"{who} use format version {int(np.asarray(arrays['version']))}, expected {_FORMAT_VERSION}"
            )
        hist = np.asarray(arrays["hist"])
        if hist.ndim != 1 or hist.dtype.kind not in "iu" or (hist.size and hist.min() < 0):
            raise WorkbenchError(f"{who}: 'hist' must be a 1-D array of non-negative integer counts")
        try:
            ints = {f: int(np.asarray(arrays[f])) for f in _INT_FIELDS}
            floats = {f: float(np.asarray(arrays[f])) for f in _FLOAT_FIELDS}
        except (TypeError, ValueError) as exc:
            raise WorkbenchError(f"{who}: malformed scalar field ({exc})") from None
        c = cls(ints["num_bins"], max_bins=ints["max_bins"], name=name)
        c.hist = hist.astype(np.int64, copy=True)
        for f in _INT_FIELDS:
            if f not in ("num_bins", "max_bins"):
                setattr(c, f, ints[f])
        for f, v in floats.items():
            setattr(c, f, v)
        if c.hist.size and c.hist.sum() != c.finite_count:
            raise WorkbenchError(
                f"{who}: histogram holds {int(c.hist.sum())} values but "
                f"{c.finite_count} finite values were counted"
            )
        return c

    def _who(self) -> str:
        return f"tensor '{self.name}'" if self.name else "tensor"
