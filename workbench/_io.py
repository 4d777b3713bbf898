"""Atomic file output: never leave a half-written file, never overwrite an input.

Every file-system failure while writing (read-only, disk full, not a folder, permission)
becomes one :class:`FileSystemError` naming the path the user asked for, not a traceback.
A result made of several files goes through :class:`workbench.outputs.ResultWriter`, which
uses these helpers for each file.
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from .errors import WorkbenchError

#: errno -> what it means for the user, in words.
_REASONS = {
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
    errno.EEXIST: "it already exists",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EFBIG: "the file is too large for this file system",
    errno.EXDEV: "it is on another file system",
    errno.ENOENT: "a folder on the path does not exist",
    errno.EIO: "an input/output error on the device",
}


class FileSystemError(WorkbenchError):
    """Writing (or reading) ``path`` failed for a file-system reason (``reason``, ``errno``)."""

    def __init__(self, path, reason: str, err: int | None = None, action: str = "write"):
        self.path = Path(path)
        self.reason = reason
        self.errno = err
        self.action = action
        super().__init__(f"Cannot {action} '{path}': {reason}.")

    def renamed(self, path, extra: str = "") -> "FileSystemError":
        """The same error reported for ``path`` (a staged file's final name), with ``extra`` added."""
        new = FileSystemError(path, self.reason, self.errno, self.action)
        if extra:
            new.args = (f"{new.args[0]} {extra}",)
        return new


def describe_os_error(exc: OSError) -> str:
    """A short reason for an OSError: its errno in words, else its strerror."""
    return _REASONS.get(exc.errno, (exc.strerror or str(exc)).rstrip(".").lower() or type(exc).__name__)


def fs_error(exc: OSError, path, action: str = "write") -> FileSystemError:
    """Turn ``exc`` (raised while doing ``action`` on ``path``) into a FileSystemError."""
    return FileSystemError(path, describe_os_error(exc), exc.errno, action)


def make_parents(path: Path) -> list:
    """Create the missing folders above ``path``; return the ones created (top first)."""
    missing = []
    parent = Path(path).parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise FileSystemError(path, f"'{parent}' is a file, not a folder", errno.ENOTDIR)
    created = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
    except OSError as exc:
        remove_folders(created)
        raise fs_error(exc, path) from None
    return created


def remove_folders(folders: list) -> None:
    """Remove folders created by :func:`make_parents` (deepest first) if they are empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    On any failure (or KeyboardInterrupt) the temporary file and folders this call created
    are removed and an existing ``path`` is untouched; OSErrors become FileSystemError.
    """
    path = Path(path)
    created = make_parents(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        remove_folders(created)
        if isinstance(exc, OSError):
            raise fs_error(exc, path) from None
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Text variant of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_onnx(model, path: str | os.PathLike) -> Path:
    """Serialize an ``onnx.ModelProto`` atomically (models over 2 GB are not supported here)."""
    try:
        data = model.SerializeToString()
    except ValueError as exc:  # protobuf refuses messages over 2 GB
        raise WorkbenchError(f"Cannot write '{path}': the model is too large to serialize ({exc}).") from None
    return atomic_write_bytes(path, data)


def _resolved(path) -> Path:
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return Path(os.path.abspath(path))


def not_inputs(paths, inputs) -> list:
    """The ``paths`` that are not inputs (see :func:`check_not_input`): the files a result may
    remove, never a user's input that carries a result's name."""
    from .errors import WorkbenchError

    out = []
    for p in paths:
        try:
            check_not_input(p, inputs)
        except WorkbenchError:
            continue
        out.append(p)
    return out


def check_not_input(path: str | os.PathLike, inputs) -> None:
    """Raise WorkbenchError when ``path`` resolves to an input file or lies inside an input folder.

    ``inputs``: paths, or ``(label, path)`` pairs (label e.g. "the model", "the data folder").
    Symlinks, ``..`` and hard links are seen through. This holds with or without overwrite.
    """
    target = _resolved(path)
    for item in inputs:
        label, src = item if isinstance(item, tuple) else (None, item)
        if src is None:
            continue
        src_path = Path(src)
        if not src_path.exists():
            continue
        real = _resolved(src_path)
        if src_path.is_dir():
            if target == real or real in target.parents:
                where = "is" if target == real else "is inside"
                raise WorkbenchError(
                    f"Refusing to write '{path}': it {where} {label or 'the input folder'} '{src}', which "
                    "this command reads. Choose an output outside it (--overwrite never writes into an input).")
            continue
        same = target == real
        if not same and target.exists():
            try:
                same = os.path.samefile(target, real)
            except OSError:
                same = False
        if same:
            what = f"{label} '{src}', an input file of this command" if label else \
                f"an input file of this command ('{src}')"
            raise WorkbenchError(f"Refusing to write '{path}': it is {what}. Choose a new output path "
                                 "(--overwrite never replaces an input).")


def refuse_overwrite(path: str | os.PathLike, *protected: str | os.PathLike | None) -> None:
    """Raise WorkbenchError when ``path`` is one of the user's input files (or inside an input folder).

    Kept for callers that write one file; a result of several files uses
    :class:`workbench.outputs.ResultWriter`, which runs the same check on every file.
    """
    check_not_input(path, [p for p in protected if p is not None])
