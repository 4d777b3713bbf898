"""Error metrics between a reference (FP32) array and a test (quantized) array. Pure numpy."""
from __future__ import annotations

import math
import operator
import re

import numpy as np

from ..errors import WorkbenchError
from .rows import align_rows


def _flat(ref, test):
    ref, test = align_rows(ref, test)  # rows of images of several sizes (see .rows)
    r = np.asarray(ref, dtype=np.float64).ravel()
    t = np.asarray(test, dtype=np.float64).ravel()
    if r.shape != t.shape:
        raise WorkbenchError(f"Cannot compare arrays of {np.shape(ref)} and {np.shape(test)} elements.")
    return r, t


def _sqnr(r: np.ndarray, diff: np.ndarray) -> float:
    return _sqnr_sums(float(np.sum(r ** 2)), float(np.sum(diff ** 2)))


def _sqnr_sums(signal: float, noise: float) -> float:
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def _cosine(r: np.ndarray, t: np.ndarray) -> float:
    # sums, not BLAS (np.dot, np.linalg.norm): BLAS threads fighting ONNX Runtime's spinning pool
    # cost a search more than its runs on a small model (benchmarks/search_speed.py)
    return _cosine_sums(math.sqrt(float(np.sum(r * r))), math.sqrt(float(np.sum(t * t))), np.sum(r * t))


def _cosine_sums(nr: float, nt: float, dot) -> float:
    if nr == 0.0 and nt == 0.0:
        return 1.0
    if nr == 0.0 or nt == 0.0:
        return 0.0
    return float(dot / (nr * nt))


def sqnr_db(ref, test) -> float:
    """Signal-to-quantisation-noise ratio 10*log10(sum(ref^2) / sum((ref-test)^2)); inf when equal."""
    r, t = _flat(ref, test)
    return _sqnr(r, r - t)


def cosine(ref, test) -> float:
    """Cosine similarity of the flattened arrays (1.0 for two all-zero arrays)."""
    return _cosine(*_flat(ref, test))


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


#: How far the switchable emulation may be from the written TensorRT file (exact ONNX semantics),
#: per sample, relative to that sample's largest |output| (:mod:`workbench.evaluate.emulate`
#: explains where a difference comes from; tests/evaluate/test_emulation_is_the_file.py measures
#: it). A classifier sample whose top-1/top-2 margin is below this is a near-tie: its top-1 may
#: flip between the emulation and the file, so a search cannot count on it.
FILE_NOISE_REL = 2.0 ** -6


def file_noise(output) -> np.ndarray:
    """Per sample (axis 0) of ``output``: the largest difference the emulation may show from the
    written file, :data:`FILE_NOISE_REL` times the sample's largest |value|."""
    a = np.abs(np.asarray(output, dtype=np.float64)).reshape(len(output), -1)
    return FILE_NOISE_REL * (a.max(axis=1) if a.size else np.zeros(len(output)))


