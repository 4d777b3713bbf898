"""Calibration: streaming per-tensor histograms (collector) and pure amax algorithms."""
from .algorithms import (
    DEFAULT_METHOD,
    DEGENERATE_AMAX,
    METHODS,
    NUM_BINS,
    CalibrationWarning,
    DegenerateTensorWarning,
    all_amax,
    clipped_fraction,
    compute_amax,
    entropy_amax,
    entropy_amax_many,
    minmax_amax,
    mse_amax,
    percentile_amax,
)
from .collector import HistogramCollector

__all__ = [
    "DEFAULT_METHOD",
    "DEGENERATE_AMAX",
    "METHODS",
    "NUM_BINS",
    "CalibrationWarning",
    "DegenerateTensorWarning",
    "HistogramCollector",
    "all_amax",
    "clipped_fraction",
    "compute_amax",
    "entropy_amax",
    "entropy_amax_many",
    "minmax_amax",
    "mse_amax",
    "percentile_amax",
]
