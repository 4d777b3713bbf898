"""TensorRT backend (TensorRT 10/11 or TensorRT-RTX): the public names in one place.

The work is split by concern (see docs/TENSORRT.md):

- :mod:`.trt_import`: the one lazy import of ``tensorrt`` / ``tensorrt_rtx`` (flavors);
- :mod:`.gpu`: the GPU probe through libcuda (no crash without a driver);
- :mod:`.trt_status`: what can be done here (build, run, why not);
- :mod:`.trt_shapes`: shape strings and optimization profiles;
- :mod:`.trt_config`: :class:`BuildConfig`, build modes, timing-cache paths, legacy cache;
- :mod:`.trt_build` / :mod:`.trt_errors` / :mod:`.trt_buildlog`: the build, its errors and
  what the builder's log says about the engine;
- :mod:`.trt_runner`: running and inspecting an engine with Polygraphy (GPU);
- :mod:`.trt_inspect`: reading engine-inspector JSON (pure Python).

Importing this module imports no TensorRT. Nothing here fakes a TensorRT result.

Build modes:

- Strongly typed (default; the only mode on TensorRT 11 and TensorRT-RTX): the Q/DQ / FP16
  ONNX written by the workbench carries the precisions; no precision flags are set.
- TensorRT 10 weakly typed (``strongly_typed=False``): same ONNX, FP16+INT8 builder flags.
- Legacy implicit INT8 for TensorRT 8.6-10 (``legacy_int8_cache=...``): an FP32 ONNX, the
  workbench's calibration cache, optional per-layer precisions.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from .gpu import GpuInfo, gpu_name, probe_gpu
from .trt_build import BuildReport, build_engine, file_sha256, layers_path, sidecar_path
from .trt_config import LEGACY_REMOVED, BuildConfig, build_mode, default_timing_cache_path, read_cache_header
from .trt_import import FLAVORS, GPU_NOTE, import_trt, installed_flavors, version_major
from .trt_runner import TrtRunner, inspect_engine, runner_for
from .trt_shapes import Shape, format_shapes, parse_shapes, profile_from_model, resolve_profile
from .trt_status import TrtStatus, trt_available, trt_runtime_available, trt_status, trt_version

__all__ = ["BuildConfig", "BuildReport", "FLAVORS", "GPU_NOTE", "GpuInfo", "LEGACY_REMOVED", "Shape",
           "TrtRunner", "TrtStatus", "build_engine", "build_mode", "default_timing_cache_path",
           "file_sha256", "format_shapes", "gpu_name", "import_trt", "inspect_engine", "installed_flavors",
           "layers_path", "parse_shapes", "probe_gpu", "profile_from_model", "read_cache_header",
           "resolve_profile", "runner_for", "sidecar_path", "trt_available", "trt_build_command",
           "trt_runtime_available", "trt_status", "trt_version", "version_major"]


def trt_build_command(onnx_path: str | os.PathLike, shapes: Mapping[str, Sequence[int]] | str | None = None,
                      trt_major: int | None = None, *, engine_path: str | os.PathLike | None = None,
                      timing_cache: str | os.PathLike | None = None, flavor: str | None = None,
                      compute_capabilities: Sequence[str] = ()) -> list[str]:
    """The equivalent build commands for one target: [trtexec, polygraphy] for TensorRT 10/11,
    [polygraphy] for TensorRT-RTX. Taken from :func:`workbench.backends.commands.engine_build_commands`.

    Args:
        onnx_path: the Q/DQ / FP16 ONNX.
        shapes: opt shapes ({name: dims} or "name:1x3x224x224"); used as min=opt=max.
        trt_major: target TensorRT major version; 11 omits ``--stronglyTyped`` (always on
            there), None or 10 keeps it (required on 10, harmless on 11).
        engine_path: output engine (default: the ONNX path with ``.engine``).
        timing_cache: timing-cache file to load and save.
        flavor: ``"rtx"`` for TensorRT-RTX; anything else means TensorRT 10/11.
        compute_capabilities: TensorRT-RTX targets.
    """
    from .commands import engine_build_commands

    shapes = parse_shapes(shapes) if isinstance(shapes, str) else dict(shapes or {})
    cmds = engine_build_commands(onnx_path, engine_path, shapes=shapes, timing_cache=timing_cache,
                                 compute_capabilities=compute_capabilities, detailed=True)
    if flavor == "rtx":
        return [cmds["polygraphy (TensorRT-RTX)"]]
    version = "11" if trt_major is not None and trt_major >= 11 else "10"
    return [cmds[f"trtexec (TensorRT {version})"], cmds[f"polygraphy (TensorRT {version})"]]
