"""Backend registry: ``name -> runner factory, available() -> (bool, reason)``.

``get_runner``, the CLI's ``--backend`` choices and the app's backend list all read this
table, so adding a backend is one :func:`register_backend` call (plus its runner module and
test). Factories import their backend lazily: listing the backends, or checking one, never
imports ONNX Runtime or TensorRT unless asked.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable

from ..errors import WorkbenchError


@dataclass(frozen=True)
class BackendEntry:
    """One backend.

    Attributes:
        name: the key used by ``--backend`` and ``get_runner`` (``"ort"``, ``"trt"``).
        label: display name (``"ONNX Runtime"``).
        description: one line for ``--help`` and tooltips.
        factory: ``factory(model, **kw) -> Runner``.
        available: ``available() -> (bool, reason)``; never raises. For TensorRT, True means
            engines can be built here (running may still need a GPU: see ``runnable``).
        runnable: ``runnable() -> (bool, reason)``: runners can execute here (default: ``available``).
    """

    name: str
    label: str
    description: str
    factory: Callable
    available: Callable[[], tuple[bool, str]]
    runnable: Callable[[], tuple[bool, str]] | None = None

    def can_run(self) -> tuple[bool, str]:
        return (self.runnable or self.available)()


_REGISTRY: dict[str, BackendEntry] = {}


def register_backend(entry: BackendEntry) -> None:
    """Add ``entry``; a second backend under the same name is refused (InternalError-worthy,
    but it is a plug-in author's mistake, so it is a WorkbenchError)."""
    if entry.name in _REGISTRY:
        raise WorkbenchError(f"A backend named '{entry.name}' is already registered")
    _REGISTRY[entry.name] = entry


def backend_names() -> list[str]:
    """Registered backend names, in registration order (the CLI's ``--backend`` choices)."""
    return list(_REGISTRY)


def backends() -> list[BackendEntry]:
    return list(_REGISTRY.values())


def get_backend(name: str) -> BackendEntry:
    """The entry for ``name``; WorkbenchError listing the registered names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise WorkbenchError(f"Unknown backend '{name}'; choose one of: {', '.join(_REGISTRY)}") from None


def get_runner(model, backend: str = "ort", **kw):
    """Create a runner for ``model`` on the chosen backend.

    Args:
        model: for ``"ort"``: an ONNX path, serialized bytes or ``onnx.ModelProto``.
            For ``"trt"``: a serialized engine (``.engine`` / ``.plan`` path or bytes), or an
            ONNX path, which is then built in memory with ``kw`` passed to ``BuildConfig``.
        backend: a registered name (see :func:`backend_names`).
        **kw: forwarded to the backend's factory.

    Raises:
        WorkbenchError: for an unknown backend, or when the backend cannot run here.
    """
    return get_backend(backend).factory(model, **kw)


# -- built-in backends ---------------------------------------------------------------
def _ort_factory(model, **kw):
    from .ort import OrtRunner

    return OrtRunner(model, **kw)


def _ort_available() -> tuple[bool, str]:
    if importlib.util.find_spec("onnxruntime") is None:
        return False, "onnxruntime is not installed (pip install onnxruntime)"
    return True, "ONNX Runtime on the CPU"


def _trt_factory(model, **kw):
    from .trt_runner import runner_for

    return runner_for(model, **kw)


def _trt_available() -> tuple[bool, str]:
    from .trt_status import trt_available

    return trt_available()


def _trt_runnable() -> tuple[bool, str]:
    from .trt_status import trt_runtime_available

    return trt_runtime_available()


register_backend(BackendEntry(
    "ort", "ONNX Runtime", "ONNX Runtime on the CPU (always available)", _ort_factory, _ort_available))
register_backend(BackendEntry(
    "trt", "TensorRT", "TensorRT 10/11 or TensorRT-RTX through Polygraphy (building needs the tensorrt "
    "or tensorrt-rtx package; running needs a supported NVIDIA GPU)", _trt_factory, _trt_available,
    _trt_runnable))
