"""TensorRT backend through Polygraphy: build, run and inspect engines.

``tensorrt`` is imported lazily, inside functions, through ``workbench._optional.require``;
this module (and ``import workbench``) works without it. Functions that need TensorRT
raise one WorkbenchError that says what to install and that an NVIDIA GPU is needed.

Build modes (see docs/TENSORRT.md):

- Strongly typed (default; the only mode on TensorRT 11): the Q/DQ / FP16 ONNX written by
  the workbench carries the precisions; no precision flags are set.
- TensorRT 10 weakly typed (``strongly_typed=False``): same ONNX, FP16+INT8 builder flags.
- Legacy implicit INT8 for TensorRT 8.6-10 (``legacy_int8_cache=...``): an FP32 ONNX, the
  workbench's calibration cache, optional per-layer precisions. Removed in TensorRT 11.

Nothing here fakes a TensorRT result: without TensorRT these functions raise.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import re
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .._io import atomic_write_bytes, atomic_write_text, refuse_overwrite
from .._optional import require
from ..errors import WorkbenchError
from .base import Runner, TensorSpec, format_shape, onnx_input_specs

GPU_NOTE = ("TensorRT also needs an NVIDIA GPU with a recent driver; on machines without one, "
            "use the ONNX Runtime backend (--backend ort).")

LEGACY_REMOVED = (
    "The legacy implicit-INT8 build (calibration cache + per-layer precisions) does not exist "
    "in TensorRT {version}: TensorRT 11 removed BuilderFlag.INT8/FP16, IInt8Calibrator and "
    "precision constraints. Build the Q/DQ model exported by the workbench instead "
    "(workbench build QUANT_MODEL -o ENGINE); the calibration cache is only for TensorRT 8.6-10.")

# Calibration-cache header algorithm -> TensorRT calibrator base class name.
_CALIBRATOR_CLASSES = {
    "EntropyCalibration2": "IInt8EntropyCalibrator2",
    "MinMaxCalibration": "IInt8MinMaxCalibrator",
    "EntropyCalibration": "IInt8EntropyCalibrator",
}
_TRT_PRECISIONS = {"INT8": "INT8", "FP16": "HALF", "HALF": "HALF", "FP32": "FLOAT", "FLOAT": "FLOAT",
                   "BF16": "BF16"}

Shape = tuple[int, ...]


# -- availability ---------------------------------------------------------------------
def _require_trt(feature: str = "TensorRT engine build"):
    """Import tensorrt or raise the one clear error (what to install, GPU needed)."""
    try:
        return require("tensorrt", feature, "trt")
    except WorkbenchError as exc:
        raise WorkbenchError(f"{exc}. {GPU_NOTE}") from None


def trt_version() -> str | None:
    """Installed TensorRT version string, or None when ``tensorrt`` is not importable."""
    try:
        import tensorrt  # noqa: PLC0415 - optional dependency, imported lazily on purpose
    except Exception:
        return None
    return str(getattr(tensorrt, "__version__", "unknown"))


def version_major(version: str | None) -> int | None:
    """``"10.13.0.35"`` -> 10; None for None or an unparsable string."""
    match = re.match(r"\s*(\d+)", version or "")
    return int(match.group(1)) if match else None


def trt_available() -> tuple[bool, str]:
    """(True, "TensorRT 10.x on <GPU>") when engines can be built here, else (False, reason).

    Never raises; the UI and CLI use the reason to show the build as unavailable."""
    try:
        _require_trt()
    except WorkbenchError as exc:
        return False, str(exc)
    gpu = gpu_name()
    if gpu is None:
        return False, (f"TensorRT {trt_version()} is installed but no NVIDIA GPU / CUDA driver "
                       f"was found. {GPU_NOTE}")
    return True, f"TensorRT {trt_version()} on {gpu}"


def gpu_name(device: int = 0) -> str | None:
    """Name of CUDA device ``device`` through the driver API (libcuda), or None if there is none."""
    names = ["nvcuda.dll"] if platform.system() == "Windows" else ["libcuda.so.1", "libcuda.so"]
    for lib_name in names:
        try:
            lib = ctypes.CDLL(lib_name)
        except OSError:
            continue
        dev, buf = ctypes.c_int(), ctypes.create_string_buffer(256)
        if lib.cuInit(0) != 0 or lib.cuDeviceGet(ctypes.byref(dev), device) != 0:
            return None
        if lib.cuDeviceGetName(buf, 256, dev) != 0:
            return None
        return buf.value.decode(errors="replace")
    return None


# -- shapes and profiles ----------------------------------------------------------------
def _split_items(text: str) -> list[str]:
    """Split on commas/spaces that are not inside brackets."""
    items, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if depth == 0 and (ch == "," or ch.isspace()):
            if cur:
                items.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        items.append(cur)
    return items


def parse_shapes(text: str | Sequence[str] | None) -> dict[str, Shape]:
    """Parse input shapes in trtexec or Polygraphy style.

    Accepts ``"input:1x3x224x224,mask:1x16"`` (trtexec), ``"input:[1,3,224,224]"``
    (Polygraphy) or a list of such items. Names may contain ':' (the last colon separates
    the shape). Returns ``{name: (1, 3, 224, 224)}``; ``None`` or ``""`` gives ``{}``.

    Raises:
        WorkbenchError: naming the item and the expected format.
    """
    if not text:
        return {}
    items = [i for t in ([text] if isinstance(text, str) else text) for i in _split_items(t)]
    shapes: dict[str, Shape] = {}
    for item in items:
        name, sep, dims = item.rpartition(":")
        dims = dims.strip()
        if dims.startswith("[") and dims.endswith("]"):
            parts = [p.strip() for p in dims[1:-1].split(",") if p.strip()]
        else:
            parts = dims.lower().split("x") if dims else []
        if not sep or not name or not parts or not all(re.fullmatch(r"[1-9]\d*", p) for p in parts):
            raise WorkbenchError(
                f"Cannot read the shape '{item}': expected NAME:DIMS like input:1x3x224x224 "
                f"(trtexec style) or input:[1,3,224,224] (Polygraphy style), dimensions as "
                f"positive integers, several inputs separated by commas")
        if name in shapes:
            raise WorkbenchError(f"Input '{name}' is given twice in '{text}'")
        shapes[name] = tuple(int(p) for p in parts)
    return shapes


def format_shapes(shapes: Mapping[str, Sequence[int]], style: str = "trtexec") -> str:
    """Inverse of :func:`parse_shapes`: ``"input:1x3x224x224"`` or ``"input:[1,3,224,224]"``."""
    if style == "trtexec":
        return ",".join(f"{n}:{'x'.join(str(d) for d in s)}" for n, s in shapes.items())
    return " ".join(f"{n}:[{','.join(str(d) for d in s)}]" for n, s in shapes.items())


def _specs(model_or_specs) -> list[TensorSpec]:
    if isinstance(model_or_specs, (list, tuple)) and all(hasattr(s, "shape") for s in model_or_specs):
        return list(model_or_specs)
    return onnx_input_specs(model_or_specs)


def profile_from_model(model_or_specs, batch: int = 1, *, max_batch: int | None = None
                       ) -> dict[str, tuple[Shape, Shape, Shape]]:
    """Optimization profile (min, opt, max) per input derived from the model's shapes.

    Static dimensions are used as they are. A dynamic first dimension is the batch:
    min 1, opt ``batch``, max ``max(batch, max_batch)``. Other dynamic dimensions cannot be
    guessed (an image size of 1 would build a useless engine), so they raise.

    Args:
        model_or_specs: ONNX path / ModelProto, or a list of TensorSpec.
        batch: batch size to optimise for (default 1).
        max_batch: largest batch the engine must accept (default ``batch``).
    """
    if batch < 1 or (max_batch is not None and max_batch < 1):
        raise WorkbenchError(f"batch sizes must be >= 1, got batch={batch}, max_batch={max_batch}")
    top = max(batch, max_batch or batch)
    profile = {}
    for spec in _specs(model_or_specs):
        dims = []  # (min, opt, max) per axis
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, (int, np.integer)) and dim >= 0:
                dims.append((int(dim), int(dim), int(dim)))
            elif axis == 0:
                dims.append((1, batch, top))
            else:
                example = format_shapes({spec.name: [
                    d if isinstance(d, int) and d >= 0 else (batch if i == 0 else 224)
                    for i, d in enumerate(spec.shape)]})
                raise WorkbenchError(
                    f"Input '{spec.name}' {format_shape(spec.shape)}: dimension {axis} ('{dim}') is "
                    f"dynamic and cannot be derived; give the shapes, e.g. --shapes {example}")
        profile[spec.name] = tuple(tuple(d[i] for d in dims) for i in range(3))
    return profile


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
            if str(p).upper() not in _TRT_PRECISIONS:
                raise WorkbenchError(f"layer '{node}': unknown precision '{p}' (use int8, fp16 or fp32)")
        if self.legacy and not Path(self.legacy_int8_cache).is_file():
            raise WorkbenchError(f"Calibration cache not found: '{self.legacy_int8_cache}'")

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def resolve_profile(model_or_specs, config: BuildConfig) -> dict[str, tuple[Shape, Shape, Shape]]:
    """Min/opt/max per input: the model-derived profile overridden by the user's shapes.

    Checks that every named input exists, ranks and static dimensions agree, and
    min <= opt <= max per dimension."""
    specs = _specs(model_or_specs)
    names = [s.name for s in specs]
    by_name = {s.name: s for s in specs}
    user = {"shapes": config.shapes, "min": config.min_shapes, "opt": config.opt_shapes,
            "max": config.max_shapes}
    for kind, shapes in user.items():
        for name, shape in shapes.items():
            if name not in by_name:
                raise WorkbenchError(f"--{kind}-shapes: requested input '{name}', the model has: "
                                     + ", ".join(f"'{n}'" for n in names))
            spec = by_name[name]
            if len(shape) != len(spec.shape):
                raise WorkbenchError(f"input '{name}': expected rank {len(spec.shape)} "
                                     f"{format_shape(spec.shape)}, got {format_shape(shape)}")
            for axis, (want, got) in enumerate(zip(spec.shape, shape)):
                if isinstance(want, int) and want >= 0 and want != got:
                    raise WorkbenchError(f"input '{name}': dimension {axis} is fixed to {want} in the "
                                         f"model {format_shape(spec.shape)}, got {got}")
    given = set().union(*[set(s) for s in user.values()])
    derived = profile_from_model([s for s in specs if s.name not in given], config.batch,
                                 max_batch=config.max_batch)
    profile = {}
    for name in names:
        if name in derived:
            profile[name] = derived[name]
            continue
        opt = config.opt_shapes.get(name) or config.shapes.get(name) \
            or config.max_shapes.get(name) or config.min_shapes.get(name)
        lo = config.min_shapes.get(name, opt)
        hi = config.max_shapes.get(name, opt)
        if not (len(lo) == len(opt) == len(hi)) or any(
                not (a <= b <= c) for a, b, c in zip(lo, opt, hi)):
            raise WorkbenchError(f"input '{name}': need min <= opt <= max in every dimension, got "
                                 f"min {format_shape(lo)}, opt {format_shape(opt)}, max {format_shape(hi)}")
        profile[name] = (tuple(lo), tuple(opt), tuple(hi))
    return profile


# -- timing cache and legacy calibration cache ---------------------------------------
def default_timing_cache_path(version: str | None = None, gpu: str | None = None,
                              cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the timing cache lives by default.

    Tactic timings depend on the TensorRT version and the GPU, not on the model, so one
    cache per (version, GPU) is shared by every build: ``<cache_dir>/trt-<version>-<gpu>.timing``.

    Args:
        version: TensorRT version (default: the installed one, ``"unknown"`` if none).
        gpu: GPU name (default: the first CUDA device, ``"unknown-gpu"`` if none).
        cache_dir: folder (default ``$WORKBENCH_CACHE_DIR`` or ``~/.cache/workbench/trt``).
    """
    version = version or trt_version() or "unknown"
    gpu = gpu or gpu_name() or "unknown-gpu"
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", f"{version}-{gpu}").strip("-").lower()
    root = Path(cache_dir) if cache_dir else Path(
        os.environ.get("WORKBENCH_CACHE_DIR") or Path.home() / ".cache" / "workbench") / "trt"
    return root / f"trt-{slug}.timing"


