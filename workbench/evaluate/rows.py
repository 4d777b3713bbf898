"""Rows of batches of different shapes (a dynamic-H/W model fed images of several sizes).

Outputs of every batch are kept as one array per output, rows on axis 0. When the batches'
rows differ in shape, :func:`concat_rows` flattens each row and pads it with zeros to the
longest: a ``[N, 1, L]`` array (the middle axis keeps it from reading as classifier logits).
:func:`align_rows` pads two such arrays of different ``L`` to the same width before a metric
compares them: the padding is zeros in both, so SQNR, cosine and the largest error are those of
the real values (a mean over elements counts the padding). Batches of one shape are untouched.
"""
from __future__ import annotations

import numpy as np


def concat_rows(arrays: list) -> np.ndarray:
    """``arrays`` (each [n, ...]) joined on axis 0; rows of different shapes flattened and
    zero-padded to ``[N, 1, L]`` (see the module docstring)."""
    arrays = [np.asarray(a) for a in arrays]
    if len(arrays) == 1:
        return arrays[0]
    if len({a.shape[1:] for a in arrays}) <= 1:
        return np.concatenate(arrays)
    flat = [a.reshape(len(a), -1) for a in arrays]
    width = max(f.shape[1] for f in flat)
    out = np.zeros((sum(len(f) for f in flat), 1, width), dtype=np.result_type(*arrays))
    row = 0
    for f in flat:
        out[row:row + len(f), 0, :f.shape[1]] = f
        row += len(f)
    return out


def align_rows(ref, test) -> tuple:
    """``(ref, test)`` as they are when their shapes agree; else, when both have the same number
    of rows, each row flattened and the narrower zero-padded (rows of :func:`concat_rows`)."""
    ref, test = np.asarray(ref), np.asarray(test)
    if ref.shape == test.shape or ref.ndim < 2 or test.ndim < 2 or len(ref) != len(test):
        return ref, test
    r, t = ref.reshape(len(ref), -1), test.reshape(len(test), -1)
    width = max(r.shape[1], t.shape[1])
    return (np.pad(r, ((0, 0), (0, width - r.shape[1]))), np.pad(t, ((0, 0), (0, width - t.shape[1]))))


def one_shape(batches: list) -> list:
    """The leading batches that have the first batch's shapes (feeds to concatenate as inputs)."""
    if not batches:
        return []
    first = {k: np.shape(v)[1:] for k, v in batches[0].items()}
    kept = []
    for feed in batches:
        if {k: np.shape(v)[1:] for k, v in feed.items()} != first:
            break
        kept.append(feed)
    return kept


__all__ = ["align_rows", "concat_rows", "one_shape"]
