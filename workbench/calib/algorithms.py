"""Pure calibration algorithms: histogram of |x| in, amax out (numpy only, no I/O).

Every function takes a histogram ``hist`` of |x| (non-negative counts, bin ``j`` covers
``[j * bin_width, (j + 1) * bin_width)``, the last bin also holds its upper edge) and returns
an ``amax``: the clipping threshold, so that the INT8 scale is ``amax / 127``.

The functions live in :mod:`.entropy`, :mod:`.mse` and :mod:`.basic` (shared conventions in
:mod:`._base`); this module gathers them, and :mod:`workbench.calib.registry` names them (with
their parameters, cache header name and colour) for the CLI, the Session and the app.

Methods (``METHODS``, the histogram methods of the registry):

- ``"entropy"``: TensorRT's EntropyCalibration2 as published. For every candidate ``i`` from
  ``start_bin`` (128) to the bin count: P = the first ``i`` bins, with the mass of all bins
  beyond ``i`` added to bin ``i - 1``; Q = the first ``i`` bins merged into 128 groups (bin
  ``j`` goes to group ``digitize(j, linspace(0, i, 129)) - 1``, as NVIDIA's
  pytorch-quantization groups them), each group's total spread evenly over its non-empty bins
  (bins empty in the histogram stay 0 in Q). KL(P || Q) of the normalised distributions,
  infinite where Q = 0 but P > 0 (and when the first ``i`` bins are all empty). The candidate
  with the smallest KL wins; KL values within ``TIE_TOLERANCE`` of the minimum count as ties
  and the LARGER ``i`` wins (less clipping). ``amax = i * bin_width``.
  This is what TensorRT's own calibrator does as published; it is not the default: on
  ReLU-like tensors the spike of exact zeros dominates the KL and the search collapses to the
  smallest candidate (0.375 of 6.0 on a ReLU6 tensor of ``tests/realistic_models.py``). A
  transcription of pytorch-quantization's ``_compute_amax_entropy`` loop (tests) gives the
  same amax as this search, with and without the zero-bin fix, on every histogram tried:
  the collapse is the published algorithm's, not a bug of this implementation.
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

from ._base import (
    DEFAULT_PERCENTILE,
    DEGENERATE_AMAX,
    MIN_AMAX,
    MSE_TIE_TOLERANCE,
    NUM_BINS,
    NUM_QUANT_BINS,
    START_BIN,
    TIE_TOLERANCE,
    CalibrationWarning,
    DegenerateTensorWarning,
    warn_degenerate,
)
from .basic import clipped_fraction, minmax_amax, percentile_amax
from .entropy import entropy_amax, entropy_amax_many, entropy_divergences
from .mse import mse_amax, mse_errors
from .registry import BASE_METHOD, REGISTRY, all_amax, compute_amax, histogram_methods

#: The histogram methods, in the registry's order.
METHODS = histogram_methods()
#: The histogram method used where ranges come from statistics alone (see
#: ``workbench.calib.registry.BASE_METHOD``; the user-facing default is the registry's
#: ``DEFAULT_METHOD``, ``"auto"``).
DEFAULT_METHOD = BASE_METHOD

__all__ = [
    "BASE_METHOD", "DEFAULT_METHOD", "DEFAULT_PERCENTILE", "DEGENERATE_AMAX", "METHODS", "MIN_AMAX",
    "MSE_TIE_TOLERANCE", "NUM_BINS", "NUM_QUANT_BINS", "REGISTRY", "START_BIN", "TIE_TOLERANCE",
    "CalibrationWarning", "DegenerateTensorWarning", "all_amax", "clipped_fraction", "compute_amax",
    "entropy_amax", "entropy_amax_many", "entropy_divergences", "minmax_amax", "mse_amax", "mse_errors",
    "percentile_amax", "warn_degenerate",
]