def read_cache_header(path: str | os.PathLike) -> tuple[int, str]:
    """(version, algorithm) of a calibration cache (``TRT-8600-EntropyCalibration2``), checked to
    be one TensorRT has a calibrator class for."""
    from ..cache import read_calibration_cache

    try:
        cache = read_calibration_cache(path)
    except WorkbenchError as exc:
        raise WorkbenchError(f"'{path}' is not a TensorRT calibration cache: {exc}") from None
    if cache.algorithm not in _CALIBRATOR_CLASSES:
        raise WorkbenchError(f"Calibration cache '{path}' uses algorithm '{cache.algorithm}'; the workbench "
                             f"can feed {', '.join(_CALIBRATOR_CLASSES)}")
    return cache.version, cache.algorithm


def _cache_only_calibrator(trt, cache: bytes, algorithm: str):
    """A calibrator that only hands TensorRT our cache and has no data to calibrate with."""
    base = getattr(trt, _CALIBRATOR_CLASSES[algorithm])

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


# -- build ---------------------------------------------------------------------------
@dataclass
class BuildReport:
    """What was built and how; saved next to the engine as ``<engine>.json``."""

    engine_path: str
    onnx_path: str
    onnx_sha256: str
    tensorrt_version: str
    gpu: str
    mode: str
    build_seconds: float
    engine_bytes: int
    profile: dict[str, dict[str, list[int]]]
    timing_cache: str | None
    timing_cache_existed: bool
    config: dict[str, Any]
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    return Path(f"{engine_path}.json")


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _polygraphy_call(loader, what: str):
    """Run a Polygraphy loader, turning its exceptions into one WorkbenchError."""
    from polygraphy.exception import PolygraphyException

    try:
        return loader()
    except PolygraphyException as exc:
        raise WorkbenchError(f"{what} failed: {exc}") from None


