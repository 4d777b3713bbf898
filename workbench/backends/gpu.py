"""Probe the NVIDIA GPU through the CUDA driver API (libcuda via ctypes), without crashing.

No CUDA toolkit or Python CUDA package is needed: when the driver library is missing or
``cuInit`` fails, :func:`probe_gpu` returns None and a reason that names what was missing.
:func:`rtx_runtime_check` says whether TensorRT-RTX can run an engine on that GPU.
"""
from __future__ import annotations

import ctypes
import platform
from dataclasses import dataclass

# Compute capabilities TensorRT-RTX engines run on by default (TensorRT-RTX documentation,
# "CPU-Only AOT and TensorRT-RTX Engines": 8.0, 8.6, 8.9, 12.0 and later). 7.5 (Turing) only
# with an engine built for it explicitly (compute_capabilities=["7.5"]).
RTX_DEFAULT_CCS = ((8, 0), (8, 6), (8, 9), (12, 0))
RTX_EXPLICIT_ONLY_CCS = ((7, 5),)

_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device: name, compute capability (major, minor) and driver version (e.g. 12080)."""

    name: str
    compute_capability: tuple[int, int]
    driver_version: int | None = None

    @property
    def cc(self) -> str:
        """``"8.6"``."""
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"

    def describe(self) -> str:
        return f"{self.name} (compute capability {self.cc})"


def format_ccs(ccs) -> str:
    """``((8, 0), (8, 6))`` -> ``"8.0, 8.6"``."""
    return ", ".join(f"{a}.{b}" for a, b in ccs)


RTX_SUPPORTED_TEXT = f"{format_ccs(RTX_DEFAULT_CCS)} or later 12.x (7.5 with an engine built for it)"


def parse_cc(text: str) -> tuple[int, int]:
    """``"8.6"`` -> ``(8, 6)``; ``"120"``/``"sm120"`` -> ``(12, 0)``. Raises ValueError."""
    text = str(text).strip().lower().removeprefix("sm_").removeprefix("sm")
    if "." in text:
        major, minor = text.split(".", 1)
        return int(major), int(minor)
    if text.isdigit() and len(text) >= 2:
        return int(text[:-1]), int(text[-1])
    raise ValueError(text)


def _load_libcuda():
    names = ["nvcuda.dll"] if platform.system() == "Windows" else ["libcuda.so.1", "libcuda.so"]
    errors = []
    for name in names:
        try:
            return ctypes.CDLL(name), None
        except OSError as exc:
            errors.append(str(exc))
    return None, f"no NVIDIA driver ({names[0]} cannot be loaded)"


def probe_gpu(device: int = 0) -> tuple[GpuInfo | None, str]:
    """(GpuInfo, "") for CUDA device ``device``, or (None, why there is none). Never raises."""
    lib, reason = _load_libcuda()
    if lib is None:
        return None, reason
    try:
        code = lib.cuInit(0)
        if code != 0:
            return None, f"the NVIDIA driver found no usable GPU (cuInit returned CUDA error {code})"
        count = ctypes.c_int()
        if lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value <= device:
            return None, f"no CUDA device {device} (the driver reports {count.value} devices)"
        dev, buf = ctypes.c_int(), ctypes.create_string_buffer(256)
        if lib.cuDeviceGet(ctypes.byref(dev), device) != 0 or lib.cuDeviceGetName(buf, 256, dev) != 0:
            return None, f"CUDA device {device} cannot be queried"
        major, minor, driver = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        lib.cuDeviceGetAttribute(ctypes.byref(major), _CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev)
        lib.cuDeviceGetAttribute(ctypes.byref(minor), _CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev)
        version = driver.value if lib.cuDriverGetVersion(ctypes.byref(driver)) == 0 else None
    except (AttributeError, OSError) as exc:  # a libcuda without these entry points
        return None, f"the NVIDIA driver library cannot be used ({exc})"
    return GpuInfo(buf.value.decode(errors="replace"), (major.value, minor.value), version), ""


def gpu_name(device: int = 0) -> str | None:
    """Name of CUDA device ``device``, or None if there is none."""
    info, _ = probe_gpu(device)
    return info.name if info else None


def rtx_runtime_check(gpu: GpuInfo | None, targets=None) -> str:
    """Why TensorRT-RTX cannot run an engine on ``gpu`` ("" when it can).

    Args:
        gpu: the probed GPU (None: no GPU).
        targets: the engine's target compute capabilities ((8, 6), ...); None: the default set.
    """
    supported = RTX_SUPPORTED_TEXT
    if gpu is None:
        return f"TensorRT-RTX runs engines on NVIDIA GPUs of compute capability {supported}"
    cc = gpu.compute_capability
    if targets:
        if cc in targets:
            return ""
        return (f"the engine was built for compute capability {format_ccs(targets)}; this GPU, "
                f"{gpu.describe()}, is not one of them: rebuild for {gpu.cc}")
    if cc in RTX_DEFAULT_CCS or cc[0] >= 12:
        return ""
    if cc in RTX_EXPLICIT_ONLY_CCS:
        return (f"{gpu.describe()} is a Turing GPU: TensorRT-RTX runs on it only with an engine "
                f"built for 7.5 (workbench build --compute-capability 7.5)")
    hint = " (Hopper)" if cc[0] == 9 else ""
    return (f"TensorRT-RTX does not support this GPU, {gpu.describe()}{hint}: it runs engines on compute "
            f"capability {supported}; use TensorRT 10/11 there (--trt-flavor trt)")
