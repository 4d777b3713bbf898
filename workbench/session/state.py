"""Plain data of a session: settings, one build of the history, event names."""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from ..calib.algorithms import DEFAULT_PERCENTILE
from ..calib.registry import DEFAULT_METHOD

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
        preparation: how images become the model's input (:mod:`workbench.data.prepare`): a dict
            of fields (``preset``, ``size``, ``resize``, ``layout``, ``channel_order``, ``scale``,
            ``mean``, ``std``, ...) that win over ``preset``/``preprocess``, or a saved
            ``InputPreparation.to_dict()``; the rest comes from the model (guesses are said so).
    """

    source: str | None = None
    loader_script: str | None = None
    preset: str | None = None
    preprocess: dict | None = None
    limit: int | None = None
    eval_source: str | None = None
    eval_limit: int | None = None
    preparation: dict | None = None


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
        label: what changed since the previous build (or the text given to ``rebuild``).
        semantics: how the accuracy figures were computed (exact ONNX
            semantics on the TensorRT Q/DQ file as exported, see :mod:`workbench.graph.semantics`).
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


@dataclass
class SessionState:
    """Everything a :class:`~workbench.session.Session` holds besides its settings, in one place.
    What a change makes out of date is :data:`INVALIDATES` (code, not comments).

    Attributes:
        model_info / imported: the open model (its recovered FP32 graph for a Q/DQ model) and the
            :class:`~workbench.imported.QuantizedModel` it came from (None: an FP32 model).
        data / evaluator: the calibration data and the evaluator where ranges and builds are
            judged (opened on first use, by the one hold-out rule).
        holdout: :class:`~workbench.search.calibration.HoldOut` (statistics vs judged samples).
        stats / base_ranges / calibration: statistics, the chosen method's ranges (no manual
            overrides) and the :class:`~workbench.search.calibration.CalibrationResult`.
        range_search / range_sensitivity: the auto search's result; what each threshold costs.
        plan / undo: the precision plan and the undo stack of (plan, label).
        history / sensitivity_table / mixed_precision_result: builds, the sensitivity ranking, the last
            automatic mixed-precision result.
        selected: the selected layer. last_calibration: how the last calibration went.
        improvement / improvement_plan: the accuracy steps' result
            (:class:`~workbench.search.improve_steps.Improvement`) and the plan (precisions, amax
            overrides) it was judged under; builds and exports use it while the plan is that one.
        target_cache ... preview_seconds_per_sample: caches of the views (never persisted).
        eval_reuse: the last build's values (:class:`~workbench.evaluate.reuse.ReuseCache`): a rebuild
            computes only what changed (never persisted).
    """

    model_info: object = None
    imported: object = None
    data: object = None
    evaluator: object = None
    holdout: object = None
    stats: object = None
    base_ranges: object = None
    calibration: object = None
    range_search: object = None
    range_sensitivity: object = None
    plan: object = None
    undo: list = field(default_factory=list)
    history: list = field(default_factory=list)
    sensitivity_table: object = None
    mixed_precision_result: object = None
    selected: str | None = None
    last_calibration: dict = field(default_factory=dict)
    improvement: object = None
    improvement_plan: object = None
    target_cache: object = None
    built_amax: dict | None = None
    ranges_version: int = 0
    qdq_cache: object = None
    preview_cache: object = None
    preview_seconds_per_sample: float | None = None
    eval_reuse: object = None

    def reset(self, change: str) -> None:
        """Reset every field that ``change`` (a key of :data:`INVALIDATES`) makes out of date."""
        defaults = SessionState()
        for name in INVALIDATES[change]:
            setattr(self, name, getattr(defaults, name))


_VIEW_CACHES = ("target_cache", "built_amax", "qdq_cache", "preview_cache", "preview_seconds_per_sample")
#: change -> the fields of :class:`SessionState` it makes out of date.
INVALIDATES = {
    # a new model: everything derived from the previous one
    "model": tuple(f for f in SessionState.__dataclass_fields__ if f not in ("model_info", "imported")),
    # new data settings: the opened data, the hold-out and the evaluator (statistics stay until the
    # next calibration, which reuses them only when the data fingerprint is unchanged)
    "data": ("data", "evaluator", "holdout", "preview_cache", "preview_seconds_per_sample", "eval_reuse"),
    # new ranges: what was measured on the old ones
    "ranges": ("range_sensitivity", "preview_cache", "improvement", "improvement_plan"),
}

#: the fields a Session exposes as attributes (``session.plan`` is ``session.state.plan``)
PUBLIC_STATE = ("model_info", "imported", "stats", "base_ranges", "calibration", "range_search",
                "range_sensitivity", "plan", "history", "sensitivity_table", "mixed_precision_result", "selected",
                "last_calibration")
