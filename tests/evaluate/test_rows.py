"""Outputs of batches of different shapes (images of several sizes): rows joined and compared."""
import numpy as np
import pytest

from workbench.errors import WorkbenchError
from workbench.evaluate.metrics import compare_outputs, sqnr_db
from workbench.evaluate.rows import concat_rows, one_shape


def test_rows_of_several_shapes_are_padded_and_compared_on_their_real_values():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 1, 4, 6)), rng.standard_normal((1, 1, 8, 8))
    joined = concat_rows([a, b])
    assert joined.shape == (3, 1, 64)  # not [N, C]: never read as classifier logits
    np.testing.assert_array_equal(joined[0, 0, :24], a[0].ravel())
    assert not joined[0, 0, 24:].any()
    noisy = [a + 0.01 * rng.standard_normal(a.shape), b + 0.01 * rng.standard_normal(b.shape)]
    expected = sqnr_db(np.concatenate([a.ravel(), b.ravel()]), np.concatenate([x.ravel() for x in noisy]))
    assert sqnr_db(joined, concat_rows(noisy)) == pytest.approx(expected)
    # the first rows alone (one shape, not padded) against the padded reference's first rows
    row = compare_outputs(joined[:2], noisy[0])
    assert row["sqnr_db"] == pytest.approx(sqnr_db(a, noisy[0])) and "top1_agreement" not in row
    # one shape: joined as before; other mismatches still refused
    assert concat_rows([a, a]).shape == (4, 1, 4, 6)
    with pytest.raises(WorkbenchError, match="Cannot compare"):
        sqnr_db(np.zeros((2, 3)), np.zeros((3, 3)))


def test_one_shape_keeps_the_leading_batches_of_the_first_shape():
    f = [{"x": np.zeros((2, 3, 4, 4))}, {"x": np.zeros((1, 3, 4, 4))}, {"x": np.zeros((2, 3, 8, 8))},
         {"x": np.zeros((1, 3, 4, 4))}]
    assert [b["x"].shape[0] for b in one_shape(f)] == [2, 1]