def build_mode(config: BuildConfig, major: int | None) -> str:
    """``"strongly_typed"``, ``"weakly_typed"`` or ``"legacy_int8"``; raises for legacy on TRT >= 11."""
    if config.legacy:
        if major is not None and major >= 11:
            raise WorkbenchError(LEGACY_REMOVED.format(version=major))
        return "legacy_int8"
    if major is not None and major >= 11:
        return "strongly_typed"
    return "strongly_typed" if config.strongly_typed else "weakly_typed"


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike,
                 config: BuildConfig | None = None) -> BuildReport:
    """Build a serialized engine from an ONNX model with Polygraphy's loaders and save it.

    The engine is written atomically, then ``<engine>.json`` (:class:`BuildReport`). The
    timing cache is loaded before and merged/saved after the build.

    Args:
        onnx_path: the exported Q/DQ / FP16 ONNX (or, for the legacy mode, the FP32 ONNX).
        engine_path: output file; must not be the ONNX itself.
        config: build settings (default :class:`BuildConfig()`).
    """
    config = config or BuildConfig()
    config.validate()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise WorkbenchError(f"ONNX model not found: '{onnx_path}'")
    refuse_overwrite(engine_path, onnx_path)
    if config.legacy:  # a cache for another network would silently give wrong scales
        from ..cache import check_calibration_cache
        from ..model import ModelInfo

        check_calibration_cache(config.legacy_int8_cache, ModelInfo.from_path(onnx_path))
    trt = _require_trt()
    from polygraphy.backend.trt import (CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath,
                                        Profile, SetLayerPrecisions)

    version = trt_version()
    mode = build_mode(config, version_major(version))
    ranges = resolve_profile(onnx_path, config)
    profile = Profile()
    for name, (lo, opt, hi) in ranges.items():
        profile.add(name, min=lo, opt=opt, max=hi)

    network = NetworkFromOnnxPath(str(onnx_path), strongly_typed=(mode == "strongly_typed"))
    kwargs: dict[str, Any] = {
        "profiles": [profile],
        "profiling_verbosity": getattr(trt.ProfilingVerbosity, config.profiling_verbosity.upper()),
    }
    if config.workspace_bytes:
        kwargs["memory_pool_limits"] = {trt.MemoryPoolType.WORKSPACE: int(config.workspace_bytes)}
    if config.builder_optimization_level is not None:
        kwargs["builder_optimization_level"] = config.builder_optimization_level
    calibrator = None
    if mode == "weakly_typed":
        kwargs.update(fp16=True, int8=True)  # Q/DQ decide INT8; the flags only allow the kernels
    elif mode == "legacy_int8":
        _, algorithm = read_cache_header(config.legacy_int8_cache)
        calibrator = _cache_only_calibrator(trt, Path(config.legacy_int8_cache).read_bytes(), algorithm)
        kwargs.update(int8=True, fp16=config.legacy_fp16, calibrator=calibrator)
        if config.layer_precisions:
            network = SetLayerPrecisions(network, {
                node: getattr(trt.DataType, _TRT_PRECISIONS[str(p).upper()])
                for node, p in config.layer_precisions.items()})
            kwargs["precision_constraints"] = "prefer"

    cache_path, cache_existed = None, False
    if config.use_timing_cache:
        cache_path = Path(config.timing_cache) if config.timing_cache else default_timing_cache_path()
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_existed = cache_path.is_file() and cache_path.stat().st_size > 0
        if cache_existed:
            kwargs["load_timing_cache"] = str(cache_path)

    start = time.perf_counter()
    serialized = _polygraphy_call(
        EngineBytesFromNetwork(network, config=CreateConfig(**kwargs),
                               save_timing_cache=str(cache_path) if cache_path else None),
        f"TensorRT build of '{onnx_path}'")
    seconds = time.perf_counter() - start
    if calibrator is not None and calibrator.batches_requested:
        raise WorkbenchError(
            f"TensorRT {version} did not accept the calibration cache '{config.legacy_int8_cache}' "
            f"(it asked for calibration data): the cache was written for another TensorRT version, "
            f"algorithm or network. Re-export it for this exact FP32 model.")
    data = bytes(serialized)
    atomic_write_bytes(engine_path, data)
    report = BuildReport(
        engine_path=str(engine_path), onnx_path=str(onnx_path), onnx_sha256=file_sha256(onnx_path),
        tensorrt_version=str(version), gpu=gpu_name() or "unknown", mode=mode,
        build_seconds=round(seconds, 3), engine_bytes=len(data),
        profile={n: {"min": list(a), "opt": list(b), "max": list(c)} for n, (a, b, c) in ranges.items()},
        timing_cache=str(cache_path) if cache_path else None, timing_cache_existed=cache_existed,
        config=config.to_dict())
    atomic_write_text(sidecar_path(engine_path), report.to_json())
    return report


