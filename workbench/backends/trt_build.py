"""Build a TensorRT / TensorRT-RTX engine from an ONNX file and save it with its build record.

The builder is driven directly (``Builder`` + ``OnnxParser`` + ``IBuilderConfig``) with a
logger that keeps every message, so that a failure becomes one WorkbenchError naming the ONNX
node(s) and TensorRT's own words, and so that what the builder reports about the engine
(its per-layer table on TensorRT-RTX, memory totals, warnings) lands in the build record.
The printed equivalent commands (``polygraphy convert``, ``trtexec``) come from
:mod:`workbench.backends.commands`.

Without a usable GPU, TensorRT-RTX still builds (build-only mode): the record then says that
running, timing and layer inspection need a supported GPU.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes, atomic_write_text
from ..outputs.names import layers_path, sidecar_path  # noqa: F401  (re-exported: engine records)
from ..errors import WorkbenchError
from .gpu import RTX_DEFAULT_CCS, format_ccs, rtx_runtime_check
from .trt_buildlog import BUILDER_LOG_SOURCE, layers_from_log, memory_from_log, not_int8, weight_precisions
from .trt_config import BuildConfig, build_mode, default_timing_cache_path
from .trt_errors import build_error, parse_error
from .trt_import import TrtModule, import_trt
from .trt_shapes import resolve_profile
from .trt_status import RUN_NEEDS_GPU, TrtStatus, trt_status


@dataclass
class BuildReport:
    """What was built and how; saved next to the engine as ``<engine>.json``.

    ``tensorrt`` is flavor + version (``"TensorRT-RTX 1.7.1.116"``); ``targets`` the compute
    capabilities the engine was built for; ``runnable_here`` / ``runtime_note`` whether this
    machine can run it; ``builder_layers`` what the builder's log says about the engine's
    layers (None when the log has no layer table); ``fp32`` the same build of the FP32 model.
    """

    engine_path: str
    onnx_path: str
    onnx_sha256: str
    flavor: str
    tensorrt: str
    tensorrt_version: str
    gpu: str
    mode: str
    build_seconds: float
    engine_bytes: int
    profile: dict[str, dict[str, list[int]]]
    targets: list[str]
    runnable_here: bool
    runtime_note: str
    timing_cache: str | None
    timing_cache_existed: bool
    config: dict[str, Any]
    builder_memory: dict[str, int] = field(default_factory=dict)
    builder_layers: dict[str, Any] | None = None
    builder_warnings: list[str] = field(default_factory=list)
    fp32: dict[str, Any] | None = None
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def describe(self) -> str:
        """A few lines for the CLI and the Session: what, how big, how long, what next."""
        lines = [f"Built {self.engine_path} ({self.engine_bytes / 1e6:.1f} MB) in {self.build_seconds:.2f} s "
                 f"with {self.tensorrt} ({self.mode}; targets: {', '.join(self.targets)}; GPU: {self.gpu})"]
        if self.fp32:
            lines.append(f"FP32 engine built the same way: {self.fp32['engine_bytes'] / 1e6:.1f} MB in "
                         f"{self.fp32['build_seconds']:.2f} s (this engine is {self.fp32['size_ratio']:.2f}x "
                         f"its size)")
        if self.builder_layers:
            b = self.builder_layers
            prec = ", ".join(f"{k} {v}" for k, v in b["precisions"].items())
            lines.append(f"Builder log: {b['layers']} engine layers by input precision: {prec}; weighted "
                         f"layers by weight type: {', '.join(f'{k} {v}' for k, v in b['weights'].items())} "
                         f"(table: {b['path']})")
            if b.get("qdq_nodes_not_int8"):
                odd = ", ".join(f"{n} ({p or 'not in the table'})" for n, p in b["qdq_nodes_not_int8"].items())
                lines.append(f"Q/DQ nodes TensorRT did not run in INT8: {odd}")
        if not self.runnable_here:
            lines.append(f"Build only: {self.runtime_note}")
        return "\n".join(lines)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _capturing_logger(trt):
    class CapturingLogger(trt.ILogger):
        """Keeps (severity, message) of every builder/parser message; prints nothing."""

        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: list[tuple[str, str]] = []

        def log(self, severity, msg):
            self.messages.append((getattr(severity, "name", str(severity)), str(msg)))

    return CapturingLogger()


def _targets(trt, status: TrtStatus, config: BuildConfig) -> tuple[list | None, list[str]]:
    """(ComputeCapability values to set or None for TensorRT's default, their description)."""
    if status.flavor != "rtx":
        return None, [f"the GPU present ({status.gpu.describe()})" if status.gpu else "the GPU present"]
    ccs = config.target_ccs()
    if ccs is None or (not ccs and status.can_run):
        if not status.can_run:
            raise WorkbenchError(f"--compute-capability current needs a supported GPU here: {status.reason}")
        return [trt.ComputeCapability.CURRENT], [status.gpu.cc]
    if not ccs:
        return None, [f"default: {format_ccs(RTX_DEFAULT_CCS)} and later"]
    values = []
    for major, minor in ccs:
        value = getattr(trt.ComputeCapability, f"SM{major}{minor}", None)
        if value is None:
            known = [n[2:-1] + "." + n[-1] for n in trt.ComputeCapability.__members__ if n.startswith("SM")]
            raise WorkbenchError(f"{status.label} cannot build for compute capability {major}.{minor}; "
                                 f"it knows: {', '.join(known)}")
        values.append(value)
    return values, [f"{a}.{b}" for a, b in ccs]


def _runtime_note(mod: TrtModule, status: TrtStatus, config: BuildConfig, targets) -> str:
    """Why this machine cannot run the engine just built ("" when it can)."""
    if status.gpu is None:
        return status.reason
    if mod.flavor.key != "rtx" or (targets and targets[0] == mod.module.ComputeCapability.CURRENT):
        return ""
    problem = rtx_runtime_check(status.gpu, config.target_ccs() or None)
    return f"{problem}; {RUN_NEEDS_GPU}." if problem else ""


def _build_serialized(mod: TrtModule, onnx_path: Path, config: BuildConfig, mode: str, profile_shapes: dict,
                      targets, cache_bytes: bytes | None):
    """One build: (engine bytes, timing-cache bytes or None, seconds, messages). Raises WorkbenchError."""
    trt = mod.module
    logger = _capturing_logger(trt)
    builder = trt.Builder(logger)
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    flags = 1 << int(flag) if (mode == "strongly_typed" and flag is not None) else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise parse_error(mod, onnx_path, parser, logger.messages)
    bconfig = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile_shapes.items():
        profile.set_shape(name, lo, opt, hi)
    bconfig.add_optimization_profile(profile)
    bconfig.profiling_verbosity = getattr(trt.ProfilingVerbosity, config.profiling_verbosity.upper())
    if config.workspace_bytes:
        bconfig.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(config.workspace_bytes))
    if config.builder_optimization_level is not None:
        bconfig.builder_optimization_level = int(config.builder_optimization_level)
    if targets:
        bconfig.num_compute_capabilities = len(targets)
        for i, value in enumerate(targets):
            bconfig.set_compute_capability(value, i)
    calibrator = None
    if mode == "weakly_typed":  # Q/DQ decide INT8; the flags only allow the kernels
        bconfig.set_flag(trt.BuilderFlag.FP16)
        bconfig.set_flag(trt.BuilderFlag.INT8)
    elif mode == "legacy_int8":
        calibrator = _legacy_setup(trt, network, bconfig, config)
    cache = None
    if cache_bytes is not None:
        cache = bconfig.create_timing_cache(cache_bytes)
        bconfig.set_timing_cache(cache, ignore_mismatch=False)
    start = time.perf_counter()
    try:
        serialized = builder.build_serialized_network(network, bconfig)
    except Exception as exc:  # the bindings raise for some API misuse instead of returning None
        logger.messages.append(("ERROR", str(exc)))
        serialized = None
    seconds = time.perf_counter() - start
    if serialized is None:
        error = build_error(mod, onnx_path, network, logger.messages)
        if mod.flavor.key == "rtx":
            _reset_after_failure(trt)
        raise error
    if calibrator is not None and calibrator.batches_requested:
        raise WorkbenchError(
            f"{mod.describe()} did not accept the calibration cache '{config.legacy_int8_cache}' "
            f"(it asked for calibration data): the cache was written for another TensorRT version, "
            f"algorithm or network. Re-export it for this exact FP32 model.")
    new_cache = bytes(bconfig.get_timing_cache().serialize()) if cache is not None else None
    return bytes(serialized), new_cache, seconds, [m for _, m in logger.messages], logger.messages


