"""Streaming histogram collector: binning, extension, special values, save/load, speed."""
from __future__ import annotations

import io
import time
import warnings

import numpy as np
import pytest

from workbench.calib import algorithms as alg
from workbench.calib.algorithms import DEGENERATE_AMAX, METHODS, CalibrationWarning, DegenerateTensorWarning
from workbench.calib.collector import HistogramCollector
from workbench.errors import WorkbenchError


def normal(seed, shape, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def test_first_batch_bins_like_numpy_histogram():
    x = normal(0, (4, 16, 32, 32))
    c = HistogramCollector()
    c.collect(x)
    ax = np.abs(x.astype(np.float64))
    want, edges = np.histogram(ax, bins=2048, range=(0, ax.max()))
    assert c.hist.dtype == np.int64 and c.hist.size == 2048
    assert c.bin_width == pytest.approx(edges[1])
    assert c.hist.sum() == x.size
    # identical up to values sitting exactly on a bin edge
    assert np.abs(c.hist - want).sum() <= 1e-4 * x.size
    assert (c.min, c.max, c.absmax) == (float(x.min()), float(x.max()), float(np.abs(x).max()))
    assert c.count == x.size and c.batches == 1


def test_later_larger_batch_appends_bins_of_the_same_width():
    a = normal(1, 50_000)
    b = normal(2, 50_000, scale=3.0)
    c = HistogramCollector()
    c.collect(a)
    width = c.bin_width
    first = c.hist.copy()
    c.collect(b)
    assert c.bin_width == width
    needed = int(np.ceil(np.abs(b).max() / width))
    assert c.hist.size == needed > 2048
    # the new batch binned over the extended range with the old width, added to the old counts
    want_b, _ = np.histogram(np.abs(b.astype(np.float64)), bins=needed, range=(0, needed * width))
    got_b = c.hist.copy()
    got_b[:2048] -= first
    assert np.abs(got_b - want_b).sum() <= 2
    assert c.hist.sum() == a.size + b.size
    assert c.absmax == float(np.abs(b).max())


def test_memory_does_not_grow_with_batches_inside_the_range():
    c = HistogramCollector()
    c.collect(normal(0, 10_000, scale=10.0))
    for s in range(1, 40):
        c.collect(normal(s, 10_000))
    assert c.hist.size == 2048
    assert c.hist.sum() == c.count == 400_000


def test_nan_and_inf_are_counted_and_excluded():
    x = np.array([1.0, -2.0, np.nan, np.inf, -np.inf, np.inf, 0.0, np.nan, 0.5], np.float32)
    c = HistogramCollector()
    c.collect(x)
    assert (c.nan_count, c.posinf_count, c.neginf_count, c.inf_count) == (2, 2, 1, 3)
    assert c.count == 9 and c.finite_count == 4 and c.zero_count == 1
    assert (c.min, c.max, c.absmax) == (-2.0, 1.0, 2.0)
    assert c.hist.sum() == 4
    assert c.bin_width == pytest.approx(2.0 / 2048)
    assert np.isfinite(c.compute_amax("entropy"))


def test_all_zero_first_batches_are_deferred_then_added_to_bin_zero():
    c = HistogramCollector()
    c.collect(np.zeros(100, np.float32))
    c.collect(np.zeros((3, 5), np.float32))
    assert c.hist.size == 0 and c.bin_width == 0.0 and c.zero_count == 115
    c.collect(np.array([0.0, 4.0, -1.0], np.float32))
    assert c.bin_width == pytest.approx(4.0 / 2048)
    assert c.hist[0] == 116 and c.hist.sum() == 118 == c.finite_count
    assert c.zero_count == 116
    c.collect(np.zeros(10, np.float32))  # zeros after the range exists go straight to bin 0
    assert c.hist[0] == 126


def test_degenerate_tensors_get_default_amax_and_one_warning():
    cases = {
        "empty": [np.zeros(0, np.float32)],
        "zeros": [np.zeros(50, np.float32), np.zeros(7, np.float32)],
        "nan": [np.full(10, np.nan, np.float32)],
        "inf": [np.array([np.inf, -np.inf])],
    }
    for name, batches in cases.items():
        c = HistogramCollector(name=name)
        for b in batches:
            c.collect(b)
        assert c.degenerate_reason() is not None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = c.compute_all()
        assert res == {m: DEGENERATE_AMAX for m in METHODS}
        assert len(caught) == 1 and issubclass(caught[0].category, DegenerateTensorWarning)
        assert f"'{name}'" in str(caught[0].message)
        with pytest.warns(DegenerateTensorWarning):
            assert c.compute_amax("percentile") == DEGENERATE_AMAX
    never = HistogramCollector()
    with pytest.warns(DegenerateTensorWarning, match="no values"):
        assert never.compute_amax() == DEGENERATE_AMAX


def test_constant_tensor_gets_its_magnitude():
    c = HistogramCollector(name="bias")
    c.collect(np.full(1000, -2.5, np.float32))
    c.collect(np.full(10, -2.5, np.float32))
    with pytest.warns(DegenerateTensorWarning, match="constant"):
        res = c.compute_all()
    assert res == {m: 2.5 for m in METHODS}


def test_extension_beyond_max_bins_merges_bins_and_warns():
    c = HistogramCollector(max_bins=4096)
    a = normal(3, 20_000)
    c.collect(a)
    width = c.bin_width
    big = np.array([np.abs(a).max() * 10], np.float32)
    with pytest.warns(CalibrationWarning, match="merged every"):
        c.collect(big)
    assert c.hist.size <= 4096
    assert c.coarsen_factor == 5 and c.bin_width == pytest.approx(width * 5)
    assert c.hist.sum() == a.size + 1
    assert c.hist[-1] >= 1 and c.range_max >= float(big[0])


def test_compute_amax_delegates_to_the_pure_functions():
    rng = np.random.default_rng(4)
    c = HistogramCollector()
    for s in range(3):
        x = np.maximum(rng.standard_normal((2, 8, 20, 20)), 0).astype(np.float32) * (s + 1)
        c.collect(x)
    assert c.compute_amax("entropy") == alg.entropy_amax(c.hist, c.bin_width)
    assert c.compute_amax("entropy_zero_fix") == alg.entropy_amax(c.hist, c.bin_width, zero_bin_fix=True)
    assert c.compute_amax("minmax") == c.absmax
    assert c.compute_amax("percentile", percentile=99.0) == alg.percentile_amax(c.hist, c.bin_width, 99.0)
    assert c.compute_amax("mse") == alg.mse_amax(c.hist, c.bin_width)
    assert c.compute_all() == alg.all_amax(c.hist, c.bin_width, c.absmax)
    amax = c.compute_amax("percentile", percentile=99.0)
    assert c.clipped_fraction(amax) <= 0.01 + 1e-9
    with pytest.raises(WorkbenchError, match="(?i)unknown calibration method"):
        c.compute_amax("kl")


def test_round_trip_through_npz_is_exact():
    c = HistogramCollector(name="x")
    c.collect(np.array([0.0, 0.0], np.float32))
    c.collect(np.array([np.nan, 1.5, -0.25, np.inf], np.float32))
    c.collect(normal(5, 3000, scale=2.0))
    buf = io.BytesIO()
    np.savez(buf, **{f"x/{k}": v for k, v in c.to_arrays().items()})
    buf.seek(0)
    with np.load(buf) as z:
        d = {k.split("/", 1)[1]: z[k] for k in z.files}
    r = HistogramCollector.from_arrays(d, name="x")
    for attr in ("bin_width", "min", "max", "count", "nan_count", "posinf_count", "neginf_count",
                 "zero_count", "batches", "coarsen_factor", "num_bins", "max_bins"):
        assert getattr(r, attr) == getattr(c, attr), attr
    assert np.array_equal(r.hist, c.hist) and r.hist.dtype == np.int64
    assert r.compute_all() == c.compute_all()
    more = normal(6, 3000, scale=5.0)
    c.collect(more)
    r.collect(more)
    assert np.array_equal(r.hist, c.hist)
    del d["hist"]
    with pytest.raises(WorkbenchError, match="hist"):
        HistogramCollector.from_arrays(d)


def test_input_types():
    c = HistogramCollector()
    c.collect(np.array([1, -3, 0], np.int32))
    c.collect(np.array([0.5, 2.0], np.float16))
    c.collect([[0.25, -0.75]])
    assert c.count == 7 and c.absmax == 3.0 and c.hist.sum() == 7
    with pytest.raises(WorkbenchError, match="dtype"):
        c.collect(np.array(["a"]))
    c.reset()
    assert c.count == 0 and c.hist.size == 0 and c.absmax == 0.0


def test_collect_is_faster_than_numpy_histogram():
    x = normal(7, (16, 64, 56, 56))  # 3.2 M float32, a ResNet-50 activation batch
    c = HistogramCollector()
    c.collect(x)

    def best(fn, repeat=3):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    ours = best(lambda: c.collect(x))
    numpy_hist = best(lambda: np.histogram(np.abs(x), bins=2048, range=(0, 5.0)))
    # measured ~0.3x of np.histogram; allow a wide margin for a shared CPU
    assert ours < numpy_hist


def test_compiled_kernels_bin_exactly_like_numpy():
    """The numba path (when installed) must give the numpy path's statistics bit for bit."""
    from workbench.calib import _kernels

    fast = _kernels.kernels()
    if fast is None:
        pytest.skip("numba is not installed (pip install 'workbench[fast]')")
    rng = np.random.default_rng(3)
    batches = [rng.standard_normal(50_000).astype(np.float32) * s for s in (1.0, 0.5, 4.0, 2.0)]
    batches[1][:7] = [np.nan, np.inf, -np.inf, 0.0, 0.0, -0.0, np.nan]
    edge = np.float32(np.abs(batches[0]).max())
    batches[3][:3] = [edge, -edge, edge * 4]  # values on the top edge of the range
    with_numba = HistogramCollector()
    for b in batches:
        with_numba.collect(b)
    try:
        _kernels._KERNELS = False  # force the numpy path
        plain = HistogramCollector()
        for b in batches:
            plain.collect(b)
    finally:
        _kernels._KERNELS = None
    a, b = with_numba.to_arrays(), plain.to_arrays()
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
