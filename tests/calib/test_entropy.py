"""The entropy search against straightforward references (a loop, scipy's KL, a transcription of
pytorch-quantization's _compute_amax_entropy)."""
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
from calib_refs import random_histogram, relu_like_with_outliers  # noqa: F401



# --------------------------------------------------------------------------- references


def kl_like_scipy(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) after normalising both, inf where q = 0 < p (scipy.stats.entropy's rules)."""
    if q.sum() == 0:
        return np.inf
    p = p / p.sum()
    q = q / q.sum()
    if np.any((p > 0) & (q == 0)):
        return np.inf
    m = p > 0
    return float(np.sum(p[m] * np.log(p[m] / q[m])))


def reference_entropy(hist, zero_bin_fix=False, num_quant_bins=128, start_bin=128):
    """One candidate at a time, built the way the published algorithm describes it."""
    bins = np.array(hist, dtype=np.float64)
    if zero_bin_fix:
        bins[0] = bins[1]
    n = bins.size
    candidates = list(range(min(start_bin, n), n + 1))
    kls = []
    for i in candidates:
        p = bins[:i].copy()
        p[-1] += bins[i:].sum()
        kept = bins[:i]
        group = np.digitize(np.arange(i), np.linspace(0, i, num_quant_bins + 1)) - 1
        group_mass = np.bincount(group, weights=kept, minlength=num_quant_bins)
        group_nonempty = np.bincount(group, weights=kept > 0, minlength=num_quant_bins)
        q = np.zeros(i)
        q[kept > 0] = (group_mass[group] / np.maximum(group_nonempty[group], 1))[kept > 0]
        kls.append(kl_like_scipy(p, q))
    kls = np.array(kls)
    best = kls.min()
    if not np.isfinite(best):
        return candidates[-1], kls
    ties = np.flatnonzero(kls <= best + alg.TIE_TOLERANCE)
    return candidates[ties[-1]], kls


# --------------------------------------------------------------------------- entropy


def test_reference_kl_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = rng.integers(0, 5, 50).astype(float)
        q = rng.integers(0, 5, 50).astype(float)
        p[0] += 1
        q[0] += 1
        assert kl_like_scipy(p, q) == pytest.approx(float(stats.entropy(p, q)), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("zero_bin_fix", [False, True])
def test_entropy_matches_loop_reference_on_random_histograms(zero_bin_fix):
    rng = np.random.default_rng(11 + zero_bin_fix)
    for trial in range(36):
        kind = trial % 6
        n = int(rng.integers(129, 300))
        hist = random_histogram(rng, kind, n)
        if hist.sum() == 0 or (zero_bin_fix and hist[1:].sum() == 0):
            continue
        want_i, want_kl = reference_entropy(hist, zero_bin_fix)
        cands, kl = entropy_divergences(hist, zero_bin_fix=zero_bin_fix)
        assert np.array_equal(np.isinf(kl), np.isinf(want_kl)), (trial, kind)
        finite = np.isfinite(want_kl)
        np.testing.assert_allclose(kl[finite], want_kl[finite], rtol=0, atol=1e-12)
        amax = entropy_amax(hist, 0.5, zero_bin_fix=zero_bin_fix)
        assert amax == want_i * 0.5, (trial, kind, amax / 0.5, want_i)


def test_entropy_matches_reference_on_full_size_histograms():
    rng = np.random.default_rng(5)
    x = np.abs(rng.standard_normal(50000)) * (rng.random(50000) < 0.6)
    x[:3] = [9.0, 11.0, 14.0]
    hist = np.histogram(x, bins=2048, range=(0, x.max()))[0]
    for fix in (False, True):
        want_i, _ = reference_entropy(hist, fix)
        assert entropy_amax(hist, 1.0, zero_bin_fix=fix) == want_i


def test_entropy_non_power_of_two_groups_follow_linspace():
    rng = np.random.default_rng(8)
    for kind in range(6):
        hist = random_histogram(rng, kind, 230)
        if hist.sum() == 0:
            continue
        want_i, want_kl = reference_entropy(hist, num_quant_bins=100, start_bin=100)
        _, kl = entropy_divergences(hist, num_quant_bins=100, start_bin=100)
        finite = np.isfinite(want_kl)
        assert np.array_equal(finite, np.isfinite(kl))
        np.testing.assert_allclose(kl[finite], want_kl[finite], atol=1e-12)
        assert entropy_amax(hist, 1.0, num_quant_bins=100, start_bin=100) == want_i


def test_entropy_ties_go_to_the_larger_candidate():
    hist = np.zeros(300, np.int64)
    hist[:10] = 5  # every candidate reproduces P exactly: KL = 0 everywhere
    _, kl = entropy_divergences(hist)
    assert np.allclose(kl, 0.0, atol=1e-12)
    assert entropy_amax(hist, 0.25) == 300 * 0.25


def test_entropy_tail_mass_makes_empty_last_bin_infinite():
    hist = np.zeros(200, np.int64)
    hist[:128] = 10
    hist[199] = 1  # bins 128..198 empty: candidates 129..199 put the tail on an empty bin
    cands, kl = entropy_divergences(hist)
    assert np.isfinite(kl[cands == 128]).all()
    assert np.isinf(kl[(cands > 128) & (cands < 200)]).all()
    assert np.isfinite(kl[cands == 200]).all()


def test_entropy_with_fewer_bins_than_start_uses_whole_range():
    hist = np.array([3, 1, 0, 2])
    assert entropy_amax(hist, 2.0) == 8.0


def test_zero_bin_fix_with_all_mass_in_bin_zero_keeps_occupied_range():
    hist = np.zeros(2048, np.int64)
    hist[0] = 100
    assert entropy_amax(hist, 0.01, zero_bin_fix=True) == pytest.approx(0.01)


def test_zero_spike_separates_published_entropy_from_zero_bin_fix():
    # DESIGN.md: the two variants give clearly different thresholds on ReLU-like data.
    # Measured: published ~2.3, zero-bin fix ~4.5. The spike of exact zeros pulls the
    # published search to small candidates (Q spreads it over group 0), the fix removes it.
    hist, width, x = relu_like_with_outliers()
    published = entropy_amax(hist, width)
    fixed = entropy_amax(hist, width, zero_bin_fix=True)
    assert fixed > 1.5 * published
    assert 1.0 < published < x.max() / 3
    # Without exact zeros bin 0 is already like bin 1 and the variants agree.
    hist_nz, width_nz, _ = relu_like_with_outliers(zero_fraction=0.0)
    assert entropy_amax(hist_nz, width_nz) == entropy_amax(hist_nz, width_nz, zero_bin_fix=True)


def test_entropy_amax_many_equals_single_calls():
    rng = np.random.default_rng(2)
    hists = [random_histogram(rng, 2, int(n)) for n in (2048, 2500, 2048)]
    widths = [0.1, 0.2, 0.3]
    got = entropy_amax_many(hists, widths, zero_bin_fix=True)
    want = [entropy_amax(h, w, zero_bin_fix=True) for h, w in zip(hists, widths)]
    assert got.tolist() == want
    with pytest.raises(WorkbenchError):
        entropy_amax_many(hists, widths[:2])


def pytorch_quantization_entropy(calib_hist, calib_bin_edges, num_bits=8, unsigned=False, stride=1,
                                 start_bin=128, zero_bin_fix=True):
    """A transcription of pytorch-quantization's ``_compute_amax_entropy`` (calib/histogram.py of
    NVIDIA/TensorRT tools/pytorch-quantization), its per-candidate loop kept as it is: digitize
    into ``1 << (num_bits - 1 + unsigned)`` groups, drop empty bins, spread each group's count
    over its non-empty bins, fold the tail into the last reference bin, scipy-style KL, and the
    LAST argmin. Its inner per-bin Python loops are written as the equivalent numpy operations.
    ``zero_bin_fix=False`` skips its ``bins[0] = bins[1]`` line (TensorRT as published).

    What reading it showed: (1) ``bins = calib_hist[:]`` is a view, so the fix edits the
    calibrator's own numpy histogram in place (harmless: it is idempotent); (2) its
    ``_normalize_distr`` rebinds a local and normalises nothing, which is harmless because
    scipy's entropy normalises both distributions itself; (3) exact ties go to the larger
    candidate (ours: ties within 1e-10)."""
    bins = np.array(calib_hist, dtype=np.int64)  # a copy, unlike the original (see above)
    if zero_bin_fix:
        bins[0] = bins[1]
    total_data = bins.sum()
    nbins = 1 << (num_bits - 1 + int(unsigned))
    divergences, arguments = [], []
    for i in range(start_bin, len(bins) + 1, stride):
        space = np.linspace(0, i, num=nbins + 1)
        digitized = np.digitize(range(i), space) - 1
        digitized[bins[:i] == 0] = -1
        kept = digitized != -1
        counts = np.bincount(digitized[kept], weights=bins[:i][kept], minlength=nbins).astype(np.float64)
        members = np.bincount(digitized[kept], minlength=nbins)  # Counter(digitized) without -1
        counts = np.where(members > 0, counts / np.maximum(members, 1), counts)
        new_density = np.zeros(i, np.float64)
        new_density[kept] = counts[digitized[kept]]
        total_counts_new = new_density.sum() + bins[i:].sum()
        reference = bins[:i].astype(np.float64)
        reference[-1] += bins[i:].sum()
        # its count check (our zero-bin fix changes bin 0 on a copy, so both totals move with it)
        assert round(total_counts_new) == total_data and round(reference.sum()) == total_data
        divergences.append(kl_like_scipy(reference, new_density))
        arguments.append(i)
    divergences = np.array(divergences)
    last_argmin = len(divergences) - 1 - np.argmin(divergences[::-1])
    return calib_bin_edges[last_argmin * stride + start_bin]


@pytest.fixture(scope="module")
def realistic_histograms():
    """Histograms of the ReLU6 classifier and the detector of tests/realistic_models.py."""
    import realistic_models as R
    from workbench.calib.collect import collect_statistics
    from workbench.graph.model import ModelInfo

    out = {}
    for kind, tensors in (("classifier", ("dw3", "project")), ("detector", ("enc1",))):
        spec = R.MODELS[kind]
        info = ModelInfo(spec.build())
        stats = collect_statistics(info, R.ArrayData(info, spec.data(16, seed=1)), progress=False)
        for t in tensors:
            c = stats.collectors[t]
            out[f"{kind}/{t}"] = (c.hist.copy(), c.bin_width, c.absmax)
    return out


@pytest.mark.parametrize("zero_bin_fix", [False, True])
def test_entropy_equals_pytorch_quantization_transcription(realistic_histograms, zero_bin_fix):
    rng = np.random.default_rng(21)
    cases = dict(realistic_histograms)
    for kind in range(6):
        h = random_histogram(rng, kind, 400)
        if h[1:].sum() > 0:
            cases[f"random{kind}"] = (h, 0.5, None)
    for label, (hist, width, _) in cases.items():
        edges = np.arange(hist.size + 1) * width
        want = pytorch_quantization_entropy(hist, edges, zero_bin_fix=zero_bin_fix)
        assert entropy_amax(hist, width, zero_bin_fix=zero_bin_fix) == pytest.approx(want, rel=1e-12), label


def test_published_entropy_collapses_on_relu6_tensors_like_the_reference(realistic_histograms):
    # The "entropy clips at 0.375 of 6.0": the published search itself does that on a
    # ReLU6 tensor (spike of exact zeros); the zero-bin fix keeps the saturated values.
    hist, width, absmax = realistic_histograms["classifier/dw3"]
    assert absmax == pytest.approx(6.0)
    published = entropy_amax(hist, width)
    assert published < absmax / 8
    assert entropy_amax(hist, width, zero_bin_fix=True) == pytest.approx(absmax, rel=1e-3)
    # ... and on the detector both variants cut the sparse large activations that carry its output
    hist, width, absmax = realistic_histograms["detector/enc1"]
    assert max(entropy_amax(hist, width), entropy_amax(hist, width, zero_bin_fix=True)) < absmax / 5
