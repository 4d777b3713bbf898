"""How an engine is built: :class:`BuildConfig`, the build mode per TensorRT version and
flavor, timing-cache paths and the legacy (TensorRT 8.6-10) calibration-cache calibrator.

Pure Python except :func:`cache_only_calibrator`, which receives the TensorRT module.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError
from .gpu import parse_cc
from .trt_import import flavor_info
from .trt_shapes import Shape

LEGACY_REMOVED = (
    "The legacy implicit-INT8 build (calibration cache + per-layer precisions) does not exist "
    "in {what}: it has no BuilderFlag.INT8/FP16, IInt8Calibrator or precision constraints. "
    "Build the Q/DQ model exported by the workbench instead (workbench build QUANT_MODEL -o "
    "ENGINE); the calibration cache is only for TensorRT 8.6-10.")

# Calibration-cache header algorithm -> TensorRT calibrator base class name.
CALIBRATOR_CLASSES = {
    "EntropyCalibration2": "IInt8EntropyCalibrator2",
    "MinMaxCalibration": "IInt8MinMaxCalibrator",
    "EntropyCalibration": "IInt8EntropyCalibrator",
}
TRT_PRECISIONS = {"INT8": "INT8", "FP16": "HALF", "HALF": "HALF", "FP32": "FLOAT", "FLOAT": "FLOAT",
                  "BF16": "BF16"}


@dataclass
class BuildConfig:
    """How to build an engine. Every field has a safe default.

    Attributes:
        shapes: opt shapes per input (``parse_shapes`` output); used for min/opt/max unless
            those are given. Empty: derived from the model (dynamic batch -> ``batch``).
        min_shapes / opt_shapes / max_shapes: explicit profile per input.
        batch / max_batch: used for a dynamic first dimension not covered by the shapes.
        workspace_bytes: workspace memory-pool limit; None keeps TensorRT's default.
        timing_cache: timing-cache file, loaded if it exists and updated after the build so
            that the next build reuses measured tactics. None: ``default_timing_cache_path()``.
        use_timing_cache: False disables loading and saving it.
        strongly_typed: True (default) builds the precisions written in the ONNX. Ignored on
            TensorRT 11 (always strongly typed). False on TensorRT 10 sets FP16+INT8 flags.
        profiling_verbosity: ``"detailed"`` (default, needed by the inspector), ``"layer_names_only"``
            or ``"none"``.
        legacy_int8_cache: TensorRT 8.6-10 only: calibration cache for implicit INT8 of an FP32 ONNX.
        legacy_fp16: legacy mode only: also allow FP16 kernels (default True).
        layer_precisions: legacy mode only: ONNX node (= TensorRT layer) name -> "int8"/"fp16"/"fp32",
            applied with PREFER_PRECISION_CONSTRAINTS.
        builder_optimization_level: TensorRT builder optimization level (None: default 3).
        flavor: ``"trt"`` (TensorRT 10/11), ``"rtx"`` (TensorRT-RTX) or None/``"auto"``
            (whichever is installed, see :mod:`workbench.backends.trt_import`).
        compute_capabilities: TensorRT-RTX only: target GPUs as ``"8.6"``-style strings.
            Empty (default): the GPU present when it is supported, else TensorRT-RTX's
            default set (8.0, 8.6, 8.9, 12.0 and later). ``["current"]``: the GPU present.
        compare_fp32: an FP32 ONNX to build the same way (not saved) for the report's size
            and build-time comparison; None skips it.
    """

    shapes: dict[str, Shape] = field(default_factory=dict)
    min_shapes: dict[str, Shape] = field(default_factory=dict)
    opt_shapes: dict[str, Shape] = field(default_factory=dict)
    max_shapes: dict[str, Shape] = field(default_factory=dict)
    batch: int = 1
    max_batch: int | None = None
    workspace_bytes: int | None = None
    timing_cache: str | None = None
    use_timing_cache: bool = True
    strongly_typed: bool = True
    profiling_verbosity: str = "detailed"
    legacy_int8_cache: str | None = None
    legacy_fp16: bool = True
    layer_precisions: dict[str, str] = field(default_factory=dict)
    builder_optimization_level: int | None = None
    flavor: str | None = None
    compute_capabilities: list[str] = field(default_factory=list)
    compare_fp32: str | None = None

    @property
    def legacy(self) -> bool:
        return self.legacy_int8_cache is not None

    def validate(self) -> None:
        """Raise WorkbenchError for settings that contradict each other."""
        if self.profiling_verbosity not in ("detailed", "layer_names_only", "none"):
            raise WorkbenchError(f"profiling_verbosity must be detailed, layer_names_only or none, "
                                 f"got '{self.profiling_verbosity}'")
        if self.workspace_bytes is not None and self.workspace_bytes <= 0:
            raise WorkbenchError(f"workspace must be positive, got {self.workspace_bytes} bytes")
        if self.layer_precisions and not self.legacy:
            raise WorkbenchError(
                "Per-layer precisions are a legacy (TensorRT 8.6-10 implicit INT8) feature and need "
                "--legacy-int8-cache; in the Q/DQ model the precisions are already in the graph.")
        for node, p in self.layer_precisions.items():
            if str(p).upper() not in TRT_PRECISIONS:
                raise WorkbenchError(f"layer '{node}': unknown precision '{p}' (use int8, fp16 or fp32)")
        if self.legacy and not Path(self.legacy_int8_cache).is_file():
            raise WorkbenchError(f"Calibration cache not found: '{self.legacy_int8_cache}'")
        if self.flavor not in (None, "auto"):
            flavor_info(self.flavor)
        self.target_ccs()
        if self.compare_fp32 is not None and not Path(self.compare_fp32).is_file():
            raise WorkbenchError(f"FP32 model for the size comparison not found: '{self.compare_fp32}'")

    def target_ccs(self) -> list[tuple[int, int]] | None:
        """The requested compute capabilities as (major, minor), ``None`` for "current GPU",
        ``[]`` for the default. Raises WorkbenchError for an unreadable entry."""
        items = [str(c).strip() for c in self.compute_capabilities if str(c).strip()]
        if [i.lower() for i in items] == ["current"]:
            return None
        ccs = []
        for item in items:
            try:
                ccs.append(parse_cc(item))
            except ValueError:
                raise WorkbenchError(f"compute capability '{item}': expected MAJOR.MINOR such as 8.6 or "
                                     f"12.0, or 'current' alone") from None
        return list(dict.fromkeys(ccs))

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


# -- timing cache and legacy calibration cache ---------------------------------------
def default_timing_cache_path(version: str | None = None, gpu: str | None = None,
                              cache_dir: str | os.PathLike | None = None, flavor: str = "trt") -> Path:
    """Where the timing cache lives by default.

    Tactic timings depend on the TensorRT version and the GPU, not on the model, so one
    cache per (version, GPU) is shared by every build: ``<cache_dir>/trt-<version>-<gpu>.timing``.

    Args:
        version: TensorRT version (the caller passes the one it builds with; ``"unknown"`` if None).
        gpu: GPU name (``"unknown-gpu"`` if None, e.g. a TensorRT-RTX build without a GPU).
        cache_dir: folder (default ``$WORKBENCH_CACHE_DIR`` or ``~/.cache/workbench/trt``).
        flavor: ``"trt"`` or ``"rtx"``; TensorRT-RTX caches get an ``rtx-`` prefix.
    """
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", f"{version or 'unknown'}-{gpu or 'unknown-gpu'}").strip("-").lower()
    root = Path(cache_dir) if cache_dir else Path(
        os.environ.get("WORKBENCH_CACHE_DIR") or Path.home() / ".cache" / "workbench") / "trt"
    prefix = "rtx-" if flavor == "rtx" else ""
    return root / f"{prefix}trt-{slug}.timing"


def read_cache_header(path: str | os.PathLike) -> tuple[int, str]:
    """(version, algorithm) of a calibration cache (``TRT-8600-EntropyCalibration2``), checked to
    be one TensorRT has a calibrator class for."""
    from .trt_cache import read_calibration_cache

    try:
        cache = read_calibration_cache(path)
    except WorkbenchError as exc:
        raise WorkbenchError(f"'{path}' is not a TensorRT calibration cache: {exc}") from None
    if cache.algorithm not in CALIBRATOR_CLASSES:
        raise WorkbenchError(f"Calibration cache '{path}' uses algorithm '{cache.algorithm}'; the workbench "
                             f"can feed {', '.join(CALIBRATOR_CLASSES)}")
    return cache.version, cache.algorithm


def cache_only_calibrator(trt, cache: bytes, algorithm: str):
    """A calibrator that only hands TensorRT our cache and has no data to calibrate with."""
    base = getattr(trt, CALIBRATOR_CLASSES[algorithm])

    class CacheOnlyCalibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self):
            base.__init__(self)  # trampoline classes must be initialised explicitly
            self.batches_requested = 0

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            self.batches_requested += 1  # TensorRT rejected the cache and wants data
            return None

        def read_calibration_cache(self):
            return cache

        def write_calibration_cache(self, data):
            return None  # never overwrite the workbench's cache

    return CacheOnlyCalibrator()


def build_mode(config: BuildConfig, major: int | None, flavor: str = "trt") -> str:
    """``"strongly_typed"``, ``"weakly_typed"`` or ``"legacy_int8"``.

    TensorRT 11 and TensorRT-RTX build strongly typed networks only, so the legacy mode raises
    there and ``strongly_typed=False`` is ignored. Compute capabilities are TensorRT-RTX only."""
    rtx = flavor == "rtx"
    if config.compute_capabilities and not rtx:
        raise WorkbenchError("Target compute capabilities (--compute-capability) are a TensorRT-RTX "
                             "feature; TensorRT 10/11 builds for the GPU it runs on.")
    if config.legacy:
        if rtx or (major is not None and major >= 11):
            raise WorkbenchError(LEGACY_REMOVED.format(what="TensorRT-RTX" if rtx else f"TensorRT {major}"))
        return "legacy_int8"
    if rtx or (major is not None and major >= 11):
        return "strongly_typed"
    return "strongly_typed" if config.strongly_typed else "weakly_typed"
