"""Messages beside the control they concern: errors, warnings and notes, styled; Python warnings
raised while the app works are caught here instead of printed raw in the notebook cell.

:func:`captured_warnings` collects the warnings raised *in the calling thread* while its block
runs (the task thread, a quick callback, a preview) and hands them back as :class:`Message`
objects; warnings raised elsewhere go where they always went. It is safe with several threads
capturing at once: the hook is installed by the first and removed by the last.

:class:`MessageArea` is the widget that shows a list of messages (``wb-messages``; each message
``wb-message`` with ``data-level`` error / warning / note), replaced as a whole on every
:meth:`MessageArea.show`, so an error disappears when a later action succeeds.
"""
from __future__ import annotations

import contextlib
import html
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from .._optional import require

w = require("ipywidgets", "workbench app", "ui")

#: level -> (icon, text colour, background, border)
LEVEL_STYLE = {
    "error": ("✖", "#8a0000", "#fdecec", "#e99"),
    "warning": ("⚠", "#5c4100", "#fff6d6", "#e0b000"),
    "note": ("ℹ", "#333", "#f2f6fa", "#bcd"),
}
#: warning categories people read as something other than their class name
_CATEGORY_WORDS = {"RuntimeWarning": "numerical warning", "UserWarning": "warning"}


@dataclass(frozen=True)
class Message:
    """One line for the user: ``level`` (error, warning, note), ``text``, and where it came from
    (``source``: e.g. "calibration warning, from collector.py"; shown small after the text)."""

    level: str
    text: str
    source: str = ""


def warning_message(message, category, filename: str = "") -> Message:
    """The :class:`Message` of a caught Python warning (its text, its kind in words, its file)."""
    name = getattr(category, "__name__", str(category))
    kind = _CATEGORY_WORDS.get(name) or " ".join(
        "".join(f" {c.lower()}" if c.isupper() else c for c in name).split())  # CalibrationWarning -> words
    where = f", from {Path(filename).name}" if filename else ""
    return Message("warning", str(message).strip(), f"{kind}{where}")


_local = threading.local()
_lock = threading.Lock()
_state = {"depth": 0, "saved": None}
#: categories shown at every occurrence while captured (Python's default shows each location once)
_ALWAYS = (("always", None, UserWarning, None, 0), ("always", None, RuntimeWarning, None, 0))


def _show(message, category, filename, lineno, file=None, line=None):
    sink = getattr(_local, "sink", None)
    if sink is None:  # another thread's warning: as Python would show it
        saved = _state["saved"] or warnings.showwarning
        return saved(message, category, filename, lineno, file, line)
    item = warning_message(message, category, filename)
    if item not in sink:
        sink.append(item)


@contextlib.contextmanager
def captured_warnings():
    """``with captured_warnings() as caught:`` the warnings raised in this thread inside the block
    become :class:`Message` items of ``caught`` (duplicates once), instead of raw text in the cell."""
    sink: list = []
    with _lock:
        if _state["depth"] == 0:
            _state["saved"] = warnings.showwarning
            warnings.showwarning = _show
            for f in _ALWAYS:
                warnings.filterwarnings(f[0], category=f[2])
        _state["depth"] += 1
    outer = getattr(_local, "sink", None)
    _local.sink = sink
    try:
        yield sink
    finally:
        _local.sink = outer
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                warnings.showwarning = _state["saved"]
                _state["saved"] = None
                for f in _ALWAYS:
                    with contextlib.suppress(ValueError):
                        warnings.filters.remove(f)


def messages_html(messages, compact: bool = False) -> str:
    """The HTML of ``messages`` (one styled block each; "" for none). ``compact``: one line each,
    the whole text on a click (a ``<details>`` block), where the space is needed for other things."""
    out = []
    for m in messages:
        icon, color, bg, border = LEVEL_STYLE.get(m.level, LEVEL_STYLE["note"])
        src = f" <span style='color:#777;font-size:11px'>({html.escape(m.source)})</span>" if m.source else ""
        style = (f"color:{color};background:{bg};border:1px solid {border};border-radius:3px;padding:2px 8px;"
                 "margin:2px 0;font-size:12px")
        if compact:
            out.append(f"<details class='wb-message' data-level='{m.level}' style='{style}' title='{html.escape(m.text)}'>"
                       "<summary style='white-space:nowrap;overflow:hidden;text-overflow:ellipsis;cursor:pointer'>"
                       f"{icon} {html.escape(m.text)}</summary>{src}</details>")
        else:
            out.append(f"<div class='wb-message' data-level='{m.level}' style='{style}'>"
                       f"{icon} {html.escape(m.text)}{src}</div>")
    return "".join(out)


class MessageArea:
    """A place for messages beside a control: ``widget`` (an HTML widget with class
    ``wb-messages`` plus ``css_class``), ``messages`` (what it shows), :meth:`show` to replace them;
    ``compact``: one line per message, opened on a click.

    Two groups are kept apart: ``task`` messages (the last action's error and warnings, replaced by
    the next action) and ``state`` messages (facts of the session's state, e.g. the ranges' guard
    warnings, replaced when the state is redrawn)."""

    def __init__(self, css_class: str = "", *, compact: bool = False):
        self.compact = compact
        self.widget = w.HTML("", layout=w.Layout(width="100%", min_width="0"))
        self.widget.add_class("wb-messages")
        if css_class:
            self.widget.add_class(css_class)
        self._groups = {"state": [], "task": []}

    @property
    def messages(self) -> list:
        return self._groups["task"] + self._groups["state"]

    def show(self, messages, group: str = "task") -> None:
        """Replace the ``group`` ("task" or "state") messages with ``messages``."""
        self._groups[group] = list(messages)
        self.widget.value = messages_html(self.messages, self.compact)

    def clear(self, group: str = "task") -> None:
        self.show([], group)

    def texts(self, level: str | None = None) -> list:
        """The texts shown (of ``level`` only, when given), for scripts and tests."""
        return [m.text for m in self.messages if level is None or m.level == level]