def _reset_after_failure(trt) -> None:
    """Build a one-layer network after a failed TensorRT-RTX build.

    Measured with TensorRT-RTX 1.7.1: the first build after a failed one in the same process
    ignores the Q/DQ of the network (the sample's INT8 export came out as a 46.6 MB engine
    with FP32 convolutions instead of 19.1 MB with INT8 ones); any successful build in between
    restores normal builds. tests/test_trt_build.py checks this."""
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    x = network.add_input("x", trt.float32, (1, 4))
    network.mark_output(network.add_activation(x, trt.ActivationType.RELU).get_output(0))
    builder.build_serialized_network(network, builder.create_builder_config())


def _legacy_setup(trt, network, bconfig, config: BuildConfig):
    """TensorRT 8.6-10 implicit INT8 from the workbench's calibration cache (+ layer precisions)."""
    from .trt_config import TRT_PRECISIONS, cache_only_calibrator, read_cache_header

    _, algorithm = read_cache_header(config.legacy_int8_cache)
    calibrator = cache_only_calibrator(trt, Path(config.legacy_int8_cache).read_bytes(), algorithm)
    bconfig.set_flag(trt.BuilderFlag.INT8)
    if config.legacy_fp16:
        bconfig.set_flag(trt.BuilderFlag.FP16)
    bconfig.int8_calibrator = calibrator
    if config.layer_precisions:
        by_name = {network.get_layer(i).name: network.get_layer(i) for i in range(network.num_layers)}
        for node, precision in config.layer_precisions.items():
            if node not in by_name:
                raise WorkbenchError(f"--layer-precision: the network has no layer '{node}' "
                                     f"(e.g. {', '.join(list(by_name)[:5])})")
            by_name[node].precision = getattr(trt.DataType, TRT_PRECISIONS[str(precision).upper()])
        bconfig.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
    return calibrator


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike,
                 config: BuildConfig | None = None, *, overwrite: bool = True, inputs=()) -> BuildReport:
    """Build a serialized engine from an ONNX model and save it with its build record.

    Writes ``engine_path``, ``<engine>.json`` (:class:`BuildReport`) and, when the builder log
    has a layer table, ``<engine>.layers.json`` (readable by ``workbench inspect-engine``).
    The timing cache is loaded before and saved after the build.

    Args:
        onnx_path: the exported Q/DQ / FP16 ONNX (or, for the legacy mode, the FP32 ONNX).
        engine_path: output file; must not be the ONNX itself.
        config: build settings (default :class:`BuildConfig()`), including the flavor.
        overwrite: replace an existing engine and its records (default True: rebuilding into
            the same file is the usual loop); inputs are never replaced.
        inputs: more ``(label, path)`` inputs no output may resolve to (the ONNX, the legacy
            cache and the FP32 model are always protected).

    Raises:
        WorkbenchError: for missing files, settings the flavor cannot do, no usable builder
            here, or a parser/builder failure (naming the ONNX node(s) and TensorRT's message).
    """
    config = config or BuildConfig()
    config.validate()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise WorkbenchError(f"ONNX model not found: '{onnx_path}'")
    from ..outputs.writer import check_outputs, input_paths

    protected = input_paths(onnx_path, *inputs, calibration_cache=config.legacy_int8_cache,
                            fp32_model=config.compare_fp32)
    outputs = [engine_path, sidecar_path(engine_path), layers_path(engine_path)]
    check_outputs(outputs, protected, overwrite=overwrite)  # before any work
    if config.legacy:  # a cache for another network would silently give wrong scales
        from .trt_cache import check_calibration_cache
        from ..graph.model import ModelInfo

        check_calibration_cache(config.legacy_int8_cache, ModelInfo.from_path(onnx_path))
    mod = import_trt(config.flavor)
    status = trt_status(mod.flavor.key)
    if not status.can_build:
        raise WorkbenchError(f"Cannot build a TensorRT engine here: {status.reason}")
    mode = build_mode(config, mod.major, mod.flavor.key)
    profile_shapes = resolve_profile(onnx_path, config)
    targets, target_text = _targets(mod.module, status, config)

    cache_path, cache_bytes = None, None
    if config.use_timing_cache and mod.flavor.key != "rtx":  # timing caches are no-ops in TensorRT-RTX
        cache_path = Path(config.timing_cache) if config.timing_cache else default_timing_cache_path(
            mod.version, status.gpu.name if status.gpu else None, flavor=mod.flavor.key)
        cache_bytes = cache_path.read_bytes() if cache_path.is_file() else b""
    data, new_cache, seconds, messages, tagged = _build_serialized(
        mod, onnx_path, config, mode, profile_shapes, targets, cache_bytes)
    fp32 = _fp32_comparison(mod, config, mode, targets, new_cache, len(data)) if config.compare_fp32 else None

    runtime_note = _runtime_note(mod, status, config, targets)
    layer_info = layers_from_log(messages)
    summary = None
    if layer_info is not None:
        from .trt_inspect import layers_dataframe, precision_summary

        df = layers_dataframe(layer_info)
        summary = {"source": BUILDER_LOG_SOURCE, "layers": int(len(df)),
                   "precisions": {k: int(v) for k, v in precision_summary(df).items()},
                   "weights": weight_precisions(layer_info), "path": str(layers_path(engine_path)),
                   "qdq_nodes_not_int8": not_int8(layer_info, onnx_path)}
    report = BuildReport(
        engine_path=str(engine_path), onnx_path=str(onnx_path), onnx_sha256=file_sha256(onnx_path),
        flavor=mod.flavor.key, tensorrt=mod.describe(), tensorrt_version=mod.version,
        gpu=status.gpu.describe() if status.gpu else "none", mode=mode, build_seconds=round(seconds, 3),
        engine_bytes=len(data),
        profile={n: {"min": list(a), "opt": list(b), "max": list(c)} for n, (a, b, c) in profile_shapes.items()},
        targets=target_text, runnable_here=not runtime_note, runtime_note=runtime_note,
        timing_cache=str(cache_path) if cache_path else None,
        timing_cache_existed=bool(cache_bytes), config=config.to_dict(), builder_memory=memory_from_log(messages),
        builder_layers=summary, builder_warnings=[m for s, m in tagged if s == "WARNING"][:50], fp32=fp32)
    _save(engine_path, data, report, layer_info, protected, overwrite)
    if cache_path is not None and new_cache:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cache_path, new_cache)
    return report


