"""Plain data of a session: settings, one build of the history, event names."""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from ..calib.algorithms import DEFAULT_METHOD, DEFAULT_PERCENTILE

SESSION_FORMAT = 1
STATS_FILE = "statistics.npz"
SESSION_FILE = "session.json"
MAX_UNDO = 50


class Event(str, enum.Enum):
    """What changed; passed to :meth:`Session.subscribe` callbacks. A ``str`` enum, so
    ``event == "plan"`` holds for ``Event.PLAN``."""

    MODEL = "model"
    DATA = "data"
    RANGES = "ranges"
    PLAN = "plan"
    BUILD = "build"
    SELECTION = "selection"
    SENSITIVITY = "sensitivity"
    ALL = "all"

    def __str__(self) -> str:
        return self.value


@dataclass
class DataSettings:
    """Where calibration (and evaluation) samples come from and how they are preprocessed.

    Args:
        source: folder of images or .npy/.npz files (None with ``loader_script``).
        loader_script: ``"file.py[:func]"`` data loader instead of a folder.
        preset: preprocessing preset name (see ``workbench.data.PRESETS``), or None.
        preprocess: explicit preprocessing fields (``ImagePreprocess.to_dict()``); wins over preset.
        limit: the most calibration samples to use (None: all).
        eval_source: folder of held-out evaluation samples (None: evaluate on the calibration data).
        eval_limit: the most evaluation samples to use (None: all).
    """

    source: str | None = None
    loader_script: str | None = None
    preset: str | None = None
    preprocess: dict | None = None
    limit: int | None = None
    eval_source: str | None = None
    eval_limit: int | None = None


@dataclass
class CalibrationSettings:
    """How amax is chosen: ``method`` (a name of the range-method registry,
    ``workbench.calib.registry``: auto, entropy, entropy_zero_fix, minmax, percentile, mse),
    ``percentile`` (for the percentile method, the registry's default) and the batch size."""

    method: str = DEFAULT_METHOD
    percentile: float = DEFAULT_PERCENTILE
    batch_size: int = 8


@dataclass
class Build:
    """One rebuild + evaluation in the history.

    Attributes:
        id: position in the history (0, 1, ...).
        plan: the PrecisionPlan that was built (a private copy).
        method: the calibration method of the ranges used.
        summary: output metrics of the first output (cosine, sqnr_db, top1_agreement, ...).
        outputs: DataFrame of output metrics; per_layer: DataFrame of per-layer error (or None).
        latency_ms: batch-1 latency in ms when measured (ONNX Runtime CPU or TensorRT), else None.
        backend: "ort" or "trt".
        n_int8 / n_fp16: node counts of the plan.
        seconds: wall time of build + evaluation.
        notes: messages (e.g. why TensorRT was not used).
        paths: files written for this build (e.g. the TensorRT engine).
        label: free text. semantics: how the accuracy figures were computed (exact ONNX
            semantics on the ONNX Runtime evaluation twin, see :mod:`workbench.graph.semantics`).
    """

    id: int
    plan: object
    method: str
    summary: dict
    outputs: object = None
    per_layer: object = None
    latency_ms: float | None = None
    backend: str = "ort"
    n_int8: int = 0
    n_fp16: int = 0
    seconds: float = 0.0
    notes: list = field(default_factory=list)
    paths: dict = field(default_factory=dict)
    label: str = ""
    semantics: str = ""

    def row(self) -> dict:
        """A flat dict for the history table."""
        r = {"build": self.id, "label": self.label, "method": self.method, "n_int8": self.n_int8,
             "n_fp16": self.n_fp16, "latency_ms": self.latency_ms, "backend": self.backend,
             "seconds": round(self.seconds, 2)}
        for k in ("top1_agreement", "cosine", "sqnr_db", "max_abs_error"):
            if k in self.summary:
                r[k] = self.summary[k]
        return r


def _json_safe(value):
    """NaN/inf -> None and numpy scalars -> Python, so json.dumps writes valid JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
