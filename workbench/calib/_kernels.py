"""Optional compiled kernels for the collector (numba), used when numba is installed.

Binning every activation is the cost of calibration: numpy needs several passes and temporary
arrays per batch (abs, scale, cast, bincount) and holds the GIL in ``bincount``. These kernels do
each job in one pass without temporaries and release the GIL, so the collector's worker thread
really runs beside ONNX Runtime. They give bit-identical results to the numpy path (same float64
arithmetic, same top-edge rule), which the tests check. Install with ``pip install 'workbench[fast]'``.
"""
from __future__ import annotations

import os

_KERNELS = None
#: Set WORKBENCH_NO_NUMBA=1 to force the numpy path (the tests compare both).
DISABLED = os.environ.get("WORKBENCH_NO_NUMBA", "") not in ("", "0")


def kernels():
    """The compiled ``bin_into(flat, inv_width, hist) -> zeros``, or None when numba is missing
    or disabled."""
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = False
        if not DISABLED:
            try:
                import numba
            except ImportError:
                return None
            _KERNELS = _compile(numba)
    return _KERNELS or None


def _compile(numba):
    import numpy as np

    @numba.njit(nogil=True, cache=True)
    def bin_into(flat, inv, hist):
        """hist[floor(|x| * inv)] += 1 for finite x (indices past the end go to the last bin);
        returns the number of exact zeros."""
        last = hist.size - 1
        zeros = 0
        for v in flat:
            a = abs(np.float64(v))
            if a == np.inf or a != a:
                continue
            if a == 0.0:
                zeros += 1
            i = np.int64(a * inv)
            if i > last:
                i = last
            hist[i] += 1
        return zeros

    return bin_into
