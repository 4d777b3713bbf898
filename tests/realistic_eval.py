"""Metrics and data sources of the realistic models (tests/realistic_models.py re-exports them):
top-1 agreement, mask IoU, CTC exact match, cosine; feeds as a CalibrationData; .npz folders."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from workbench.data import CalibrationData


def top1_agreement(ref: np.ndarray, test: np.ndarray) -> float:
    return float(np.mean(np.argmax(ref, -1) == np.argmax(test, -1)))


def mask_iou(ref: np.ndarray, test: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of the thresholded probability maps over all samples (1.0 when both are empty)."""
    a, b = ref > threshold, test > threshold
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def ctc_greedy(logits: np.ndarray) -> list:
    """Greedy CTC decoding (argmax per step, merge repeats, drop blank 0): one tuple per row."""
    out = []
    for row in np.argmax(logits, -1):
        keep = [int(c) for i, c in enumerate(row) if c != 0 and (i == 0 or c != row[i - 1])]
        out.append(tuple(keep))
    return out


def ctc_exact_match(ref: np.ndarray, test: np.ndarray) -> float:
    return float(np.mean([a == b for a, b in zip(ctc_greedy(ref), ctc_greedy(test))]))


def mean_cosine(ref: np.ndarray, test: np.ndarray) -> float:
    """Mean per-row cosine similarity of two [N, D] arrays."""
    r, t = ref.reshape(len(ref), -1).astype(np.float64), test.reshape(len(test), -1).astype(np.float64)
    num = (r * t).sum(1)
    den = np.linalg.norm(r, axis=1) * np.linalg.norm(t, axis=1)
    return float(np.mean(np.where(den > 0, num / np.maximum(den, 1e-30), 1.0)))


class ArrayData(CalibrationData):
    """In-memory samples (a list of {input name: array without the batch axis}) as a data source."""

    kind = "arrays in memory"

    def __init__(self, model, samples: list, limit: int | None = None):
        super().__init__(model, limit)
        self.samples = samples[:limit] if limit else list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def _iter_samples(self):
        for i, s in enumerate(self.samples):
            yield f"sample {i}", s

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for s in self.samples:
            for k in sorted(s):
                h.update(k.encode())
                h.update(np.ascontiguousarray(s[k]).tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> str:
        return f"{len(self.samples)} generated samples"


def write_npz(folder, samples: list) -> Path:
    """Write ``samples`` as ``00000.npz`` ... into ``folder`` (created) for the CLI; returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(samples):
        np.savez(folder / f"{i:05d}.npz", **s)
    return folder
