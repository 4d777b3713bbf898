"""Atomic file output: never leave a half-written file, never overwrite an input."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import WorkbenchError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Text variant of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_onnx(model, path: str | os.PathLike) -> Path:
    """Serialize an ``onnx.ModelProto`` atomically (models over 2 GB are not supported here)."""
    return atomic_write_bytes(path, model.SerializeToString())


def refuse_overwrite(path: str | os.PathLike, *protected: str | os.PathLike | None) -> None:
    """Raise WorkbenchError when ``path`` is one of the user's input files."""
    target = Path(path).resolve()
    for p in protected:
        if p is not None and Path(p).exists() and Path(p).resolve() == target:
            raise WorkbenchError(
                f"Refusing to write '{path}': it is an input file ({p}). Choose a new output path."
            )
