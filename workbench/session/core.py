"""The workbench session: all the state of one quantization job, as a plain Python object.

A :class:`Session` holds the model, the data settings, the calibration statistics and ranges,
the precision plan (with an undo stack), the build history and the selected layer. Every
method calls the core modules (collect, ranges, plan, export, evaluate, sensitivity); the
widgets in :mod:`workbench.ui` are views over a session and hold no computation, so the same
session can be driven from code, from a notebook or from the app.

A session can be saved to a project folder and loaded back::

    project/
      session.json       model path, data and calibration settings, current plan, build history
      statistics.npz     calibration histograms (reused when model and data are unchanged)
      exports/           files written by :meth:`Session.export`

Nothing here imports ipywidgets or plotly; only :meth:`Session.export` with ``kind="report"``
imports the report writer of :mod:`workbench.ui` (it draws the plots).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, asdict
from pathlib import Path
from typing import Callable

from ._io import atomic_write_text
from .errors import StaleError, WorkbenchError
from .calib.algorithms import DEFAULT_METHOD

SESSION_FORMAT = 1
STATS_FILE = "statistics.npz"
SESSION_FILE = "session.json"
EXPORT_KINDS = ("qdq", "ort", "plan", "cache", "ranges", "report")
MAX_UNDO = 50


def sample_paths() -> dict:
    """Paths of the bundled sample: model, calib and eval folders, class names, preset.

    The folder is ``sample_data/`` next to the package (an editable install) or the folder
    in the ``WORKBENCH_SAMPLE_DIR`` environment variable.
    """
    root = Path(os.environ.get("WORKBENCH_SAMPLE_DIR") or Path(__file__).resolve().parents[1] / "sample_data")
    model = root / "efficientnet_lite0.onnx"
    if not model.exists():
        raise WorkbenchError(f"The bundled sample is missing: '{model}' does not exist. "
                             "Set WORKBENCH_SAMPLE_DIR to the sample_data folder.")
    return {"model": model, "calib": root / "calib", "eval": root / "eval",
            "classes": root / "imagenet_classes.txt", "preset": "efficientnet-lite"}


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
    """How amax is chosen: ``method`` (entropy, entropy_zero_fix, minmax, percentile, mse),
    ``percentile`` (for the percentile method, default 99.99) and the collection batch size."""

    method: str = DEFAULT_METHOD
    percentile: float = 99.99
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


class Session:
    """State of one quantization job; see the module docstring.

    Args:
        model: path of the FP32 ONNX model (None: open one later with :meth:`open_model`).
        data: calibration folder (images or .npy/.npz), or None.
        eval_data: held-out evaluation folder, or None.
        preset: preprocessing preset for image folders (default None: the data module's default).
        loader_script: ``"file.py[:func]"`` data loader instead of ``data``.
        calib_samples / eval_samples: most samples to use (None: all).
        method, percentile, batch_size: calibration settings (see :class:`CalibrationSettings`).
        project: project folder for saved statistics, the session file and exports
            (None: nothing is saved unless :meth:`save` is given a folder).
        plan_base: "fp32" or "fp16": precision of the nodes that are not INT8 by default.
    """

    def __init__(self, model=None, data=None, *, eval_data=None, preset: str | None = None,
                 loader_script: str | None = None, calib_samples: int | None = None,
                 eval_samples: int | None = None, method: str = DEFAULT_METHOD, percentile: float = 99.99,
                 batch_size: int = 8, project=None, plan_base: str = "fp32"):
        self.project: Path | None = Path(project) if project is not None else None
        self.data_settings = DataSettings(str(data) if data is not None else None, loader_script, preset,
                                          None, calib_samples,
                                          str(eval_data) if eval_data is not None else None, eval_samples)
        self.calib_settings = CalibrationSettings(method, percentile, batch_size)
        self.plan_base = plan_base
        self.model_info = None
        self.stats = None
        self.base_ranges = None       # ranges of the chosen method, without manual overrides
        self.plan = None
        self.history: list[Build] = []
        self.sensitivity_table = None
        self.auto_result = None
        self.selected: str | None = None
        self.last_calibration: dict = {}
        self._undo: list = []
        self._data = None
        self._evaluator = None
        self._listeners: list[Callable[[str], None]] = []
        if model is not None:
            self.open_model(model)

    # ------------------------------------------------------------------ notifications
    def subscribe(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(what)`` after each change ("model", "data", "ranges", "plan",
        "build", "selection", "sensitivity"). The app uses it to refresh its views."""
        self._listeners.append(callback)

    def _notify(self, what: str) -> None:
        for cb in list(self._listeners):
            cb(what)

    # ------------------------------------------------------------------ model and data
    def open_model(self, path) -> None:
        """Load the ONNX model at ``path``; statistics, ranges, plan and history are reset."""
        from .model import ModelInfo

        info = ModelInfo.from_path(path)
        self.model_info = info
        self.stats = self.base_ranges = self.plan = None
        self.history, self._undo, self.sensitivity_table, self.auto_result = [], [], None, None
        self._data = self._evaluator = None
        targets = info.quantizable_nodes()
        self.selected = targets[0].node if targets else None
        self._notify("model")

    def _need_model(self):
        if self.model_info is None:
            raise WorkbenchError("No model is open: give a model path first (open_model).")
        return self.model_info

    def set_data(self, source=None, *, loader_script: str | None = None, preset: str | None = None,
                 preprocess: dict | None = None, limit: int | None = None, eval_source=None,
                 eval_limit: int | None = None) -> None:
        """Change the data settings (see :class:`DataSettings`); the data is checked right away
        when a model is open. Statistics stay until the next :meth:`calibrate`, which reuses
        them only if the data fingerprint is unchanged."""
        new = DataSettings(str(source) if source is not None else None, loader_script, preset, preprocess,
                           limit, str(eval_source) if eval_source is not None else None, eval_limit)
        old, self.data_settings = self.data_settings, new
        self._data = self._evaluator = None
        try:
            if self.model_info is not None:
                self.data
        except WorkbenchError:
            self.data_settings = old
            raise
        self._notify("data")

    def _preprocess(self):
        from .data import ImagePreprocess, preset

        s = self.data_settings
        if s.preprocess:
            return ImagePreprocess.from_dict(s.preprocess)
        return preset(s.preset) if s.preset else None

    def _open(self, source, limit):
        from .data import open_data

        s = self.data_settings
        return open_data(source, self._need_model(), preprocess=self._preprocess(),
                         loader_script=s.loader_script if source is None else None, limit=limit)

    @property
    def data(self):
        """The calibration data (opened on first use)."""
        if self._data is None:
            s = self.data_settings
            if s.source is None and s.loader_script is None:
                raise WorkbenchError("No calibration data: give an image/.npy folder or a loader script.")
            self._data = self._open(s.source, s.limit)
        return self._data

    @property
    def evaluator(self):
        """The :class:`workbench.evaluate.Evaluator` on the evaluation data (built on first use:
        it runs the FP32 model once)."""
        if self._evaluator is None:
            from .evaluate import Evaluator

            s = self.data_settings
            data = self._open(s.eval_source, s.eval_limit) if s.eval_source else self.data
            self._evaluator = Evaluator(self._need_model(), data, max_samples=s.eval_limit,
                                        batch_size=self.calib_settings.batch_size)
        return self._evaluator

    def model_summary(self) -> dict:
        """Inputs, outputs, node counts by op type and quantizable nodes of the model."""
        return self._need_model().summary()

    # ------------------------------------------------------------------ calibration
    def _stats_path(self) -> Path | None:
        return self.project / STATS_FILE if self.project is not None else None

    def calibrate(self, *, method: str | None = None, percentile: float | None = None,
                  num_samples: int | None = None, batch_size: int | None = None, reuse: bool = True,
                  progress=None, cancel=None):
        """Collect statistics (or reuse saved ones) and compute the ranges of ``method``.

        Args:
            method / percentile / batch_size: change the calibration settings (None: keep).
            num_samples: change the calibration sample limit (None: keep).
            reuse: reuse statistics in memory or in the project folder when they were computed
                for the same model, data (fingerprints) and batch size (default True).
            progress: callback ``(samples_done, total)``; cancel: a ``threading.Event``.

        Returns the ranges in use. ``last_calibration`` says whether statistics were reused.
        """
        from .collect import collect_statistics
        from .stats import Statistics

        info = self._need_model()
        if num_samples is not None and num_samples != self.data_settings.limit:
            self.data_settings.limit = num_samples
            self._data = None
        if batch_size is not None:
            self.calib_settings.batch_size = int(batch_size)
        data = self.data
        mfp, dfp = info.fingerprint(), data.fingerprint()
        bs = self.calib_settings.batch_size
        stats, how = None, "collected"
        if reuse and self.stats is not None and self.stats.model_fingerprint == mfp \
                and self.stats.data_fingerprint == dfp:
            stats, how = self.stats, "reused (in memory)"
        path = self._stats_path()
        if stats is None and reuse and path is not None and path.exists():
            # statistics do not depend on the batch size (see workbench.collect)
            try:
                stats, how = Statistics.load(path, mfp, dfp), f"reused from '{path}'"
            except StaleError:
                stats = None
        started = time.perf_counter()
        if stats is None:
            stats = collect_statistics(info, data, batch_size=bs, progress=progress or False, cancel=cancel)
            if path is not None:
                stats.save(path)
                atomic_write_text(path.with_suffix(".json"), json.dumps({"batch_size": bs}))
        self.stats = stats
        self.last_calibration = {"how": how, "batch_size": bs, "samples": stats.num_samples,
                                 "seconds": time.perf_counter() - started}
        self.set_method(method or self.calib_settings.method, percentile)
        return self.ranges

    def _load_saved_statistics(self) -> bool:
        """Take the project's statistics if they match the model and data (no inference)."""
        from .stats import Statistics

        try:
            stats = Statistics.load(self._stats_path(), self.model_info.fingerprint(), self.data.fingerprint())
        except WorkbenchError:  # stale or unreadable statistics, or the data folder is gone
            return False
        self.stats = stats
        self.last_calibration = {"how": f"reused from '{self._stats_path()}'", "samples": stats.num_samples,
                                 "batch_size": self._read_stats_meta().get("batch_size"), "seconds": 0.0}
        self.set_method(self.calib_settings.method)
        return True

    def _read_stats_meta(self) -> dict:
        try:
            return json.loads(self._stats_path().with_suffix(".json").read_text())
        except (OSError, ValueError):
            return {}

    def set_method(self, method: str, percentile: float | None = None) -> None:
        """Use another calibration method (re-reads the statistics; no new inference)."""
        from .plan import PrecisionPlan
        from .ranges import check_method, compute_ranges

        check_method(method)
        if self.stats is None:
            raise WorkbenchError("Calibrate first: there are no statistics to compute ranges from.")
        if percentile is not None:
            self.calib_settings.percentile = float(percentile)
        self.calib_settings.method = method
        self.base_ranges = compute_ranges(self.stats, method, self.calib_settings.percentile)
        if self.plan is None:
            self.plan = PrecisionPlan.default(self.model_info, self.plan_base)
        self._notify("ranges")

    @property
    def ranges(self):
        """The ranges in use: the chosen method's, with the plan's manual amax overrides."""
        if self.base_ranges is None:
            return None
        if self.plan is None:
            return self.base_ranges
        overrides = {t: a for t, a in self.plan.amax_overrides.items() if t in self.base_ranges}
        return self.base_ranges.with_overrides(overrides)

    def _need_ranges(self):
        if self.base_ranges is None:
            raise WorkbenchError("Calibrate first: there are no activation ranges yet.")
        return self.ranges

    # ------------------------------------------------------------------ plan changes
    def _change_plan(self, change: Callable, label: str):
        """Apply ``change(plan)`` to a copy; keep the old plan on the undo stack."""
        if self.plan is None:
            from .plan import PrecisionPlan

            self.plan = PrecisionPlan.default(self._need_model(), self.plan_base)
        new = self.plan.copy()
        result = change(new)
        self._undo.append((self.plan, label))
        del self._undo[:-MAX_UNDO]
        self.plan = new
        self._notify("plan")
        return result

    def set_precision(self, nodes, precision: str) -> list:
        """Put ``nodes`` (a name or a list of names) in ``precision`` ("int8", "fp16", "fp32").
        Returns the node names changed. One undo step for the whole call."""
        names = [nodes] if isinstance(nodes, str) else list(nodes)
        if not names:
            raise WorkbenchError("No node selected: pick one or more layers first.")

        def change(plan):
            for n in names:
                plan.set_node(n, precision, reason="user")
            return names
        return self._change_plan(change, f"{', '.join(names[:3])}{'...' if len(names) > 3 else ''} -> {precision}")

    def set_precision_by_op(self, op_type: str, precision: str) -> list:
        """Put every node of ``op_type`` that can run in ``precision`` there; returns the nodes."""
        return self._change_plan(lambda p: p.set_op_type(op_type, precision, reason="user"),
                                 f"all {op_type} -> {precision}")

    def set_precision_by_pattern(self, pattern: str, precision: str) -> list:
        """Put every node whose name matches the regular expression ``pattern`` in ``precision``."""
        return self._change_plan(lambda p: p.set_pattern(pattern, precision, reason="user"),
                                 f"/{pattern}/ -> {precision}")

    def set_amax(self, tensor: str, amax: float) -> None:
        """Override the threshold of ``tensor`` (manual amax; undoable)."""
        self._need_ranges()[tensor]  # a clear error for a tensor that has no range
        self._change_plan(lambda p: p.set_amax(tensor, float(amax)), f"amax {tensor} = {amax:.4g}")

    def clear_amax(self, tensor: str | None = None) -> None:
        """Remove the manual threshold of ``tensor`` (None: of every tensor)."""
        self._change_plan(lambda p: p.clear_amax(tensor), f"clear amax {tensor or 'all'}")

    def reset_plan(self) -> None:
        """Back to the default plan (undoable)."""
        self._change_plan(lambda p: p.reset(), "reset plan")

    def undo(self) -> str | None:
        """Restore the plan before the last change; returns what was undone (None: nothing)."""
        if not self._undo:
            return None
        self.plan, label = self._undo.pop()
        self._notify("plan")
        return label

    @property
    def undo_label(self) -> str | None:
        """What :meth:`undo` would undo, or None."""
        return self._undo[-1][1] if self._undo else None

    def select(self, node: str | None) -> None:
        """Make ``node`` the selected layer (shown in the histogram, highlighted in charts)."""
        if node is not None and node not in self._targets():
            raise WorkbenchError(f"'{node}' is not a quantizable node of this model.")
        self.selected = node
        self._notify("selection")

    # ------------------------------------------------------------------ views of the state
    def _targets(self) -> dict:
        if not hasattr(self, "_target_cache") or self._target_cache[0] is not self.model_info:
            self._target_cache = (self.model_info, {t.node: t for t in self._need_model().quantizable_nodes()})
        return self._target_cache[1]

    def tensor_of(self, node: str) -> str | None:
        """The activation tensor whose range the node's INT8 input uses (its first activation input)."""
        t = self._targets().get(node)
        return t.activation_inputs[0] if t and t.activation_inputs else None

    def layer_table(self):
        """One row per quantizable node: node, op_type, tensor, amax of each method, chosen amax
        and scale, clipped share, per-layer SQNR (last build), sensitivity rank, precision."""
        import pandas as pd
        from .calib.algorithms import METHODS

        ranges = self.ranges
        last = self.history[-1].per_layer if self.history else None
        sqnr = dict(zip(last["node"], last["sqnr_db"])) if last is not None and len(last) else {}
        sens = {}
        if self.sensitivity_table is not None:
            sens = dict(zip(self.sensitivity_table["node"], self.sensitivity_table["rank"]))
        rows = []
        for node, t in self._targets().items():
            tensor = t.activation_inputs[0] if t.activation_inputs else None
            r = ranges.get(tensor) if ranges is not None and tensor else None
            row = {"node": node, "op_type": t.op_type, "tensor": tensor}
            for m in METHODS:
                row[f"amax_{m}"] = r.amax_by_method.get(m) if r else None
            row.update({"amax": r.amax if r else None, "scale": r.scale if r else None,
                        "manual": bool(r.override) if r else False,
                        "clipped_pct": 100 * self._clipped(tensor, r.amax) if r else None,
                        "sqnr_db": sqnr.get(node), "sensitivity_rank": sens.get(node),
                        "precision": str(self.plan.precision(node)).upper() if self.plan else None})
            rows.append(row)
        return pd.DataFrame(rows)

    def _clipped(self, tensor: str, amax: float) -> float:
        from .calib.algorithms import clipped_fraction

        c = self.stats.collectors.get(tensor) if self.stats else None
        return clipped_fraction(c.hist, c.bin_width, amax) if c is not None and c.bin_width else 0.0

    def histogram(self, node_or_tensor: str | None = None) -> dict:
        """Data for the histogram view of a node's input tensor (default: the selected node).

        Returns a dict: node, tensor, hist, bin_width, amax_by_method, chosen (amax in use),
        manual (override or None), clipped (share above chosen), max (max |x|).
        """
        name = node_or_tensor or self.selected
        if name is None:
            raise WorkbenchError("No layer selected.")
        tensor = self.tensor_of(name) or name
        if self.stats is None or tensor not in self.stats.collectors:
            raise WorkbenchError(f"No statistics for tensor '{tensor}': calibrate first.")
        c = self.stats.collectors[tensor]
        base = self.base_ranges[tensor]
        manual = self.plan.amax_overrides.get(tensor) if self.plan else None
        chosen = manual if manual is not None else base.amax
        return {"node": name if name != tensor else None, "tensor": tensor, "hist": c.hist,
                "bin_width": c.bin_width, "amax_by_method": dict(base.amax_by_method),
                "chosen": chosen, "manual": manual, "clipped": self._clipped(tensor, chosen),
                "max": float(c.absmax), "method": self.calib_settings.method}

    def history_table(self):
        """The build history as a DataFrame (one row per build)."""
        import pandas as pd

        return pd.DataFrame([b.row() for b in self.history])

    # ------------------------------------------------------------------ build and evaluate
    def rebuild(self, *, latency: bool = False, backend: str = "ort", label: str = "") -> Build:
        """Build the quantized model for the current plan and ranges and evaluate it.

        Args:
            latency: also measure batch-1 latency (ONNX Runtime CPU; TensorRT with ``backend="trt"``).
            backend: "ort" (always available) or "trt" (TensorRT via Polygraphy: needs the
                ``tensorrt`` package and an NVIDIA GPU; otherwise WorkbenchError with the reason).
            label: free text stored with the build.
        """
        ranges = self._need_ranges()
        started = time.perf_counter()
        plan = self.plan.copy()
        notes, paths, lat_ms = [], {}, None
        result = self.evaluator.evaluate(plan, ranges, per_layer=True, latency=latency and backend == "ort",
                                         batch_sizes=(1,))
        if latency and backend == "ort" and 1 in result.latency:
            lat_ms = float(result.latency[1].median_ms)
            notes.append("latency: ONNX Runtime CPU with emulated Q/DQ, not a TensorRT number")
        if backend == "trt":
            lat_ms, trt_paths = self._trt_build(plan, ranges, len(self.history))
            paths.update(trt_paths)
        build = Build(len(self.history), plan, self.calib_settings.method, result.summary(), result.outputs,
                      result.per_layer, lat_ms, backend, len(plan.int8_nodes()), len(plan.fp16_nodes()),
                      time.perf_counter() - started, notes, paths, label)
        self.history.append(build)
        self._autosave()
        self._notify("build")
        return build

    def _trt_build(self, plan, ranges, build_id: int) -> tuple:
        """Export the TensorRT Q/DQ model, build an engine and time it (only with TensorRT)."""
        from .backends import trt

        ok, reason = trt.trt_available()
        if not ok:
            raise WorkbenchError(f"TensorRT build unavailable: {reason}")
        from .backends.base import get_runner

        out = self._export_dir() / f"build{build_id}"
        onnx_path = self._export_model(plan, ranges, out / "model_qdq.onnx", "trt")
        engine = out / "model.engine"
        trt.build_engine(onnx_path, engine)
        runner = get_runner(str(engine), backend="trt")
        feed = self.evaluator.latency_feed(1)
        with runner:
            stats = runner.measure_latency(feed, warmup=5, repeat=50)
        return float(stats.median_ms), {"onnx": str(onnx_path), "engine": str(engine)}

    def restore(self, build_id: int) -> None:
        """Make the plan of build ``build_id`` the current plan (undoable)."""
        if not 0 <= build_id < len(self.history):
            raise WorkbenchError(f"No build {build_id}; the history has builds 0..{len(self.history) - 1}.")
        old = self.history[build_id]
        self._change_plan(lambda p: None, f"restore build {build_id}")
        self.plan = old.plan.copy()
        if old.method != self.calib_settings.method and self.stats is not None:
            self.set_method(old.method)
        self._notify("plan")

    # ------------------------------------------------------------------ sensitivity and auto
    def run_sensitivity(self, *, samples: int | None = 16, progress=None, cancel=None):
        """Rank the INT8 nodes by sensitivity (see :func:`workbench.sensitivity.sensitivity`)."""
        from .sensitivity import sensitivity

        self.sensitivity_table = sensitivity(self.evaluator, self._need_ranges(), self.plan, samples=samples,
                                             progress=progress, cancel=cancel)
        self._notify("sensitivity")
        return self.sensitivity_table

    def auto(self, target: str = "top1>=0.99", *, progress=None, cancel=None, **kw):
        """Automatic mixed precision to ``target`` (e.g. "top1>=0.99", "sqnr>=30"); the plan
        found becomes the current plan (undoable). Returns the AutoResult (with ``curve``)."""
        from .sensitivity import auto_mixed_precision

        result = auto_mixed_precision(self.evaluator, self._need_ranges(), self.plan, target,
                                      ranking=self.sensitivity_table, progress=progress, cancel=cancel, **kw)
        self.auto_result = result
        if self.sensitivity_table is None:
            self.sensitivity_table = result.sensitivity
        self._change_plan(lambda p: None, f"auto {target}")
        self.plan = result.plan.copy()
        self._notify("plan")
        return result

    # ------------------------------------------------------------------ export
    def _export_dir(self) -> Path:
        if self.project is None:
            raise WorkbenchError("No project folder: give Session(project=...) or an explicit output path.")
        return self.project / "exports"

    def _export_model(self, plan, ranges, path: Path, variant: str) -> Path:
        from ._io import refuse_overwrite
        from .export import export_model

        refuse_overwrite(path, self.model_info.path)
        export_model(self.model_info, ranges, plan, path, variant=variant)
        return Path(path)

    def export(self, kind: str, path=None) -> Path:
        """Write one artefact and return its path.

        Args:
            kind: "qdq" (Q/DQ ONNX for TensorRT), "ort" (ONNX Runtime emulation model),
                "plan" (plan JSON), "cache" (TensorRT <= 10 calibration cache), "ranges"
                (ranges JSON) or "report" (HTML report of the session).
            path: output file (default: ``<project>/exports/<model>_<kind>...``).
        """
        if kind not in EXPORT_KINDS:
            raise WorkbenchError(f"Unknown export kind '{kind}'; choose one of: {', '.join(EXPORT_KINDS)}.")
        info = self._need_model()
        stem = info.path.stem if info.path else "model"
        default = {"qdq": f"{stem}_qdq.onnx", "ort": f"{stem}_ort.onnx", "plan": f"{stem}_plan.json",
                   "cache": f"{stem}_calibration.cache", "ranges": f"{stem}_ranges.json",
                   "report": f"{stem}_report.html"}[kind]
        path = Path(path) if path is not None else self._export_dir() / default
        if kind == "report":
            from .ui.report import write_report  # needs plotly (ui extra)

            return Path(write_report(self, path))
        if kind == "plan":
            if self.plan is None:
                raise WorkbenchError("There is no plan yet: calibrate first.")
            return Path(self.plan.save(path))
        ranges = self._need_ranges()
        if kind in ("qdq", "ort"):
            return self._export_model(self.plan, ranges, path, "trt" if kind == "qdq" else "ort")
        if kind == "ranges":
            ranges.save(path)
            return path
        from .cache import cache_algorithm, write_calibration_cache

        write_calibration_cache(path, ranges.scales(), algorithm=cache_algorithm(self.calib_settings.method))
        return path

    # ------------------------------------------------------------------ save / load
    def _autosave(self) -> None:
        if self.project is not None and self.model_info is not None:
            self.save()

    def to_dict(self) -> dict:
        """The session as JSON-friendly data (statistics are stored separately)."""
        return _json_safe({
            "format": SESSION_FORMAT,
            "model": str(self.model_info.path.resolve()) if self.model_info and self.model_info.path else None,
            "model_fingerprint": self.model_info.fingerprint() if self.model_info else None,
            "data": asdict(self.data_settings), "calibration": asdict(self.calib_settings),
            "plan_base": self.plan_base, "selected": self.selected,
            "plan": self.plan.to_dict() if self.plan else None,
            "history": [{**b.row(), "summary": b.summary, "notes": b.notes, "paths": b.paths,
                         "plan": b.plan.to_dict(),
                         "per_layer": b.per_layer.to_dict("list") if b.per_layer is not None else None,
                         "outputs": b.outputs.to_dict("list") if b.outputs is not None else None}
                        for b in self.history],
        })

    def save(self, project=None) -> Path:
        """Write ``session.json`` (and the statistics, if not there yet) to the project folder."""
        if project is not None:
            self.project = Path(project)
        if self.project is None:
            raise WorkbenchError("Give a project folder to save the session to.")
        self.project.mkdir(parents=True, exist_ok=True)
        path = self._stats_path()
        if self.stats is not None and not path.exists():
            self.stats.save(path)
            atomic_write_text(path.with_suffix(".json"),
                              json.dumps({"batch_size": self.last_calibration.get("batch_size")}))
        return atomic_write_text(self.project / SESSION_FILE, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, project) -> "Session":
        """Open a saved project folder: model, data settings, statistics (when still valid),
        current plan and build history. Raises WorkbenchError when the model file changed."""
        import pandas as pd
        from .plan import PrecisionPlan

        project = Path(project)
        try:
            d = json.loads((project / SESSION_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorkbenchError(f"'{project}' is not a workbench project (no {SESSION_FILE}).") from None
        except ValueError as exc:
            raise WorkbenchError(f"'{project / SESSION_FILE}' is not valid JSON ({exc}).") from None
        if d.get("format") != SESSION_FORMAT:
            raise WorkbenchError(f"'{project / SESSION_FILE}' has format {d.get('format')}; "
                                 f"this workbench reads format {SESSION_FORMAT}.")
        s = cls(project=project, plan_base=d.get("plan_base", "fp32"))
        s.data_settings = DataSettings(**d["data"])
        s.calib_settings = CalibrationSettings(**d["calibration"])
        if d.get("model"):
            s.open_model(d["model"])
            if d.get("model_fingerprint") and s.model_info.fingerprint() != d["model_fingerprint"]:
                raise StaleError(f"The model '{d['model']}' changed since the project was saved; "
                                 "start a new project for it.")
        if d.get("plan") and s.model_info is not None:
            s.plan = PrecisionPlan.from_dict(d["plan"], s.model_info, source=str(project / SESSION_FILE))
        for h in d.get("history", []):
            plan = PrecisionPlan.from_dict(h["plan"], s.model_info, source=str(project / SESSION_FILE))
            s.history.append(Build(
                h["build"], plan, h["method"], h.get("summary", {}),
                pd.DataFrame(h["outputs"]) if h.get("outputs") else None,
                pd.DataFrame(h["per_layer"]) if h.get("per_layer") else None,
                h.get("latency_ms"), h.get("backend", "ort"), h.get("n_int8", 0), h.get("n_fp16", 0),
                h.get("seconds", 0.0), h.get("notes", []), h.get("paths", {}), h.get("label", "")))
        if (project / STATS_FILE).exists() and s.model_info is not None:
            s._load_saved_statistics()
        if d.get("selected"):
            s.selected = d["selected"]
        return s
