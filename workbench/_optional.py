"""The single place where optional, heavy dependencies are imported (lazily)."""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import WorkbenchError


def require(module: str, feature: str, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise one clear error naming the feature and the extra to install.

    Args:
        module: importable module name, e.g. ``"tensorrt"``.
        feature: what the user tried to use, e.g. ``"TensorRT engine build"``.
        extra: the ``workbench`` extra that installs it, e.g. ``"trt"``.
        package: the pip package name when it differs from ``module``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pkg = package or module
        raise WorkbenchError(
            f"The '{feature}' feature requires the '{pkg}' package. "
            f"Install it with pip install 'workbench[{extra}]'"
            f" (import of '{module}' failed: {exc})"
        ) from None