def trt_build_command(onnx_path: str | os.PathLike, shapes: Mapping[str, Sequence[int]] | str | None = None,
                      trt_major: int | None = None, *, engine_path: str | os.PathLike | None = None,
                      timing_cache: str | os.PathLike | None = None) -> list[str]:
    """The equivalent ``trtexec`` and ``polygraphy convert`` command lines (strongly typed).

    Args:
        onnx_path: the Q/DQ / FP16 ONNX.
        shapes: opt shapes ({name: dims} or "name:1x3x224x224"); used as min=opt=max.
        trt_major: target TensorRT major version; 11 omits ``--stronglyTyped`` (always on
            there), None or 10 keeps it (required on 10, harmless on 11).
        engine_path: output engine (default: the ONNX path with ``.engine``).
        timing_cache: timing-cache file to load and save.
    """
    shapes = parse_shapes(shapes) if isinstance(shapes, str) else dict(shapes or {})
    engine = str(engine_path or Path(onnx_path).with_suffix(".engine"))
    trtexec = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine}"]
    if trt_major is None or trt_major < 11:
        trtexec.append("--stronglyTyped")
    if shapes:
        s = format_shapes(shapes)
        trtexec += [f"--minShapes={s}", f"--optShapes={s}", f"--maxShapes={s}"]
    if timing_cache:
        trtexec.append(f"--timingCacheFile={timing_cache}")
    trtexec += ["--profilingVerbosity=detailed", f"--exportLayerInfo={engine}.layers.json"]
    poly = ["polygraphy", "convert", str(onnx_path), "--strongly-typed", "-o", engine]
    if shapes:
        s = format_shapes(shapes, style="polygraphy").split(" ")
        for flag in ("--trt-min-shapes", "--trt-opt-shapes", "--trt-max-shapes"):
            poly += [flag, *s]
    if timing_cache:
        poly += ["--load-timing-cache", str(timing_cache), "--save-timing-cache", str(timing_cache)]
    poly += ["--profiling-verbosity", "detailed"]
    return [shlex.join(trtexec), shlex.join(poly)]


