"""Polygraphy-style data loader scripts (``FILE.py[:FUNC]``) and the shared script loader.

User code may do anything: an exception, ``sys.exit(n)`` or ``exit()`` while importing, calling
or iterating is reported as a WorkbenchError naming the script (Ctrl-C still interrupts). A
loader without a sample limit that keeps yielding gets one notice, since calibration reads
everything it yields.
"""
from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..errors import WorkbenchError
from ..graph.feeds import check_feed
from ..graph.model import ModelInfo
from .base import CalibrationData, DataWarning, hash_files

#: Samples a loader may yield without a limit before the notice that it may never end.
LARGE_UNLIMITED = 10_000


def parse_script_spec(spec: str, default: str = "load_data") -> tuple:
    """Split ``"file.py:func"`` into (Path, func); the function defaults to ``default``."""
    path, func = spec, default
    head, sep, tail = str(spec).rpartition(":")
    if sep and head and tail.isidentifier():
        path, func = head, tail
    return Path(path), func


def _raised(where: str, exc: BaseException, when: str) -> WorkbenchError:
    if isinstance(exc, SystemExit):
        code = exc.code
        return WorkbenchError(f"{where} called sys.exit({code!r}) {when}; a loader must return or "
                              "yield its data (raise an exception to report a problem).")
    return WorkbenchError(f"{where} raised {when}: {type(exc).__name__}: {exc}")


def load_function(spec: str, *, default: str = "load_data", what: str = "script") -> Callable:
    """Import ``FILE.py[:FUNC]`` and return FUNC, with errors naming the file and the function."""
    path, name = parse_script_spec(spec, default)
    if path.is_dir():
        raise WorkbenchError(f"{what} '{path}' is a folder; give a Python file, FILE.py[:FUNC] "
                             f"(e.g. '{path / 'load_data.py'}').")
    if not path.is_file():
        raise WorkbenchError(f"{what} '{path}' does not exist.")
    mod_name = f"_workbench_script_{abs(hash(str(path.resolve())))}"
    try:
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise WorkbenchError(f"{what} '{path}' is not a Python file (give FILE.py[:FUNC]).")
        module = importlib.util.module_from_spec(module_spec)
        keep, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in the user's folder
        try:
            module_spec.loader.exec_module(module)
        finally:
            sys.dont_write_bytecode = keep
    except WorkbenchError:
        raise
    except (Exception, SystemExit) as exc:
        if isinstance(exc, SystemExit):
            raise _raised(f"{what} '{path}'", exc, "while loading") from None
        raise WorkbenchError(f"{what} '{path}' raised while loading: {type(exc).__name__}: {exc}") from None
    func = getattr(module, name, None)
    if not callable(func):
        raise WorkbenchError(f"{what} '{path}' has no function '{name}' (use FILE.py:FUNC to name another).")
    return func


def call_user_function(func: Callable, where: str, *args, **kwargs):
    """``func(*args, **kwargs)``; exceptions and sys.exit become WorkbenchError naming ``where``."""
    try:
        return func(*args, **kwargs)
    except WorkbenchError:
        raise
    except (Exception, SystemExit) as exc:
        raise _raised(where, exc, "when called") from None


class ScriptData(CalibrationData):
    """A Polygraphy-style data loader script: ``FUNC()`` returns an iterable of feed dicts.

    Each yielded dict is one batch as the user made it (its first axis counts samples); batches
    are not re-batched, since sequence models often yield differently shaped batches.
    """

    kind = "script"

    def __init__(self, spec: str, model: ModelInfo, limit: int | None = None, allow_nonfinite: bool = False):
        super().__init__(model, limit, allow_nonfinite)
        self.path, self.func_name = parse_script_spec(spec)
        if self.path.is_dir():
            raise WorkbenchError(f"Data loader script '{self.path}' is a folder; give a Python file, "
                                 f"FILE.py[:FUNC] (e.g. '{self.path / 'load_data.py'}').")
        if not self.path.is_file():
            raise WorkbenchError(f"Data loader script '{self.path}' does not exist.")
        self._func = None

    def input_paths(self) -> list:
        return [("the data loader script", self.path)]

    def _load_func(self) -> Callable:
        if self._func is None:
            self._func = load_function(f"{self.path}:{self.func_name}", what="Data loader script")
        return self._func

    def iter_batches(self, batch_size: int = 8) -> Iterator[dict]:
        where = f"data loader '{self.path}:{self.func_name}'"
        items: Iterable = call_user_function(self._load_func(), where)
        try:
            iterator = iter(items)
        except TypeError:
            raise WorkbenchError(f"{where} returned {type(items).__name__}, not an iterable of "
                                 "{input name: array} batches.") from None
        emitted, index, noticed = 0, 0, False
        while self.limit is None or emitted < self.limit:
            try:
                feed = next(iterator)
            except StopIteration:
                break
            except WorkbenchError:
                raise
            except (Exception, SystemExit) as exc:
                raise _raised(where, exc, f"at item {index}") from None
            feed = check_feed(feed, self.model.inputs, where=f"{where}, item {index}", cast_same_kind=True)
            first = next(iter(feed.values()), None)
            n = first.shape[0] if first is not None and first.ndim else 1
            if self.limit is not None and emitted + n > self.limit:
                keep = self.limit - emitted
                feed = {k: v[:keep] for k, v in feed.items()}
                n = keep
            self.check_values(feed, f"{where}, item {index}", batched=True)
            emitted += n
            index += 1
            if self.limit is None and emitted >= LARGE_UNLIMITED and not noticed:
                noticed = True
                warnings.warn(
                    f"{where} has yielded {emitted} samples and no sample limit is set: every sample it "
                    "yields is used (an endless loader never finishes). Give --samples N "
                    "(calib_samples=N) to stop after N.", DataWarning, stacklevel=2)
            yield feed
        if index == 0:
            raise WorkbenchError(f"{where} yielded no data.")

    def fingerprint(self) -> str:
        # The script's output can depend on anything; its source and arguments are the best proxy.
        return hash_files([self.path], {"kind": self.kind, "func": self.func_name, "limit": self.limit})

    def describe(self) -> str:
        return f"batches from {self.path}:{self.func_name}"
