"""The held-out decision on an accuracy step: a gain must hold on every fold, exceed the noise of
the comparison and the samples must mostly gain; a step never costs a sample its FP32 arg-max."""
import numpy as np
import pytest

from workbench.improve.runner import sqnr
from workbench.improve.scores import gain_noise, sample_gains, score_outputs
from workbench.search.improve_steps import held_out_rule

N, D = 8, 32


def _reference(seed=0, classes=False):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(N, D))
    if classes:  # a clear winner per row
        y[np.arange(N), rng.integers(0, D, N)] += 6.0
    return y


def _score(ref, noise_per_sample, seed=1, metric=None):
    """The score of ``ref`` plus noise of the given RMS per sample, in two batches of 4."""
    rng = np.random.default_rng(seed)
    test = ref + rng.normal(size=ref.shape) * np.asarray(noise_per_sample)[:, None]
    refs = [{"y": ref[:4]}, {"y": ref[4:]}]
    runs = [{"y": test[:4]}, {"y": test[4:]}]
    return score_outputs(refs, runs, [4, 4], metric=metric), test


def test_score_folds_and_samples_are_the_interleaved_subsets():
    ref = _reference()
    sc, test = _score(ref, np.linspace(0.01, 0.1, N))
    assert sc.sqnr == pytest.approx(sqnr(ref, test))
    assert sc.folds == pytest.approx([sqnr(ref[k::2], test[k::2]) for k in range(2)])
    assert sc.subset_sqnr(np.array([3])) == pytest.approx(sqnr(ref[3], test[3]))
    assert sc.agree is None or sc.agree == N


def test_a_clear_gain_everywhere_is_kept():
    ref = _reference()
    before, _ = _score(ref, np.full(N, 0.1))
    after, _ = _score(ref, np.full(N, 0.05), seed=2)
    kept, why = held_out_rule()(before, after)
    assert kept, why
    assert (sample_gains(before, after) > 0).all()


def test_a_gain_on_one_fold_only_is_not_kept():
    ref = _reference()
    before, _ = _score(ref, np.full(N, 0.1))
    half = np.where(np.arange(N) % 2 == 0, 0.02, 0.11)  # fold 0 gains a lot, fold 1 loses
    after, _ = _score(ref, half, seed=2)
    assert after.sqnr > before.sqnr + 1.0
    kept, why = held_out_rule()(before, after)
    assert not kept and "folds" in why


def test_a_gain_made_by_one_sample_is_noise():
    ref = _reference()
    noise = np.full(N, 0.05)
    noise[[0, 1]] = 1.0  # two samples dominate the error sums
    before, _ = _score(ref, noise)
    better = noise * 1.08  # every sample a little worse ...
    better[[0, 1]] = [0.3, 0.7]  # ... except the two that dominate: a big whole-set gain
    after, _ = _score(ref, better, seed=1)
    assert after.sqnr > before.sqnr + 1.0 and all(a > b for a, b in zip(after.folds, before.folds))
    assert gain_noise(before, after) > 0.5
    kept, why = held_out_rule()(before, after)
    assert not kept and ("lose" in why or "needs" in why)


def test_a_lost_top1_is_never_accepted():
    ref = _reference(classes=True)
    before, _ = _score(ref, np.full(N, 0.05))
    after, test = _score(ref, np.full(N, 0.01), seed=2)
    assert after.sqnr > before.sqnr + 3.0
    kept, _ = held_out_rule()(before, after)
    assert kept and after.agree == before.agree == N
    flipped = test.copy()
    flipped[5] = ref[5]
    flipped[5, np.argsort(ref[5])[-2]] += 7.0  # sample 5's top-1 changes
    refs, runs = [{"y": ref}], [{"y": flipped}]
    lost = score_outputs(refs, runs, [N])
    assert lost.agree == N - 1
    kept, why = held_out_rule()(before, lost)
    assert not kept and "arg-max on 1 held-out sample" in why


def test_the_users_metric_decides_and_may_not_drop():
    ref = _reference()
    before, _ = _score(ref, np.full(N, 0.1), metric=lambda r, o: 0.9)
    after, _ = _score(ref, np.full(N, 0.05), seed=2, metric=lambda r, o: 0.8)
    kept, why = held_out_rule()(before, after)
    assert not kept and "metric drops" in why
    worse_sqnr, _ = _score(ref, np.full(N, 0.12), seed=2, metric=lambda r, o: 0.95)
    assert held_out_rule()(before, worse_sqnr)[0]  # a higher metric wins
