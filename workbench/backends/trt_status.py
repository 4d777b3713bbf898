"""What TensorRT can do on this machine: build engines, run them, neither (and why).

- ``tensorrt`` (TensorRT 10/11) needs an NVIDIA GPU for both (its builder times kernels).
- ``tensorrt_rtx`` builds without a GPU (ahead of time, for a set of compute capabilities);
  running, timing and layer inspection need a GPU it supports (8.0, 8.6, 8.9, 12.x; not
  Hopper 9.0).

:func:`trt_status` never raises; the CLI, the Session and the app print its ``reason``.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import WorkbenchError
from .gpu import RTX_SUPPORTED_TEXT, GpuInfo, probe_gpu, rtx_runtime_check
from .trt_import import GPU_NOTE, import_trt

RUN_NEEDS_GPU = "running, timing and layer inspection of the engine need a supported NVIDIA GPU"


@dataclass(frozen=True)
class TrtStatus:
    """Availability of one TensorRT flavor here.

    Attributes:
        flavor: ``"trt"`` / ``"rtx"``, or None when no TensorRT is installed.
        label: ``"TensorRT-RTX 1.7.1.116"`` (flavor and version), or ``"TensorRT"``.
        version: the module's version, or None.
        gpu: the probed GPU, or None.
        can_build: an engine can be built here.
        can_run: an engine can be deserialized and run here.
        reason: one sentence for the user: what works, what does not and why.
    """

    flavor: str | None
    label: str
    version: str | None
    gpu: GpuInfo | None
    can_build: bool
    can_run: bool
    reason: str

    @property
    def build_only(self) -> bool:
        return self.can_build and not self.can_run


def trt_status(flavor: str | None = None, *, gpu: GpuInfo | None = None,
               gpu_reason: str | None = None) -> TrtStatus:
    """Probe the installed TensorRT of ``flavor`` (None/"auto": whichever is installed) and the GPU.

    Args:
        flavor: ``"trt"``, ``"rtx"`` or None/``"auto"``.
        gpu / gpu_reason: a GPU to assume instead of probing (for tests and for explaining a
            GPU seen elsewhere); by default the first CUDA device is probed.
    """
    try:
        module = import_trt(flavor)
    except WorkbenchError as exc:
        return TrtStatus(None if flavor in (None, "auto") else flavor, "TensorRT", None, None,
                         False, False, str(exc))
    if gpu is None and gpu_reason is None:
        gpu, gpu_reason = probe_gpu()
    label = module.describe()
    key = module.flavor.key
    if key == "rtx":
        problem = rtx_runtime_check(gpu)
        if gpu is not None and not problem:
            return TrtStatus(key, label, module.version, gpu, True, True, f"{label} on {gpu.describe()}")
        why = problem if gpu is not None else f"{gpu_reason}; {RUN_NEEDS_GPU} (TensorRT-RTX: compute " \
            f"capability {RTX_SUPPORTED_TEXT})"
        return TrtStatus(key, label, module.version, gpu, True, False, f"{label}, build only here: {why}.")
    if gpu is None:
        return TrtStatus(key, label, module.version, None, False, False,
                         f"{label} is installed but {gpu_reason}: TensorRT 10/11 needs an NVIDIA GPU "
                         f"to build and to run engines. {GPU_NOTE} TensorRT-RTX (--trt-flavor rtx, "
                         f"pip install 'workbench[trt-rtx]') builds engines without a GPU.")
    return TrtStatus(key, label, module.version, gpu, True, True, f"{label} on {gpu.describe()}")


def trt_available(flavor: str | None = None) -> tuple[bool, str]:
    """(True, reason) when engines can be *built* here (possibly build-only), else (False, reason).

    Never raises; the UI and CLI use the reason to show what works."""
    status = trt_status(flavor)
    return status.can_build, status.reason


def trt_runtime_available(flavor: str | None = None) -> tuple[bool, str]:
    """(True, reason) when engines can be run, timed and inspected here, else (False, reason)."""
    status = trt_status(flavor)
    return status.can_run, status.reason


def trt_version(flavor: str | None = None) -> str | None:
    """Version of the installed TensorRT of ``flavor`` (None when not importable)."""
    status = trt_status(flavor, gpu_reason="not probed")
    return status.version