def _fp32_comparison(mod: TrtModule, config: BuildConfig, mode: str, targets, cache_bytes, engine_bytes):
    """Build ``config.compare_fp32`` with the same settings (in memory) for size and time."""
    path = Path(config.compare_fp32)
    profile_shapes = resolve_profile(path, config)
    data, _, seconds, _, _ = _build_serialized(mod, path, config, "strongly_typed" if mode != "legacy_int8"
                                               else mode, profile_shapes, targets, cache_bytes)
    return {"onnx_path": str(path), "engine_bytes": len(data), "build_seconds": round(seconds, 3),
            "size_ratio": round(engine_bytes / len(data), 4)}


def _save(engine_path: Path, data: bytes, report: BuildReport, layer_info, inputs, overwrite: bool) -> None:
    """Engine, build record and layer table are one result: they appear together or not at all."""
    from ..outputs.writer import ResultWriter

    files = [engine_path, sidecar_path(engine_path)] + ([layers_path(engine_path)] if layer_info else [])
    with ResultWriter(files, inputs=inputs, overwrite=overwrite, what="TensorRT engine") as result:
        atomic_write_bytes(result.path(engine_path), data)
        if layer_info is not None:
            atomic_write_text(result.path(layers_path(engine_path)), json.dumps(layer_info, indent=1))
        atomic_write_text(result.path(sidecar_path(engine_path)), report.to_json())
    if layer_info is None:  # no stale table from an earlier build of another engine
        layers_path(engine_path).unlink(missing_ok=True)