def near_ties(ref, test) -> np.ndarray:
    """Per row of [N, C] outputs: whether the quantized top-1 lies within twice the emulation
    noise (:func:`file_noise`) of the runner-up, so a flip between emulation and file may change
    top-1 agreement (each of the two logits may move by the noise)."""
    test = np.asarray(test, dtype=np.float64)
    if test.ndim != 2 or test.shape[1] < 2:
        return np.zeros(len(test), dtype=bool)
    top2 = np.sort(test, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    return margin <= 2 * np.maximum(file_noise(test), file_noise(ref))


def compare_outputs(ref: np.ndarray, test: np.ndarray) -> dict:
    """Every metric for one output: cosine, sqnr_db, max_abs_error, and top-1/top-5 for classifiers."""
    r, t = _flat(ref, test)  # once: a search scores every configuration with it
    diff = r - t
    abs_diff = np.abs(diff)
    row = {"cosine": _cosine(r, t), "sqnr_db": _sqnr(r, diff),
           "max_abs_error": float(np.max(abs_diff)) if r.size else 0.0,
           "mean_abs_error": float(np.mean(abs_diff)) if r.size else 0.0}
    row.update(_classifier_rows(ref, test))
    return row


def _classifier_rows(ref, test) -> dict:
    """Top-1/top-5 agreement and near-ties of classifier outputs ({} for other outputs)."""
    if not is_classifier_output(np.shape(ref)):
        return {}
    ties = near_ties(ref, test)
    agree = np.argmax(np.asarray(test), axis=1) == np.argmax(np.asarray(ref), axis=1)
    # top-1 agreement counting near-ties as misses: what a target "with margin" reads
    return {"top1_agreement": topk_agreement(ref, test, 1), "top1_in_ref_top5": topk_agreement(ref, test, 5),
            "near_ties": int(ties.sum()), "top1_margin": float(np.mean(agree & ~ties)) if len(agree) else float("nan")}


#: Largest output (elements) a :class:`Comparer` keeps work arrays for (four float64 arrays of
#: its size); a larger one is compared with :func:`compare_outputs` (its runs dwarf the metrics).
COMPARER_MAX_ELEMENTS = 1 << 22


class Comparer:
    """:func:`compare_outputs` and :func:`sqnr_db` against one reference, many times: a search
    compares every configuration with the same FP32 outputs. The reference is converted once
    and the work arrays are kept, so a comparison allocates nothing (fresh arrays of a few
    hundred kB cost more in page faults than the arithmetic: 1.2 ms -> 0.2 ms for a 64x64 map
    of 16 samples). The same operations on the same float64 values: bit for bit the functions'
    numbers (``tests/evaluate/test_metrics.py``)."""

    def __init__(self, ref):
        self.ref = np.asarray(ref)
        self._work = None
        if 0 < self.ref.size <= COMPARER_MAX_ELEMENTS:
            r = np.asarray(self.ref, dtype=np.float64).ravel()
            self._work = (r, float(np.sum(r * r)), *(np.empty_like(r) for _ in range(4)))

    def _prepared(self, test) -> tuple | None:
        """(r, sum r^2, t, diff, |diff|, scratch) with ``test`` converted in, or None."""
        if self._work is None or np.shape(test) != self.ref.shape:
            return None
        r, energy, t, diff, abs_diff, scratch = self._work
        np.copyto(t.reshape(self.ref.shape), test)  # float64, in place (as np.asarray(test, float64))
        np.subtract(r, t, out=diff)
        np.abs(diff, out=abs_diff)
        return r, energy, t, diff, abs_diff, scratch

    def sqnr(self, test) -> float:
        """:func:`sqnr_db` of ``test`` against the reference."""
        w = self._prepared(test)
        if w is None:
            return sqnr_db(self.ref, test)
        _, energy, _, diff, _, scratch = w
        return _sqnr_sums(energy, float(np.sum(np.multiply(diff, diff, out=scratch))))

    def compare(self, test) -> dict:
        """:func:`compare_outputs` of the reference and ``test``."""
        w = self._prepared(test)
        if w is None:
            return compare_outputs(self.ref, test)
        r, energy, t, diff, abs_diff, scratch = w
        nt = math.sqrt(float(np.sum(np.multiply(t, t, out=scratch))))
        dot = np.sum(np.multiply(r, t, out=scratch))
        row = {"cosine": _cosine_sums(math.sqrt(energy), nt, dot),
               "sqnr_db": _sqnr_sums(energy, float(np.sum(np.multiply(diff, diff, out=scratch)))),
               "max_abs_error": float(np.max(abs_diff)), "mean_abs_error": float(np.mean(abs_diff))}
        row.update(_classifier_rows(self.ref, test))
        return row


_TARGET = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
#: Names accepted in a target and the summary key each one reads.
TARGET_METRICS = {"top1": "top1_agreement", "top1_agreement": "top1_agreement", "top1_margin": "top1_margin",
                  "top5": "top1_in_ref_top5", "cosine": "cosine", "sqnr": "sqnr_db", "sqnr_db": "sqnr_db",
                  "max_abs_error": "max_abs_error", "metric": "metric"}


class Target:
    """An accuracy goal such as ``"top1>=0.99"``, ``"sqnr>=25"``, ``"cosine>=0.999"`` or ``"metric>=0.7"``.

    The metric names refer to the first model output (``metric`` to the user metric function);
    the comparison is one of ``>= > <= <``. ``top1_margin`` is top-1 agreement with near-ties
    (:func:`near_ties`) counted as misses: a target that must hold with a margin.
    """

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise WorkbenchError(f"The target must be text such as 'top1>=0.99' or 'sqnr>=30', got "
                                 f"{type(text).__name__} {text!r:.40}.")
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
