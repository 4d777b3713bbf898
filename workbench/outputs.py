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

import errno
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from ._io import FileSystemError, check_not_input, fs_error
from .errors import InternalError, WorkbenchError

LOCK_SUFFIX = ".wb-lock"
STAGING_PREFIX = ".wb-tmp-"
_EXTERNAL_CACHE: dict = {}


# ---------------------------------------------------------------------------- inputs
def model_inputs(model_info, label: str = "the model") -> list:
    """``(label, path)`` for a model's file and its external-data files (none without a path)."""
    path = getattr(model_info, "path", None)
    if path is None:
        return []
    return [(label, Path(path))] + [(f"{label}'s external data", p) for p in external_data_files(Path(path))]


def external_data_files(path: Path) -> list:
    try:
        st = path.stat()
    except OSError:
        return []
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _EXTERNAL_CACHE:
        found = []
        if st.st_size < (256 << 20):  # a model with external data has a small main file
            try:
                import onnx
                from onnx.external_data_helper import _get_all_tensors, uses_external_data

                proto = onnx.load(str(path), load_external_data=False)
                for t in _get_all_tensors(proto):
                    if uses_external_data(t):
                        loc = next((e.value for e in t.external_data if e.key == "location"), None)
                        if loc:
                            found.append(path.parent / loc)
            except Exception:  # unreadable models are reported by load_model, not here
                found = []
        _EXTERNAL_CACHE[key] = sorted(set(found))
    return list(_EXTERNAL_CACHE[key])


def input_paths(model=None, data=None, *others, **labelled) -> list:
    """Everything a command reads, as ``(label, path)`` pairs for the guard.

    Args:
        model: a ModelInfo (its file and external data), or None.
        data: a CalibrationData (its folder or loader script, see ``CalibrationData.input_paths``),
            or None; several may be given in ``others``.
        others: more ModelInfo / CalibrationData objects, paths, or ``(label, path)`` pairs.
        labelled: ``label=path`` (e.g. ``ranges=args.ranges``); None values are skipped.
    """
    out: list = []
    for item in (model, data, *others):
        if item is None:
            continue
        if hasattr(item, "input_paths"):
            out += item.input_paths()
        elif hasattr(item, "fingerprint") and hasattr(item, "path"):
            out += model_inputs(item)
        elif isinstance(item, tuple):
            out.append(item)
        else:
            out.append(("an input", Path(item)))
    out += [(f"the {k.replace('_', ' ')} file", Path(v)) for k, v in labelled.items() if v is not None]
    return out


# ---------------------------------------------------------------------------- the guard
def _anchor_and_head(path: Path) -> tuple:
    """(nearest existing folder, the entry moved into it at commit: the file or its top missing folder)."""
    head, parent = path, path.parent
    while not parent.exists() and parent != parent.parent:
        head, parent = parent, parent.parent
    if not parent.is_dir():
        raise FileSystemError(path, f"'{parent}' is a file, not a folder", errno.ENOTDIR)
    return parent, head


def check_outputs(files, inputs=(), *, overwrite: bool = False, folder=None) -> list:
    """Check every file of one result before anything is written; return them as absolute Paths.

    Raises WorkbenchError when a file resolves to an input (always), is a folder, lies below a
    file, appears twice, or exists without ``overwrite`` (one message listing every such file;
    ``folder``: the output folder the user named, for that message).
    """
    out, seen, existing = [], {}, []
    for f in files:
        if f is None:
            continue
        p = Path(os.path.abspath(os.path.expanduser(str(f))))
        check_not_input(f, inputs)
        key = os.path.realpath(p)
        if key in seen:
            raise WorkbenchError(f"Two outputs of this result are the same file: '{seen[key]}' and '{f}'.")
        seen[key] = f
        if p.is_dir():
            raise WorkbenchError(f"Cannot write '{f}': it is a folder; give a file path.")
        _anchor_and_head(p)
        if p.exists() or p.is_symlink():
            existing.append(str(f))
        out.append(p)
    if existing and not overwrite:
        if folder is not None:
            what = f"Output folder '{folder}' already has {', '.join(Path(e).name for e in existing)}"
        else:
            what = f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}"
        raise WorkbenchError(f"{what}; choose a new output path or pass --overwrite (overwrite=True). "
                             "Nothing was written.")
    return out


