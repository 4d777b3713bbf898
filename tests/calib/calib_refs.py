"""Reference helpers shared by the calibration-algorithm tests: brute-force MSE, random and
ReLU-like histograms."""
from __future__ import annotations

import numpy as np


def brute_mse(hist, num_bits=8):
    qmax = 2 ** (num_bits - 1) - 1
    c = np.arange(len(hist)) + 0.5
    errs = []
    for k in range(1, len(hist) + 1):
        s = k / qmax
        q = np.clip(np.round(c / s), -qmax, qmax) * s
        errs.append(np.sum(hist * (c - q) ** 2))
    return np.array(errs)


def random_histogram(rng: np.random.Generator, kind: int, n: int) -> np.ndarray:
    if kind == 0:  # dense counts
        return rng.integers(0, 1000, n)
    if kind == 1:  # sparse, many empty bins and small counts (ties, infinite KL)
        return rng.integers(0, 4, n) * (rng.random(n) < 0.25)
    if kind == 2:  # ReLU-like: spike of zeros plus half-normal
        x = np.abs(rng.standard_normal(20000)) * (rng.random(20000) < 0.5)
        return np.histogram(x, bins=n, range=(0, x.max()))[0]
    if kind == 3:  # heavy tail with gaps
        h = (rng.pareto(1.2, n) * 50).astype(np.int64)
        h[rng.random(n) < 0.4] = 0
        return h
    if kind == 4:  # equal counts in a few bins: KL = 0 for many candidates
        h = np.zeros(n, np.int64)
        h[rng.choice(n, size=rng.integers(1, 6), replace=False)] = 7
        return h
    # kind 5: mass far from 0 (first bins empty: Q without mass for small candidates)
    h = np.zeros(n, np.int64)
    h[n - rng.integers(1, 40, size=10)] = rng.integers(1, 100, 10)
    return h




def relu_like_with_outliers(seed=0, n=1_000_000, zero_fraction=0.5):
    rng = np.random.default_rng(seed)
    x = np.abs(rng.standard_normal(n))
    x[rng.random(n) < zero_fraction] = 0.0
    x[:10] = rng.uniform(10.0, 20.0, 10)
    hist, edges = np.histogram(x, bins=2048, range=(0, x.max()))
    return hist, edges[1] - edges[0], x
