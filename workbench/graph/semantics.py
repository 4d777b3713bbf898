"""Which execution semantics produced a number.

Every accuracy figure of a Q/DQ model is computed with exact ONNX semantics: ONNX Runtime with
its graph optimizations off, so QuantizeLinear/DequantizeLinear compute exactly what the ONNX
spec (and TensorRT) compute, independent of the CPU. ONNX Runtime's optimized CPU path fuses
Q/DQ into u8s8 kernels that saturate on x86 CPUs without VNNI; it is used only for latency
and for judging the ``cpu_uint8`` deployment variant, and is labelled as such.
"""
from __future__ import annotations

import contextvars
from contextlib import contextmanager

EXACT = "disable"     # ONNX Runtime graph optimization level giving exact ONNX semantics
DEPLOYED = "all"      # ONNX Runtime's default CPU deployment (fused QLinear kernels)

LABELS = {
    EXACT: "exact ONNX semantics (ONNX Runtime, graph optimizations off)",
    DEPLOYED: "ONNX Runtime CPU as deployed (all graph optimizations)",
    "basic": "ONNX Runtime, basic graph optimizations",
    "extended": "ONNX Runtime, extended graph optimizations",
}

# When an ORT-optimized result differs from the exact one by more than this (dB of SQNR), say so.
DEPLOYED_GAP_DB = 1.0
SATURATION_HINT = ("ONNX Runtime's fused u8s8 integer kernels saturate on x86 CPUs without VNNI "
                   "(AVX2 only); TensorRT does not do this")


def describe(optimization: str) -> str:
    """A plain label for the semantics of ONNX Runtime graph optimization level ``optimization``."""
    return LABELS.get(optimization, f"ONNX Runtime, optimization '{optimization}'")


_DEPLOYED_PATH = contextvars.ContextVar("workbench_deployed_path", default=False)


@contextmanager
def deployed_path():
    """Marks ONNX Runtime sessions opened inside as deliberately on the deployed (optimized)
    path: latency, and judging the ``cpu_uint8`` file as deployed. The tests refuse a Q/DQ
    model opened with optimizations outside it (a judgement must use exact semantics)."""
    token = _DEPLOYED_PATH.set(True)
    try:
        yield
    finally:
        _DEPLOYED_PATH.reset(token)


def deployed_path_active() -> bool:
    """True inside :func:`deployed_path`."""
    return _DEPLOYED_PATH.get()