# ---------------------------------------------------------------------------- locks
def _lock_path(anchor: Path, head: Path) -> Path:
    return anchor / f".{head.name}{LOCK_SUFFIX}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _read_lock(lock: Path) -> dict:
    try:
        return json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _is_stale(holder: dict) -> bool:
    """A lock whose process is gone (same machine only; a foreign or unreadable lock is kept)."""
    pid = holder.get("pid")
    return isinstance(pid, int) and holder.get("host") == socket.gethostname() and not _pid_alive(pid)


def _acquire_lock(lock: Path, head: Path, what: str, wait: float = 0.0) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "what": what, "output": str(head)}
    deadline, stale_removed = time.monotonic() + wait, False
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(lock)
            if not stale_removed and _is_stale(holder):
                stale_removed = True
                _remove_stale(lock, holder)
                continue
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            who = (f"process {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"
                   if holder else "another process")
            raise WorkbenchError(
                f"'{head}' is being written by another workbench run ({who}); wait for it to finish or "
                f"choose another output. If no such run exists, delete the lock file '{lock}'.") from None
        except OSError as exc:
            raise fs_error(exc, head).renamed(head, "Nothing was written.") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(info, fh)
        except OSError as exc:
            _unlink(lock)
            raise fs_error(exc, head).renamed(head, "Nothing was written.") from None
        return


def _remove_stale(lock: Path, holder: dict) -> None:
    """Remove a dead run's lock and the staging folders it left in the same folder."""
    for leftover in lock.parent.glob(f"{STAGING_PREFIX}{holder.get('pid')}-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    _unlink(lock)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# ---------------------------------------------------------------------------- interrupts
@contextmanager
def _sigterm_as_interrupt():
    """While a result is being made, SIGTERM cleans up like Ctrl-C (main thread, default handler only)."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def _deferred_interrupts():
    """Hold Ctrl-C / SIGTERM during the moves of a commit; deliver them after (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list = []
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if received:
        raise KeyboardInterrupt(f"signal {received[0]} (after the result was complete)")


# ---------------------------------------------------------------------------- the result unit
class ResultWriter:
    """One result: declared files, staged next to their destination, moved into place together.

    Args:
        files: every file the result will contain (sidecars included); each writer must write
            exactly these, through :meth:`path`.
        inputs: what the command reads (see :func:`input_paths`); no output may resolve to one.
        overwrite: allow replacing existing files (never inputs).
        what: a few words for messages and the lock file ("calibration result").
        folder: the output folder the user named, if the result is "the files of a folder".
        wait: seconds to wait for another writer's lock before refusing (default 0: refuse at
            once; the Session waits a little, since its own threads may save concurrently).

    Use as a context manager (commit on a clean exit, roll back on any exception, including
    KeyboardInterrupt), or call :meth:`open`, :meth:`commit` and :meth:`abort` yourself.
    """

    def __init__(self, files, *, inputs=(), overwrite: bool = False, what: str = "result",
                 folder=None, wait: float = 0.0):
        self.declared = [f for f in files if f is not None]
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
            self._anchor[f], self._head[f] = _anchor_and_head(f)
        try:
            for anchor, head in sorted({(self._anchor[f], self._head[f]) for f in self.files}):
                lock = _lock_path(anchor, head)
                _acquire_lock(lock, head, self.what, self.wait)
                self._locks.append(lock)
            # an output created between the check and the lock (a writer that just finished)
            check_outputs(self.declared, self.inputs, overwrite=self.overwrite, folder=self.folder)
        except BaseException:
            self._release()
            raise
        self._state = "open"
        return self

    def __enter__(self) -> "ResultWriter":
        self._signals = _sigterm_as_interrupt()
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
            self.abort()
            if isinstance(exc, OSError) or isinstance(exc, FileSystemError):
                raise self._user_error(exc) from None
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
        f = Path(os.path.abspath(os.path.expanduser(str(final))))
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
            missing = sorted(str(p) for p in self.files if p not in staged)
            if extra or missing:
                raise InternalError(f"{self.what}: files written but not declared: {extra or '-'}; "
                                    f"declared but not written: {missing or '-'}")
            with _deferred_interrupts():
                self._move_into_place()
        except BaseException:
            self.abort()
            raise
        self._cleanup()
        self._state = "committed"
        return list(self.files)

    def _move_into_place(self) -> None:
        undo: list = []
        heads = sorted({(self._anchor[f], self._head[f]) for f in self.files})
        current = None
        try:
            for anchor, head in heads:
                current = head
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
            _unlink(lock)
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
    from ._io import atomic_write_text

    with ResultWriter([path], inputs=inputs, overwrite=overwrite, what=what) as result:
        atomic_write_text(result.path(path), text)
    return Path(path)
