"""Checks of user-given settings, run before any work and before any state changes.

The CLI argument groups and the Session call these first, so a bad value is refused with a
message naming the setting, instead of failing after a long collection or sticking in a
session's settings.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import WorkbenchError


def check_positive_int(value, what: str, *, allow_none: bool = False):
    """``value`` as an int > 0 (None passes with ``allow_none``); WorkbenchError naming ``what``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) <= 0:
        raise WorkbenchError(f"{what} must be a positive whole number, got {value!r}.")
    return int(value)


def check_nonnegative_int(value, what: str):
    """``value`` as an int >= 0; WorkbenchError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 0:
        raise WorkbenchError(f"{what} must be a whole number >= 0, got {value!r}.")
    return int(value)


def check_percentile(value, what: str = "The percentile (--percentile)", *, allow_none: bool = False):
    """``value`` as a float in (0, 100] (the percentile range method's p)."""
    if value is None and allow_none:
        return None
    try:
        p = float(value)
    except (TypeError, ValueError):
        p = math.nan
    if isinstance(value, bool) or not (0.0 < p <= 100.0):
        raise WorkbenchError(f"{what} must be a number in (0, 100], e.g. 99.99; got {value!r}.")
    return p


def check_choice(value, choices, what: str):
    """``value`` if it is one of ``choices``; WorkbenchError listing them."""
    if value not in tuple(choices):
        raise WorkbenchError(f"{what} must be one of {', '.join(map(str, choices))}; got {value!r}.")
    return value


def check_path(value, what: str):
    """``value`` if it is a path (str or os.PathLike); WorkbenchError naming ``what`` otherwise."""
    import os

    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise WorkbenchError(f"{what} must be a file or folder path (a str or pathlib.Path), got {value!r}.")
    return value


def _type_names(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = [getattr(t, "__name__", str(t)) for t in types]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def check_type(value, types, what: str, *, expected: str | None = None, allow_none: bool = False):
    """``value`` if it is an instance of ``types``; WorkbenchError naming ``what``, the expected type
    (``expected``: in words, e.g. "a ModelInfo (ModelInfo.from_path(path))") and what was given.
    A bool is refused where a number is expected."""
    if value is None and allow_none:
        return None
    listed = types if isinstance(types, tuple) else (types,)
    bool_for_number = isinstance(value, bool) and bool not in listed and (int in listed or float in listed)
    if bool_for_number or not isinstance(value, types):
        raise WorkbenchError(f"{what} must be {expected or 'of type ' + _type_names(types)}, "
                             f"got {type(value).__name__} {_short(value)}.")
    return value


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_bool(value, what: str, *, allow_none: bool = False):
    """``value`` if it is True or False (None passes with ``allow_none``)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise WorkbenchError(f"{what} must be True or False, got {type(value).__name__} {_short(value)}.")
    return bool(value)


def check_text(value, what: str, *, allow_none: bool = False, example: str = ""):
    """``value`` if it is a non-empty str; WorkbenchError naming ``what`` (with ``example``)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value.strip():
        hint = f", e.g. {example}" if example else ""
        raise WorkbenchError(f"{what} must be a non-empty string{hint}; got {type(value).__name__} "
                             f"{_short(value)}.")
    return value


def check_names(value, what: str):
    """One name or a list/tuple/set of names (str) as a list; WorkbenchError naming ``what``."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise WorkbenchError(f"{what} must be a name (str) or a list of names, got {type(value).__name__} "
                         f"{_short(value)}.")


def check_number(value, what: str, *, positive: bool = False):
    """``value`` as a finite float (> 0 with ``positive``); WorkbenchError naming ``what``."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (v > 0 or not positive)
    if not ok:
        kind = "a finite number > 0" if positive else "a finite number"
        raise WorkbenchError(f"{what} must be {kind}, got {type(value).__name__} {_short(value)}.")
    return float(value)


def check_new_file(path, what: str, *, overwrite: bool = False):
    """``path`` as a Path for a file to write: a path (str or PathLike), not a folder, and not an
    existing file unless ``overwrite`` (the API's default is to refuse, as the CLI's)."""
    from pathlib import Path

    p = Path(check_path(path, what))
    check_bool(overwrite, "overwrite")
    if p.is_dir():
        raise WorkbenchError(f"Cannot write {what} to '{p}': it is a folder; give a file path.")
    if (p.exists() or p.is_symlink()) and not overwrite:
        raise WorkbenchError(f"'{p}' already exists; choose a new path or pass overwrite=True to replace "
                             f"it. Nothing was written.")
    return p
