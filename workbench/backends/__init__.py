"""Backends that run models: ONNX Runtime (always) and TensorRT through Polygraphy (lazy).

Importing this package never imports onnxruntime or tensorrt; they load when a runner is
created or an engine is built.
"""
from .base import BACKENDS, LatencyStats, Runner, TensorSpec, check_feed, get_runner
from .ort import OrtRunner, OrtSessionLoader
from .trt import BuildConfig, build_engine, parse_shapes, trt_available, trt_build_command

__all__ = ["BACKENDS", "LatencyStats", "Runner", "TensorSpec", "check_feed", "get_runner",
           "OrtRunner", "OrtSessionLoader", "BuildConfig", "build_engine", "parse_shapes",
           "trt_available", "trt_build_command"]
