"""The TensorRT step of a Session rebuild: build the exported Q/DQ model, then time it where a
GPU allows (``Session.rebuild(backend="trt")`` and the app's TensorRT build call this).

Where only a builder exists (TensorRT-RTX without a supported GPU), the engine and its record
are still written and the notes say plainly that running, timing and layer inspection need a
supported GPU; no latency is reported then.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import WorkbenchError
from .trt_build import BuildReport, build_engine, layers_path, sidecar_path
from .trt_config import BuildConfig
from .trt_status import trt_status


@dataclass
class TrtBuildResult:
    """Engine build (+ latency when measured) for one Session build.

    Attributes:
        report: the :class:`BuildReport` (also saved as ``<engine>.json``).
        latency_ms: median batch-1 latency from TensorRT, or None when this machine cannot run it.
        paths: files written (``engine``, ``engine_record`` and ``builder_layers`` when present).
        notes: one-line messages for the history (flavor and version, size, build only...).
    """

    report: BuildReport
    latency_ms: float | None
    paths: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def build_and_time(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, *, flavor: str | None = None,
                   fp32_onnx: str | os.PathLike | None = None, feed=None, repeat: int = 50) -> TrtBuildResult:
    """Build ``onnx_path`` into ``engine_path`` and, where the engine can run here, time it on ``feed``.

    Args:
        onnx_path: the exported TensorRT Q/DQ / FP16 ONNX.
        engine_path: where the engine goes (with ``.json`` / ``.layers.json`` beside it).
        flavor: ``"trt"``, ``"rtx"`` or None (whichever is installed).
        fp32_onnx: the FP32 model, built the same way (in memory) for the size comparison.
        feed: one batch ``{input: array}`` for the latency; None skips timing.
        repeat: timed runs (after 5 warm-up runs).

    Raises:
        WorkbenchError: when no TensorRT builder can be used here (with the reason), or the
            build fails (naming the ONNX node and TensorRT's message).
    """
    status = trt_status(flavor)
    if not status.can_build:
        raise WorkbenchError(f"TensorRT build unavailable: {status.reason}")
    config = BuildConfig(flavor=flavor, compare_fp32=str(fp32_onnx) if fp32_onnx else None)
    report = build_engine(onnx_path, engine_path, config)
    paths = {"engine": str(engine_path), "engine_record": str(sidecar_path(engine_path))}
    if report.builder_layers:
        paths["builder_layers"] = str(layers_path(engine_path))
    size = f"engine {report.engine_bytes / 1e6:.2f} MB"
    if report.fp32:
        size += f" ({report.fp32['size_ratio']:.2f}x the FP32 engine's {report.fp32['engine_bytes'] / 1e6:.2f} MB)"
    notes = [f"{report.tensorrt}: {size}, built in {report.build_seconds:.2f} s for {', '.join(report.targets)}"]
    if report.builder_layers:
        notes.append("builder log: engine layers by input precision " + ", ".join(
            f"{k} {v}" for k, v in report.builder_layers["precisions"].items()))
    latency = None
    if not report.runnable_here:
        notes.append(f"build only: {report.runtime_note}")
    elif feed is not None:
        from .trt_runner import TrtRunner

        with TrtRunner(str(engine_path), flavor=report.flavor) as runner:
            latency = float(runner.measure_latency(feed, warmup=5, repeat=repeat).median_ms)
        notes.append(f"latency: {report.tensorrt} on {report.gpu}, median of {repeat} runs")
    return TrtBuildResult(report, latency, paths, notes)


def read_build_record(engine_path: str | os.PathLike) -> dict:
    """The saved ``<engine>.json`` as a dict (for the report and the app)."""
    import json

    path = sidecar_path(Path(engine_path))
    if not path.is_file():
        raise WorkbenchError(f"No build record next to the engine: '{path}'")
    return json.loads(path.read_text())