# -- run and inspect -------------------------------------------------------------------
def _read_engine(engine) -> bytes:
    if isinstance(engine, (bytes, bytearray, memoryview)):
        return bytes(engine)
    path = Path(engine)
    if not path.is_file():
        raise WorkbenchError(f"TensorRT engine not found: '{path}'")
    return path.read_bytes()


def _numpy_dtype(trt_dtype) -> np.dtype:
    from polygraphy.datatype import DataType

    return np.dtype(DataType.to_dtype(DataType.from_dtype(trt_dtype, "tensorrt"), "numpy"))


class TrtRunner(Runner):
    """Runs a serialized TensorRT engine with Polygraphy's ``TrtRunner`` (GPU).

    Args:
        engine: path to a ``.engine`` / ``.plan`` file, or its bytes.
        optimization_profile: profile index to use (default 0).
    """

    backend = "trt"
    latency_note = ("TensorRT GPU latency of one infer() call, including host<->device copies "
                    "(Polygraphy TrtRunner); trtexec reports pure GPU compute time.")

    def __init__(self, engine, *, optimization_profile: int = 0) -> None:
        super().__init__()
        self._source = engine
        self.optimization_profile = optimization_profile
        self.engine = None
        self._runner = None

    def _activate(self) -> None:
        self._trt = _require_trt("TensorRT inference")
        from polygraphy.backend.trt import EngineFromBytes
        from polygraphy.backend.trt import TrtRunner as PolygraphyTrtRunner

        self.engine = _polygraphy_call(EngineFromBytes(_read_engine(self._source)),
                                       "Loading the TensorRT engine")
        self._runner = PolygraphyTrtRunner(self.engine, optimization_profile=self.optimization_profile)
        _polygraphy_call(self._runner.activate, "Creating the TensorRT execution context")

    def _deactivate(self) -> None:
        if self._runner is not None:
            self._runner.deactivate()
        self._runner, self.engine = None, None

    def _io_names(self, mode) -> list[str]:
        names = (self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors))
        return [n for n in names if self.engine.get_tensor_mode(n) == mode]

    def _input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(n, _numpy_dtype(self.engine.get_tensor_dtype(n)),
                           tuple(int(d) if d >= 0 else None for d in self.engine.get_tensor_shape(n)))
                for n in self._io_names(self._trt.TensorIOMode.INPUT)]

    def _output_names(self) -> list[str]:
        return self._io_names(self._trt.TensorIOMode.OUTPUT)

    def _check_feed_extra(self, feed: dict[str, np.ndarray]) -> None:
        for name, arr in feed.items():
            try:
                lo, _, hi = self.engine.get_tensor_profile_shape(name, self.optimization_profile)
            except (RuntimeError, ValueError, TypeError):
                continue  # static engine without a profile: the generic checks are enough
            if any(not (a <= s <= b) for a, s, b in zip(lo, arr.shape, hi)):
                raise WorkbenchError(
                    f"input '{name}': shape {tuple(arr.shape)} is outside the engine's optimization "
                    f"profile (min {tuple(lo)}, max {tuple(hi)}); rebuild with --min-shapes/--max-shapes")

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = _polygraphy_call(lambda: self._runner.infer(feed), "TensorRT inference")
        # Polygraphy reuses its host buffers between calls: copy before returning.
        return {name: np.array(outputs[name], copy=True) for name in self.output_names}

    def inspector_json(self) -> str:
        """Engine-inspector JSON for this engine with the current input shapes set.

        Setting the context's shapes first makes TensorRT print formats instead of
        "N/A due to dynamic shapes"."""
        self.activate()
        context = self._runner.context
        for name in self._io_names(self._trt.TensorIOMode.INPUT):
            shape = tuple(context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                _, opt, _ = self.engine.get_tensor_profile_shape(name, self.optimization_profile)
                context.set_input_shape(name, tuple(opt))
        inspector = self.engine.create_engine_inspector()
        inspector.execution_context = context
        return inspector.get_engine_information(self._trt.LayerInformationFormat.JSON)


def inspect_engine(engine) -> str:
    """Engine-inspector JSON of a serialized engine (path or bytes); parse it with
    :func:`workbench.backends.trt_inspect.layers_dataframe`. Needs TensorRT and a GPU."""
    with TrtRunner(engine) as runner:
        return runner.inspector_json()


def runner_for(model, **kw) -> TrtRunner:
    """A TrtRunner for an engine file/bytes, or for an ONNX path built in memory first.

    For ONNX, ``kw`` are :class:`BuildConfig` fields and the engine is saved next to nothing:
    it is built into a temporary file that is removed after loading."""
    _require_trt("TensorRT backend")
    if isinstance(model, (str, os.PathLike)) and str(model).lower().endswith(".onnx"):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="workbench-trt-") as tmp:
            engine_path = Path(tmp) / "model.engine"
            build_engine(model, engine_path, BuildConfig(**kw))
            return TrtRunner(engine_path.read_bytes())
    return TrtRunner(model, **kw)
