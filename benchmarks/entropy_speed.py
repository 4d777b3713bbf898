"""Time the vectorised entropy search against a per-candidate loop reference.

Usage: python benchmarks/entropy_speed.py [--tensors 100] [--loop-samples 3]

Builds ``--tensors`` ReLU-like histograms of 2048..4096 bins (a ResNet-50-sized model,
some tensors extended beyond the first batch's range), times ``entropy_amax`` on all of
them, times the loop reference (pytorch-quantization's per-candidate construction) on a
few and extrapolates, checks both choose the same threshold, and prints the ratio.
"""
from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np

from workbench.calib.algorithms import entropy_amax


def loop_reference(hist: np.ndarray, zero_bin_fix: bool = False, num_quant_bins: int = 128,
                   start_bin: int = 128) -> int:
    """The published search, one candidate at a time with per-bin Python loops."""
    bins = np.array(hist, dtype=np.float64)
    if zero_bin_fix:
        bins[0] = bins[1]
    best_i, best_kl = bins.size, np.inf
    for i in range(start_bin, bins.size + 1):
        group = np.digitize(range(i), np.linspace(0, i, num_quant_bins + 1)) - 1
        group[bins[:i] == 0] = -1
        mass = np.zeros(num_quant_bins)
        for j, g in enumerate(group):
            if g >= 0:
                mass[g] += bins[j]
        members = Counter(group)
        q = np.zeros(i)
        for j, g in enumerate(group):
            if g >= 0:
                q[j] = mass[g] / members[g]
        p = bins[:i].copy()
        p[-1] += bins[i:].sum()
        if q.sum() == 0 or np.any((p > 0) & (q == 0)):
            kl = np.inf
        else:
            p, q = p / p.sum(), q / q.sum()
            m = p > 0
            kl = float(np.sum(p[m] * np.log(p[m] / q[m])))
        if kl <= best_kl + 1e-10:  # ties to the larger candidate
            best_i, best_kl = i, min(kl, best_kl)
    return best_i


def make_histograms(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    hists = []
    for _ in range(count):
        nbins = int(rng.integers(2048, 4097))
        x = np.abs(rng.standard_normal(100_000)) * (rng.random(100_000) < rng.uniform(0.3, 1.0))
        x[:5] *= rng.uniform(2, 6)  # a few outliers, like a later batch extending the range
        hists.append(np.histogram(x, bins=nbins, range=(0, x.max()))[0])
    return hists


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tensors", type=int, default=100)
    ap.add_argument("--loop-samples", type=int, default=3)
    args = ap.parse_args()

    hists = make_histograms(args.tensors)
    t0 = time.perf_counter()
    amax = [entropy_amax(h, 1.0) for h in hists]
    vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    amax_fix = [entropy_amax(h, 1.0, zero_bin_fix=True) for h in hists]
    vec_fix = time.perf_counter() - t0

    t0 = time.perf_counter()
    for k in range(args.loop_samples):
        i = loop_reference(hists[k])
        assert i == amax[k], f"histogram {k}: loop chose {i}, vectorised {amax[k]}"
    loop_each = (time.perf_counter() - t0) / args.loop_samples
    loop_total = loop_each * args.tensors

    mean_bins = np.mean([h.size for h in hists])
    print(f"{args.tensors} histograms, {mean_bins:.0f} bins on average")
    print(f"vectorised entropy_amax:            {vec:8.3f} s total, {vec / args.tensors * 1e3:7.2f} ms each")
    print(f"vectorised, zero_bin_fix=True:      {vec_fix:8.3f} s total")
    print(f"loop reference ({args.loop_samples} timed, extrapolated): {loop_total:8.1f} s total, "
          f"{loop_each:7.2f} s each")
    print(f"speed-up: {loop_total / vec:,.0f}x (same thresholds on the {args.loop_samples} checked)")
    moved = sum(a != b for a, b in zip(amax, amax_fix))
    print(f"zero_bin_fix changes the threshold of {moved}/{args.tensors} tensors")


if __name__ == "__main__":
    main()
