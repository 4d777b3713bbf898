import math

import numpy as np
import pytest

from workbench.errors import WorkbenchError
from workbench.evaluate.metrics import Target, compare_outputs, cosine, sqnr_db, topk_agreement


def test_sqnr_and_cosine_on_known_inputs():
    ref = np.array([3.0, 4.0])
    assert sqnr_db(ref, ref) == math.inf
    # signal 25, noise 0.25 -> 20 dB
    assert sqnr_db(ref, ref + np.array([0.5, 0.0])) == pytest.approx(20.0)
    assert cosine(ref, 2 * ref) == pytest.approx(1.0)
    assert cosine(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(0.0)
    assert cosine(np.array([1.0, 0.0]), np.array([-1.0, 0.0])) == pytest.approx(-1.0)


def test_topk_agreement():
    ref = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.05], [0.2, 0.3, 0.5]])
    test = np.array([[0.0, 1.0, 0.0], [0.1, 0.9, 0.0], [0.1, 0.2, 0.7]])
    assert topk_agreement(ref, test, 1) == pytest.approx(2 / 3)
    assert topk_agreement(ref, test, 2) == pytest.approx(1.0)
    row = compare_outputs(ref, test)
    assert row["top1_agreement"] == pytest.approx(2 / 3) and "top1_in_ref_top5" in row
    assert "top1_agreement" not in compare_outputs(np.ones((2, 3, 4)), np.ones((2, 3, 4)))


def test_targets():
    t = Target("top1>=0.99")
    assert t.met({"top1_agreement": 0.99}) and not t.met({"top1_agreement": 0.98})
    assert Target("sqnr > 30").met({"sqnr_db": 31.0})
    assert Target("max_abs_error<0.1").met({"max_abs_error": 0.05})
    with pytest.raises(WorkbenchError, match="Cannot read the target"):
        Target("accuracy is good")
    with pytest.raises(WorkbenchError, match="needs 'top1_agreement'"):
        Target("top1>=0.9").met({"sqnr_db": 20.0})


def test_near_ties_are_counted_and_a_margin_target_reads_them():
    from workbench.evaluate.metrics import FILE_NOISE_REL, near_ties

    ref = np.array([[10.0, 0.0, 1.0], [10.0, 9.99, 0.0], [5.0, 1.0, 0.0], [2.0, 8.0, 0.0]])
    test = ref.copy()
    test[3] = [8.0, 2.0, 0.0]  # a plain disagreement, not a tie
    ties = near_ties(ref, test)
    assert ties.tolist() == [False, True, False, False]
    # the tie threshold is twice the emulation's noise bound of the sample
    assert 10.0 - 9.99 < 2 * FILE_NOISE_REL * 10.0 < 1.0
    row = compare_outputs(ref, test)
    assert row["top1_agreement"] == pytest.approx(0.75) and row["near_ties"] == 1
    assert row["top1_margin"] == pytest.approx(0.5)
    assert Target("top1>=0.75").met(row) and not Target("top1_margin>=0.75").met(row)


def _same_row(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)


@pytest.mark.parametrize("shape", [(16, 1, 24, 24), (20, 10), (7, 3, 5)])
def test_comparer_gives_the_functions_numbers_bit_for_bit(shape):
    """A search compares every configuration with one reference through a Comparer (kept
    float64 work arrays): every metric is exactly compare_outputs' / sqnr_db's, for whole
    outputs and strided fold rows, over repeated calls (no state leaks from one to the next)."""
    from workbench.evaluate.metrics import Comparer

    rng = np.random.default_rng(0)
    ref = rng.standard_normal(shape).astype(np.float32)
    whole, folds = Comparer(ref), [Comparer(ref[k::2]) for k in range(2)]
    tests = [ref + s * rng.standard_normal(shape).astype(np.float32) for s in (0.3, 0.01, 0.0)]
    tests.append(np.zeros(shape, np.float32))
    for test in tests + tests[::-1]:
        assert _same_row(whole.compare(test), compare_outputs(ref, test))
        assert whole.sqnr(test) == sqnr_db(ref, test)
        for k in range(2):
            assert _same_row(folds[k].compare(test[k::2]), compare_outputs(ref[k::2], test[k::2]))
            assert folds[k].sqnr(test[k::2]) == sqnr_db(ref[k::2], test[k::2])
    assert whole.sqnr(ref) == math.inf and whole.compare(tests[0])["sqnr_db"] < 20
    if len(shape) > 2:  # a test of another shape (rows of images of several sizes): the functions' own path
        other = rng.standard_normal((shape[0], 1, 2 * int(np.prod(shape[1:])))).astype(np.float32)
        assert _same_row(whole.compare(other), compare_outputs(ref, other))
