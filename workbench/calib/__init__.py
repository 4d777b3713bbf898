"""Calibration: streaming per-tensor histograms (collector), pure amax algorithms, and the
range-method registry that names them for the CLI, the Session and the app."""
from .algorithms import (
    BASE_METHOD,
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
from .registry import REGISTRY, Param, RangeMethod, get_method, register

__all__ = [
    "BASE_METHOD",
    "DEFAULT_METHOD",
    "DEGENERATE_AMAX",
    "METHODS",
    "NUM_BINS",
    "REGISTRY",
    "CalibrationWarning",
    "DegenerateTensorWarning",
    "HistogramCollector",
    "Param",
    "RangeMethod",
    "all_amax",
    "clipped_fraction",
    "compute_amax",
    "entropy_amax",
    "entropy_amax_many",
    "get_method",
    "minmax_amax",
    "mse_amax",
    "percentile_amax",
    "register",
]
