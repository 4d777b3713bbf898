"""Backends that run models: ONNX Runtime (always) and TensorRT / TensorRT-RTX through Polygraphy.

Importing this package never imports onnxruntime, tensorrt or tensorrt_rtx, nor the TensorRT
modules of the workbench; the TensorRT names below load on first use. Which backends exist is
the registry's business (:mod:`workbench.backends.registry`).

Layer 4, backends: owns runners (loader + runner), TensorRT's calibration-cache format
(``trt_cache``), the engine build/check commands (``commands``) and the CPU-kernel probe.
May import: graph, data, outputs and the top-level helpers.
"""
from __future__ import annotations

import importlib

from .base import LatencyStats, Runner, TensorSpec, check_feed
from .registry import BackendEntry, backend_names, backends, get_backend, get_runner, register_backend

#: Names of the built-in backends; use :func:`backend_names` to see registered plug-ins too.
BACKENDS = tuple(backend_names())

_LAZY = {
    "OrtRunner": ".ort", "OrtSessionLoader": ".ort",
    "BuildConfig": ".trt_config", "build_engine": ".trt_build", "BuildReport": ".trt_build",
    "parse_shapes": ".trt_shapes", "trt_available": ".trt_status",
    "trt_build_command": ".trt", "TrtRunner": ".trt_runner",
}

__all__ = ["BACKENDS", "LatencyStats", "Runner", "TensorSpec", "check_feed", "get_runner", "BackendEntry",
           "backend_names", "backends", "get_backend", "register_backend", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
