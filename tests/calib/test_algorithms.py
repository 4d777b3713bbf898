"""Percentile, MSE, min-max, degenerate inputs and the range-method registry against references."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from workbench.calib import algorithms as alg
from workbench.calib.algorithms import (
    DEGENERATE_AMAX,
    METHODS,
    DegenerateTensorWarning,
    all_amax,
    clipped_fraction,
    entropy_amax,
    entropy_amax_many,
    entropy_divergences,
    minmax_amax,
    mse_amax,
    mse_errors,
    percentile_amax,
)
from workbench.errors import WorkbenchError
from calib_refs import brute_mse, random_histogram, relu_like_with_outliers  # noqa: F401



# --------------------------------------------------------------------------- references
# --------------------------------------------------------------------------- percentile


def test_percentile_is_upper_edge_of_bin_reaching_p():
    hist = np.array([1, 1, 1, 1])
    assert percentile_amax(hist, 1.0, 50) == 2.0
    assert percentile_amax(hist, 1.0, 50.1) == 3.0
    assert percentile_amax(hist, 1.0, 100) == 4.0
    assert percentile_amax(np.array([5, 0, 0, 0]), 1.0, 100) == 1.0


@pytest.mark.parametrize("p", [50.0, 90.0, 99.0, 99.9, 99.99])
def test_percentile_within_one_bin_of_numpy(p):
    rng = np.random.default_rng(1)
    x = np.abs(rng.standard_normal(400_000))
    hist, edges = np.histogram(x, bins=2048, range=(0, x.max()))
    w = edges[1]
    amax = percentile_amax(hist, w, p)
    exact = np.percentile(x, p)
    assert amax - w <= exact <= amax + 1e-12


def test_percentile_rejects_out_of_range():
    for bad in (0, -1, 100.5, float("nan")):
        with pytest.raises(WorkbenchError, match="percentile"):
            percentile_amax(np.ones(10), 1.0, bad)


# --------------------------------------------------------------------------- MSE


@pytest.mark.parametrize("num_bits", [8, 4])
def test_mse_matches_brute_force(num_bits):
    rng = np.random.default_rng(21 + num_bits)
    for trial in range(10):
        n = int(rng.integers(20, 400))
        hist = random_histogram(rng, trial % 4, n)
        if hist.sum() == 0:
            continue
        brute = brute_mse(hist, num_bits)
        fast = mse_errors(hist, num_bits)
        np.testing.assert_allclose(fast, brute, rtol=1e-8, atol=1e-9)
        k = round(mse_amax(hist, 1.0, num_bits) / 1.0)
        assert brute[k - 1] <= brute.min() * (1 + 1e-8) + 1e-12
        # the chosen candidate is the largest of the (near-)minimal ones
        assert not np.any(brute[k:] < brute.min() * (1 - 1e-7))


def test_mse_clips_outliers_but_not_bulk():
    hist, width, x = relu_like_with_outliers(zero_fraction=0.0)
    amax = mse_amax(hist, width)
    assert np.percentile(x, 99.9) < amax < x.max() * 0.9
    errors = mse_errors(hist)
    k = round(amax / width)
    assert errors[k - 1] < errors[-1]  # better than min-max
    assert errors[k - 1] < errors[round(percentile_amax(hist, width, 99.9) / width) - 1]


# --------------------------------------------------------------------------- min-max, all, degenerate


def test_minmax_and_degenerate_values_warn():
    assert minmax_amax(3.5) == 3.5
    for bad in (0.0, float("nan"), float("inf"), 1e-45):
        with pytest.warns(DegenerateTensorWarning):
            assert minmax_amax(bad, name="t") == DEGENERATE_AMAX


@pytest.mark.parametrize("hist", [np.zeros(0), np.zeros(2048), np.zeros(5, np.int64)])
def test_empty_histogram_gives_default_with_warning(hist):
    for fn in (lambda: entropy_amax(hist, 1.0), lambda: percentile_amax(hist, 1.0),
               lambda: mse_amax(hist, 1.0), lambda: entropy_amax(hist, 0.0, zero_bin_fix=True)):
        with pytest.warns(DegenerateTensorWarning):
            assert fn() == DEGENERATE_AMAX
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = all_amax(hist, 1.0, 0.0, name="conv1_out")
    assert result == {m: DEGENERATE_AMAX for m in METHODS}
    assert len(caught) == 1 and "conv1_out" in str(caught[0].message)


def test_all_amax_positive_finite_and_consistent():
    rng = np.random.default_rng(9)
    for kind in range(6):
        hist = random_histogram(rng, kind, 2048)
        if hist.sum() == 0 or hist[1:].sum() == 0:
            continue
        absmax = (np.flatnonzero(hist)[-1] + 1) * 0.01
        res = all_amax(hist, 0.01, absmax, percentile=99.0)
        assert set(res) == set(METHODS)
        assert all(np.isfinite(v) and v > 0 for v in res.values())
        assert res["percentile"] <= absmax + 1e-12
        assert res["entropy"] == entropy_amax(hist, 0.01)
        assert alg.compute_amax("mse", hist, 0.01, absmax) == res["mse"]


def test_invalid_inputs_raise_workbench_error():
    with pytest.raises(WorkbenchError, match="non-negative|>= 0"):
        entropy_amax(np.array([1, -1, 2]), 1.0)
    with pytest.raises(WorkbenchError, match="bin_width"):
        entropy_amax(np.ones(300), 0.0)
    with pytest.raises(WorkbenchError, match="1-D"):
        percentile_amax(np.ones((2, 2)), 1.0)
    with pytest.raises(WorkbenchError, match="(?i)unknown calibration method 'kl'"):
        alg.compute_amax("kl", np.ones(10), 1.0, 10.0)
    with pytest.raises(WorkbenchError, match="num_bits"):
        mse_amax(np.ones(10), 1.0, num_bits=1)


def test_clipped_fraction():
    hist = np.array([10, 10, 10, 10])
    assert clipped_fraction(hist, 1.0, 2.0) == pytest.approx(0.5)
    assert clipped_fraction(hist, 1.0, 2.5) == pytest.approx(0.375)
    assert clipped_fraction(hist, 1.0, 4.0) == 0.0
    assert clipped_fraction(hist, 1.0, 0.0) == 1.0
    assert clipped_fraction(np.zeros(4), 1.0, 1.0) == 0.0
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal(100_000))
    h, e = np.histogram(x, bins=2048, range=(0, x.max()))
    for amax in (0.5, 1.7, 3.0):
        assert clipped_fraction(h, e[1], amax) == pytest.approx(np.mean(x > amax), abs=2e-4)


# --------------------------------------------------------------------------- registry


def test_registry_methods_compute_what_the_functions_compute():
    from workbench.calib import registry

    hist, width, x = relu_like_with_outliers(n=50_000)
    absmax = float(x.max())
    direct = {"entropy": entropy_amax(hist, width), "entropy_zero_fix": entropy_amax(hist, width, zero_bin_fix=True),
              "minmax": minmax_amax(absmax), "percentile": percentile_amax(hist, width, 99.9),
              "mse": mse_amax(hist, width, 6)}
    got = registry.all_amax(hist, width, absmax, percentile=99.9, num_bits=6)
    assert got == direct
    assert set(METHODS) == set(direct) == set(registry.histogram_methods())
    assert registry.REGISTRY["auto"].compute is None and registry.DEFAULT_METHOD == "auto"
    assert registry.cache_algorithm("minmax") == "MinMaxCalibration"
    assert registry.cache_algorithm("mse") == "EntropyCalibration2"
    with pytest.raises(WorkbenchError, match="auto_ranges"):
        registry.compute_amax("auto", hist, width, absmax)


def test_registry_parameters_are_checked_and_unique():
    from workbench.calib import registry

    assert registry.default_params() == {"percentile": alg.DEFAULT_PERCENTILE, "num_bits": 8}
    assert registry.check_params({"percentile": 99.9})["percentile"] == 99.9
    for bad in ({"percentile": 0}, {"percentile": 101}, {"num_bits": 8.5}, {"num_bits": True}, {"bins": 3}):
        with pytest.raises(WorkbenchError, match="percentile|num_bits|bins"):
            registry.check_params(bad)
    clash = registry.RangeMethod("p2", "x", (registry.Param("percentile", 99.0, 0, 100, "other"),),
                                 compute=lambda h, w, a, *, name=None, percentile=99.0: 1.0)
    with pytest.raises(WorkbenchError, match="clashes"):
        registry.register(clash)
    with pytest.raises(WorkbenchError, match="already registered"):
        registry.register(registry.REGISTRY["mse"])
    assert "p2" not in registry.REGISTRY


def test_a_new_method_is_one_registration():
    from workbench.calib import registry

    half = registry.RangeMethod("half_max", "half of max |x|", (), compute=lambda h, w, a, *, name=None: a / 2)
    registry.register(half)
    try:
        hist, width, x = relu_like_with_outliers(n=10_000)
        assert registry.all_amax(hist, width, float(x.max()))["half_max"] == pytest.approx(x.max() / 2)
        assert "half_max" in registry.method_names()
    finally:
        del registry.REGISTRY["half_max"]
