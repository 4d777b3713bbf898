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
