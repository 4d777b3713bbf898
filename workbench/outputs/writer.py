"""The output guard and the result unit: the files of one result appear together or not at all.

:class:`ResultWriter` is used by every writer (CLI commands, the Session, the app)::

    with ResultWriter([out / "ranges.json", out / "statistics.npz"],
                      inputs=input_paths(model, data), overwrite=args.overwrite) as result:
        ...                                     # the long computation
        ranges.save(result.path(out / "ranges.json"))
        stats.save(result.path(out / "statistics.npz"))
    # here both files are in place, or (on an error or Ctrl-C) neither is new

Before any work it checks every file of the result: none may resolve to an input (with or
without ``overwrite``), an existing file needs ``overwrite``, no output may be a folder or sit
below a file. It then takes a lock per output (an exclusively created ``.<name>.wb-lock`` next
to it) so that a second writer to the same output is refused with a clear message. Files are
written into a hidden staging folder next to the output (same file system) and moved into
place at :meth:`ResultWriter.commit`; folders that did not exist are created only then (one
rename of the staged folder). On a failure during the moves, the ones done are undone.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .._io import FileSystemError, fs_error
from ..errors import InternalError, WorkbenchError
from .guard import abs_path, anchor_and_head, check_outputs, external_data_files, input_paths, model_inputs
from .locks import LOCK_SUFFIX, STAGING_PREFIX, acquire_lock, deferred_interrupts, lock_path, sigterm_as_interrupt, unlink_quietly

__all__ = ["LOCK_SUFFIX", "STAGING_PREFIX", "ResultWriter", "check_outputs", "external_data_files",
           "input_paths", "model_inputs", "write_text_result"]


# ---------------------------------------------------------------------------- the result unit
class ResultWriter:
    """One result: declared files, staged next to their destination, moved into place together.

    Args:
        files: every file the result will contain (sidecars included); each writer must write
            exactly these, through :meth:`path`.
        inputs: what the command reads (see :func:`input_paths`); no output may resolve to one.
        overwrite: allow replacing existing files (never inputs).
        what: a few words for messages and the lock file ("calibration result").
        optional: files of the result that a run may not produce (checked and locked like the
            others); when one is not written, an older file of that name is removed at commit, so
            that it cannot be mistaken for part of the new result.
        folder: the output folder the user named, if the result is "the files of a folder".
        wait: seconds to wait for another writer's lock before refusing (default 0: refuse at
            once; the Session waits a little, since its own threads may save concurrently).

    Use as a context manager (commit on a clean exit, roll back on any exception, including
    KeyboardInterrupt), or call :meth:`open`, :meth:`commit` and :meth:`abort` yourself.
    """

    def __init__(self, files, *, inputs=(), overwrite: bool = False, what: str = "result",
                 folder=None, wait: float = 0.0, optional=()):
        self.declared = [f for f in list(files) + list(optional) if f is not None]
        self._optional = {abs_path(f) for f in optional if f is not None}
        self.folder = folder
        self.wait = float(wait)
        self.inputs = list(inputs)
        self.overwrite = bool(overwrite)
        self.what = what
        self.files: list = []       # absolute final paths
        self._anchor: dict = {}     # final path -> nearest existing folder
        self._head: dict = {}       # final path -> entry moved at commit
        self._staging: dict = {}    # anchor -> staging folder
        self._locks: list = []
        self._state = "new"
        self._signals = None

    # -- lifecycle
    def open(self) -> "ResultWriter":
        """Check every output (see :func:`check_outputs`) and lock them. Nothing is written."""
        if self._state != "new":
            raise InternalError(f"ResultWriter.open() called in state {self._state}")
        self.files = check_outputs(self.declared, self.inputs, overwrite=self.overwrite, folder=self.folder)
        for f in self.files:
            self._anchor[f], self._head[f] = anchor_and_head(f)
        try:
            for anchor, head in sorted({(self._anchor[f], self._head[f]) for f in self.files}):
                lock = lock_path(anchor, head)
                acquire_lock(lock, head, self.what, self.wait)
                self._locks.append(lock)
            # an output created between the check and the lock (a writer that just finished)
            check_outputs(self.declared, self.inputs, overwrite=self.overwrite, folder=self.folder)
        except BaseException:
            self._release()
            raise
        self._state = "open"
        return self

    def __enter__(self) -> "ResultWriter":
        self._signals = sigterm_as_interrupt()
        self._signals.__enter__()
        try:
            return self.open()
        except BaseException:
            self._signals.__exit__(None, None, None)
            raise

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                if self._state == "open":
                    self.commit()
                return False
            # name the user's path before abort() forgets which staged file stands for which
            user_error = self._user_error(exc) if isinstance(exc, (OSError, FileSystemError)) else None
            self.abort()
            if user_error is not None:
                raise user_error from None
            return False
        finally:
            self._signals.__exit__(None, None, None)

    def path(self, final) -> Path:
        """Where to write the declared output ``final`` now (a path inside the staging folder).

        A writer that also writes a sidecar next to it (``<file>.json``) lands in staging too;
        that sidecar must be declared as well, or :meth:`commit` raises InternalError.
        """
        if self._state != "open":
            raise InternalError(f"ResultWriter.path() called in state {self._state}")
        f = abs_path(final)
        if f not in self._anchor:
            raise InternalError(f"'{final}' is not a declared output of this {self.what}")
        anchor = self._anchor[f]
        staged = self._stage_dir(anchor) / f.relative_to(anchor)
        try:
            staged.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise fs_error(exc, f) from None
        return staged

    def _stage_dir(self, anchor: Path) -> Path:
        if anchor not in self._staging:
            try:
                self._staging[anchor] = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-",
                                                              dir=anchor))
            except OSError as exc:
                raise fs_error(exc, anchor / "<output>").renamed(anchor, "(cannot create files there)") from None
        return self._staging[anchor]

    def _final_of(self, staged: Path):
        for anchor, stage in self._staging.items():
            try:
                return anchor / Path(staged).relative_to(stage)
            except ValueError:
                continue
        return None

    def _staged_files(self) -> dict:
        out = {}
        for anchor, stage in self._staging.items():
            for root, _, names in os.walk(stage):
                for n in names:
                    out[anchor / (Path(root) / n).relative_to(stage)] = Path(root) / n
        return out

    def commit(self) -> list:
        """Move every staged file into place (all or none) and release the locks; return the paths."""
        if self._state != "open":
            raise InternalError(f"ResultWriter.commit() called in state {self._state}")
        try:
            staged = self._staged_files()
            extra = sorted(str(p) for p in staged if p not in self._anchor)
            missing = sorted(str(p) for p in self.files if p not in staged and p not in self._optional)
            if extra or missing:
                raise InternalError(f"{self.what}: files written but not declared: {extra or '-'}; "
                                    f"declared but not written: {missing or '-'}")
            with deferred_interrupts():
                self._move_into_place(set(staged))
        except BaseException:
            self.abort()
            raise
        self._cleanup()
        self._state = "committed"
        return list(self.files)

    def _move_into_place(self, staged: set) -> None:
        undo: list = []
        heads = sorted({(self._anchor[f], self._head[f]) for f in self.files})
        current = None
        try:
            for anchor, head in heads:
                current = head
                if head in self._optional and head not in staged:
                    if head.exists() or head.is_symlink():  # an older run's file: not part of this result
                        backup = self._stage_dir(anchor) / f".wb-backup-{head.name}"
                        os.replace(head, backup)
                        undo.append(lambda h=head, b=backup: os.replace(b, h))
                    continue
                if not any(f == head or head in f.parents for f in staged):
                    continue  # a folder holding only optional files that were not written
                src = self._staging[anchor] / head.relative_to(anchor)
                if head in self._anchor:  # a file whose folder exists
                    if head.exists() or head.is_symlink():
                        if not self.overwrite:
                            raise WorkbenchError(f"'{head}' was created by someone else while this "
                                                 f"{self.what} was being made; nothing was written.")
                        backup = self._staging[anchor] / f".wb-backup-{head.name}"
                        _keep_copy(head, backup)
                        os.replace(src, head)
                        undo.append(lambda h=head, b=backup, s=src: (os.replace(h, s), os.replace(b, h)))
                    else:
                        os.replace(src, head)
                        undo.append(lambda h=head, s=src: os.replace(h, s))
                else:  # a new folder: one rename makes all its files appear together
                    if head.exists():
                        raise WorkbenchError(f"'{head}' was created by someone else while this "
                                             f"{self.what} was being made; nothing was written.")
                    os.rename(src, head)
                    undo.append(lambda h=head, s=src: os.rename(h, s))
            for anchor in {a for a, _ in heads}:
                _fsync_dir(anchor)
        except BaseException as exc:
            for step in reversed(undo):
                try:
                    step()
                except OSError:
                    pass
            if isinstance(exc, OSError):
                raise fs_error(exc, current).renamed(
                    current, f"Nothing was written (files of this {self.what} that already existed are unchanged)."
                ) from None
            raise

    def abort(self) -> None:
        """Drop everything staged and release the locks (existing files were never touched)."""
        if self._state in ("committed", "aborted"):
            return
        self._cleanup()
        self._state = "aborted"

    def _cleanup(self) -> None:
        for stage in self._staging.values():
            shutil.rmtree(stage, ignore_errors=True)
        self._staging.clear()
        self._release()

    def _release(self) -> None:
        for lock in self._locks:
            unlink_quietly(lock)
        self._locks = []

    def _user_error(self, exc) -> WorkbenchError:
        """An OSError / FileSystemError raised while writing a staged file, named by its final path."""
        staged = exc.path if isinstance(exc, FileSystemError) else getattr(exc, "filename", None)
        final = self._final_of(Path(staged)) if staged else None
        if final is not None and final.name.startswith(".") and final.name.endswith(".tmp"):
            final = final.parent  # the writer's own temporary name: report the folder
        target = final or (Path(staged) if staged else (self.files[0] if self.files else Path(".")))
        err = exc if isinstance(exc, FileSystemError) else fs_error(exc, target)
        return err.renamed(target, "Nothing was written (existing files are unchanged).")

    @property
    def staged(self) -> bool:
        return bool(self._staging)


def _keep_copy(src: Path, backup: Path) -> None:
    """Keep ``src`` at ``backup`` (a hard link when possible, else a copy) without moving it."""
    try:
        os.link(src, backup, follow_symlinks=False)
    except OSError:
        if src.is_symlink():
            os.symlink(os.readlink(src), backup)
        else:
            shutil.copy2(src, backup)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_result(path, text: str, *, inputs=(), overwrite: bool = False, what: str = "file") -> Path:
    """One text file as a result: guarded, locked and atomic (see :class:`ResultWriter`)."""
    from .._io import atomic_write_text

    with ResultWriter([path], inputs=inputs, overwrite=overwrite, what=what) as result:
        atomic_write_text(result.path(path), text)
    return Path(path)
