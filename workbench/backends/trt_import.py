"""The one place where TensorRT is imported: ``tensorrt`` (TensorRT 10/11) or ``tensorrt_rtx``.

Like Polygraphy's ``lazy_import_trt``, every TensorRT user in the workbench asks this module
for the module object instead of writing ``import tensorrt``. Two flavors exist:

- ``"trt"``: NVIDIA TensorRT 10/11 (``pip install 'workbench[trt]'``); building and running
  need an NVIDIA GPU.
- ``"rtx"``: TensorRT for RTX (``pip install 'workbench[trt-rtx]'``, module ``tensorrt_rtx``);
  its builder runs without a GPU (ahead-of-time build for a list of compute capabilities),
  running needs an RTX-class GPU (see :mod:`workbench.backends.gpu`).

``flavor=None`` (or ``"auto"``) picks ``$WORKBENCH_TRT_FLAVOR`` when set, else the first
installed of ``tensorrt``, ``tensorrt_rtx``. Nothing is imported when this module is.
"""
from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from types import ModuleType

from .._optional import require
from ..errors import WorkbenchError

ENV_VAR = "WORKBENCH_TRT_FLAVOR"
GPU_NOTE = ("TensorRT also needs an NVIDIA GPU with a recent driver to run engines; on machines "
            "without one, use the ONNX Runtime backend (--backend ort).")


@dataclass(frozen=True)
class Flavor:
    """One TensorRT distribution: its key, Python module, display name, extra and pip package."""

    key: str
    module: str
    label: str
    extra: str
    package: str


FLAVORS: dict[str, Flavor] = {
    "trt": Flavor("trt", "tensorrt", "TensorRT", "trt", "tensorrt"),
    "rtx": Flavor("rtx", "tensorrt_rtx", "TensorRT-RTX", "trt-rtx", "tensorrt-rtx-cu13"),
}
AUTO_ORDER = ("trt", "rtx")


@dataclass(frozen=True)
class TrtModule:
    """An imported TensorRT module with its flavor and version."""

    flavor: Flavor
    module: ModuleType
    version: str

    @property
    def major(self) -> int | None:
        return version_major(self.version)

    def describe(self) -> str:
        """``"TensorRT-RTX 1.7.1.116"``: used in every message about a build or a run."""
        return f"{self.flavor.label} {self.version}"


def version_major(version: str | None) -> int | None:
    """``"10.13.0.35"`` -> 10; None for None or an unparsable string."""
    match = re.match(r"\s*(\d+)", version or "")
    return int(match.group(1)) if match else None


def flavor_info(key: str) -> Flavor:
    """The :class:`Flavor` for ``"trt"`` or ``"rtx"``; raises WorkbenchError for anything else."""
    if key not in FLAVORS:
        raise WorkbenchError(f"Unknown TensorRT flavor '{key}'; choose trt (TensorRT 10/11), "
                             f"rtx (TensorRT-RTX) or auto (whichever is installed)")
    return FLAVORS[key]


def _requested(flavor: str | None) -> str | None:
    """The explicit flavor asked for (argument, then environment), or None for auto."""
    flavor = flavor or os.environ.get(ENV_VAR) or None
    if flavor in (None, "", "auto"):
        return None
    return flavor_info(flavor).key


def _import(flavor: Flavor, feature: str) -> TrtModule:
    try:
        module = require(flavor.module, feature, flavor.extra, flavor.package)
    except WorkbenchError as exc:
        raise WorkbenchError(f"{exc}. {GPU_NOTE}") from None
    return TrtModule(flavor, module, str(getattr(module, "__version__", "unknown")))


def import_trt(flavor: str | None = None, feature: str = "TensorRT engine build") -> TrtModule:
    """Import TensorRT of the given flavor (``"trt"``, ``"rtx"``; None/``"auto"``: see module doc).

    Raises:
        WorkbenchError: naming the package(s) to install and the extra, without a traceback.
    """
    key = _requested(flavor)
    if key is not None:
        return _import(FLAVORS[key], feature)
    for key in AUTO_ORDER:
        try:
            module = importlib.import_module(FLAVORS[key].module)
        except ImportError:
            continue
        return TrtModule(FLAVORS[key], module, str(getattr(module, "__version__", "unknown")))
    raise WorkbenchError(
        f"The '{feature}' feature requires the 'tensorrt' package (TensorRT 10/11: pip install "
        f"'workbench[trt]') or the 'tensorrt-rtx-cu13' package (TensorRT-RTX, whose builder also works "
        f"without a GPU: pip install 'workbench[trt-rtx]'); neither 'tensorrt' nor 'tensorrt_rtx' "
        f"can be imported. {GPU_NOTE}")


def installed(flavor: str | None = None) -> TrtModule | None:
    """Like :func:`import_trt` but returns None instead of raising (never raises)."""
    try:
        return import_trt(flavor)
    except WorkbenchError:
        return None


def installed_flavors() -> dict[str, str]:
    """``{"rtx": "1.7.1.116"}``: every flavor importable here with its version."""
    found = {}
    for key in AUTO_ORDER:
        module = installed(key)
        if module is not None:
            found[key] = module.version
    return found
