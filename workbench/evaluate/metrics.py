"""Error metrics between a reference (FP32) array and a test (quantized) array. Pure numpy."""
from __future__ import annotations

import math
import operator
import re

import numpy as np

from ..errors import WorkbenchError


def _flat(ref, test):
    r = np.asarray(ref, dtype=np.float64).ravel()
    t = np.asarray(test, dtype=np.float64).ravel()
    if r.shape != t.shape:
        raise WorkbenchError(f"Cannot compare arrays of {np.shape(ref)} and {np.shape(test)} elements.")
    return r, t


def sqnr_db(ref, test) -> float:
    """Signal-to-quantisation-noise ratio 10*log10(sum(ref^2) / sum((ref-test)^2)); inf when equal."""
    r, t = _flat(ref, test)
    noise = float(np.sum((r - t) ** 2))
    signal = float(np.sum(r ** 2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def cosine(ref, test) -> float:
    """Cosine similarity of the flattened arrays (1.0 for two all-zero arrays)."""
    r, t = _flat(ref, test)
    nr, nt = float(np.linalg.norm(r)), float(np.linalg.norm(t))
    if nr == 0.0 and nt == 0.0:
        return 1.0
    if nr == 0.0 or nt == 0.0:
        return 0.0
    return float(np.dot(r, t) / (nr * nt))


def max_abs_error(ref, test) -> float:
    r, t = _flat(ref, test)
    return float(np.max(np.abs(r - t))) if r.size else 0.0


def is_classifier_output(shape) -> bool:
    """True for [N, C] outputs with C > 1 (logits or probabilities of a classifier)."""
    return len(shape) == 2 and shape[1] > 1


def topk_agreement(ref, test, k: int = 1) -> float:
    """Share of rows whose top-1 class of ``test`` is among the top-``k`` classes of ``ref``."""
    ref, test = np.asarray(ref), np.asarray(test)
    if ref.ndim != 2 or ref.shape != test.shape:
        raise WorkbenchError(f"top-k agreement needs two [N, C] arrays, got {ref.shape} and {test.shape}.")
    if ref.shape[0] == 0:
        return float("nan")
    top_test = np.argmax(test, axis=1)
    top_ref = np.argsort(-ref, axis=1)[:, :k]
    return float(np.mean(np.any(top_ref == top_test[:, None], axis=1)))


def compare_outputs(ref: np.ndarray, test: np.ndarray) -> dict:
    """Every metric for one output: cosine, sqnr_db, max_abs_error, and top-1/top-5 for classifiers."""
    row = {"cosine": cosine(ref, test), "sqnr_db": sqnr_db(ref, test),
           "max_abs_error": max_abs_error(ref, test),
           "mean_abs_error": float(np.mean(np.abs(np.asarray(ref, np.float64) - test))) if np.size(ref) else 0.0}
    if is_classifier_output(np.shape(ref)):
        row["top1_agreement"] = topk_agreement(ref, test, 1)
        row["top1_in_ref_top5"] = topk_agreement(ref, test, 5)
    return row


_TARGET = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
#: Names accepted in a target and the summary key each one reads.
TARGET_METRICS = {"top1": "top1_agreement", "top1_agreement": "top1_agreement",
                  "top5": "top1_in_ref_top5", "cosine": "cosine", "sqnr": "sqnr_db", "sqnr_db": "sqnr_db",
                  "max_abs_error": "max_abs_error", "metric": "metric"}


class Target:
    """An accuracy goal such as ``"top1>=0.99"``, ``"sqnr>=25"``, ``"cosine>=0.999"`` or ``"metric>=0.7"``.

    The metric names refer to the first model output (``metric`` to the user metric function);
    the comparison is one of ``>= > <= <``.
    """

    def __init__(self, text: str):
        m = _TARGET.match(text or "")
        if not m or m.group(1) not in TARGET_METRICS:
            raise WorkbenchError(
                f"Cannot read the target '{text}'. Write METRIC OP VALUE, e.g. 'top1>=0.99', with METRIC "
                f"one of {', '.join(TARGET_METRICS)} and OP one of >=, >, <=, <."
            )
        self.text = text.strip()
        self.key = TARGET_METRICS[m.group(1)]
        self.op = m.group(2)
        self.value = float(m.group(3))

    def met(self, summary: dict) -> bool:
        value = summary.get(self.key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise WorkbenchError(f"The target '{self.text}' needs '{self.key}', which this model's "
                                 f"evaluation does not give (it has: {', '.join(sorted(summary))}).")
        return _OPS[self.op](value, self.value)

    def __repr__(self) -> str:
        return f"Target({self.text!r})"
