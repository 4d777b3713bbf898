"""Locks next to outputs (a second writer is refused) and interrupt handling while writing.

A lock is a file ``.<name>.wb-lock`` created exclusively (``O_EXCL``) next to the output, holding
the writer's pid, host and start time. A lock left by a process that no longer runs on this
machine is stale and taken over (with the staging folders that process left).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .._io import fs_error
from ..errors import WorkbenchError

LOCK_SUFFIX = ".wb-lock"
STAGING_PREFIX = ".wb-tmp-"


# ---------------------------------------------------------------------------- locks
def lock_path(anchor: Path, head: Path) -> Path:
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


def acquire_lock(lock: Path, head: Path, what: str, wait: float = 0.0) -> None:
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
            unlink_quietly(lock)
            raise fs_error(exc, head).renamed(head, "Nothing was written.") from None
        return


def _remove_stale(lock: Path, holder: dict) -> None:
    """Remove a dead run's lock and the staging folders it left in the same folder."""
    for leftover in lock.parent.glob(f"{STAGING_PREFIX}{holder.get('pid')}-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    unlink_quietly(lock)


def unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# ---------------------------------------------------------------------------- interrupts
@contextmanager
def sigterm_as_interrupt():
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
def deferred_interrupts():
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
