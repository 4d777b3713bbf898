"""Layer 5, calibration: statistics -> ranges.

Owns: running the FP32 model to stream per-tensor histograms (``collect``, ``collector``,
``stats``), the pure amax algorithms (``basic``, ``entropy``, ``mse``), the range-method registry
that names them for the CLI, the Session and the app (``registry``), the amax rules (``amax``:
validity, scale = amax / 127) and the per-tensor ranges (``ranges``, ``rangemap``).
Choosing ranges by scoring the network's output ("auto") is a search: ``workbench.search``.
May import: graph, data, backends (the ONNX Runtime runner), outputs and the top-level helpers.
"""
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
from .ranges import Ranges, TensorRange, compute_ranges
from .stats import Statistics
from .collect import collect_statistics

__all__ = [
    "BASE_METHOD",
    "DEFAULT_METHOD",
    "DEGENERATE_AMAX",
    "METHODS",
    "NUM_BINS",
    "REGISTRY",
    "Ranges",
    "Statistics",
    "TensorRange",
    "collect_statistics",
    "compute_ranges",
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
