"""Running session work from widgets: background thread, progress with rate and ETA, Cancel,
readable errors, and a throttle for live previews.

Long work (calibration, rebuild, sensitivity, auto search) runs in a thread so the notebook
stays responsive; the progress bar, its "12/49 nodes · 0.8/s · about 45 s left" line and
the Cancel button follow it. Errors are shown in the app as one readable message
(``WorkbenchError`` text as is; an unexpected exception as its type and message, with the
traceback folded away), never as a traceback in the cell. Python warnings raised by the work
(``CalibrationWarning``, numpy's ``RuntimeWarning``, ...) are caught in the task's thread and shown
as styled messages (:mod:`workbench.ui.messages`) beside the control that started it.
"""
from __future__ import annotations

import html
import threading
import time
import traceback
from typing import Callable

from .._optional import require
from ..errors import Cancelled, WorkbenchError
from .messages import Message, MessageArea, captured_warnings
from .style import fmt_seconds

w = require("ipywidgets", "workbench app", "ui")


class ProgressClock:
    """Done/total, rate and ETA of a task from its progress calls (pure: no widgets).

    Args:
        unit: what is counted ("samples", "nodes", "evaluations"), for the text.
        clock: time source (default ``time.perf_counter``; tests pass a fake one).
    """

    def __init__(self, unit: str = "", clock: Callable[[], float] = time.perf_counter):
        self.unit, self.clock = unit, clock
        self.started = clock()
        self.done, self.total = 0, None
        self._first: tuple | None = None  # (time, done) of the first report: rate excludes set-up time

    def update(self, done, total=None) -> None:
        now = self.clock()
        self.done, self.total = int(done), (int(total) if total else None)
        if self._first is None:
            self._first = (now, self.done)

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    @property
    def rate(self) -> float | None:
        """Units per second since the first report (None until two reports apart)."""
        if self._first is None:
            return None
        t0, d0 = self._first
        dt, dd = self.clock() - t0, self.done - d0
        if dd <= 0 or dt <= 0:
            # one report only: count from the start of the task
            return self.done / self.elapsed if self.done and self.elapsed > 0 else None
        return dd / dt

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (None when unknown)."""
        r = self.rate
        if not self.total or not r:
            return None
        return max(self.total - self.done, 0) / r

    def text(self) -> str:
        """"12/49 nodes · 0.8/s · about 45 s left" (parts that are unknown are left out)."""
        parts = [f"{self.done}/{self.total}" if self.total else f"{self.done}"]
        if self.unit:
            parts[0] += f" {self.unit}"
        r = self.rate
        if r:
            parts.append(f"{r:.3g}/s" if r >= 1 else f"{1 / r:.2g} s each")
        eta = self.eta
        if eta is not None and self.done < (self.total or 0):
            parts.append(f"about {fmt_seconds(eta)} left")
        parts.append(f"{fmt_seconds(self.elapsed)} so far")
        return " · ".join(parts)


class TaskRunner:
    """Runs one task at a time and shows its progress and outcome.

    Args:
        blocking: run tasks in the calling thread (for scripts, tests and headless notebook
            runs); default False: a background thread.
    """

    def __init__(self, *, blocking: bool = False):
        self.blocking = blocking
        self.progress = w.IntProgress(value=0, min=0, max=1, description="",
                                      layout=w.Layout(width="180px", display="none"))
        self.progress.add_class("wb-progress")
        self.status = w.HTML("Ready.", layout=w.Layout(flex="1 1 auto", min_width="200px"))
        self.status.add_class("wb-status")
        self.cancel_button = w.Button(description="Cancel", icon="stop", disabled=True,
                                      tooltip="stop the running task; work done so far is kept where possible",
                                      layout=w.Layout(width="auto", flex="0 0 auto"))
        self.cancel_button.add_class("wb-cancel")
        self.cancel_button.on_click(lambda _: self.cancel())
        self.error = w.HTML("")
        self.error.add_class("wb-error")
        # warnings of tasks started by controls without a message area of their own
        self.messages = MessageArea("wb-task-messages")
        self._areas: list = [self.messages]  # every area a task's messages went to (cleared on the next action)
        self.busy_listeners: list[Callable[[bool], None]] = []
        self.busy = False
        self.last_error: str | None = None
        self.clock: ProgressClock | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self.widget = w.VBox([w.HBox([self.progress, self.cancel_button, self.status],
                                     layout=w.Layout(align_items="center", width="100%")), self.error,
                              self.messages.widget],
                             layout=w.Layout(width="100%"))

    # ------------------------------------------------------------------ messages
    def show_error(self, message: str, details: str | None = None) -> None:
        """Show ``message`` in the error area (``details`` folded in a <details> block)."""
        self.last_error = message
        extra = (f"<details><summary>details</summary><pre style='font-size:11px'>{html.escape(details)}</pre>"
                 "</details>") if details else ""
        self.error.value = (f"<div style='color:#a00;background:#fee;border:1px solid #e99;padding:4px 8px'>"
                            f"<b>Error:</b> {html.escape(message)}{extra}</div>")

    def clear_error(self) -> None:
        """A new action starts: the last one's error and warnings go, wherever they were shown."""
        self.last_error = None
        self.error.value = ""
        for area in self._areas:
            area.clear()

    def _report(self, exc: BaseException, area: MessageArea | None = None, caught=(),
                warn_area: MessageArea | None = None) -> None:
        """Show what ``exc`` means: in ``area`` (beside the control) when given, else in the error
        bar; the warnings ``caught`` before it with it (in ``warn_area`` when that is another area)."""
        if warn_area is not None and warn_area is not area:
            self._warn(caught, warn_area)
            caught = ()
        if isinstance(exc, Cancelled):
            self.status.value = f"<i>{html.escape(str(exc))}</i>"
            self._warn(caught, area)
            return
        details = None
        text = str(exc)
        if not isinstance(exc, WorkbenchError):
            text = (f"Unexpected {type(exc).__name__}: {exc}. This is a bug in the workbench; "
                    "please report it with the details below.")
            details = traceback.format_exc()
        if area is None:
            self.show_error(text, details)
            self._warn(caught, None)
        else:
            self.last_error = text
            self._use(area).show([Message("error", text), *caught])
            if details:  # the traceback stays out of the message, folded in the error bar
                self.show_error(text, details)

    def _use(self, area: MessageArea) -> MessageArea:
        if area not in self._areas:
            self._areas.append(area)
        return area

    def _warn(self, caught, area: MessageArea | None) -> None:
        if caught:
            self._use(area or self.messages).show(list(caught))

    def guard(self, fn: Callable, messages: MessageArea | None = None) -> Callable:
        """Wrap a quick callback so its errors and warnings are shown in the app (in ``messages``,
        beside its control, when given) instead of raised or printed in the cell."""
        def wrapped(*args, **kwargs):
            self.clear_error()
            with captured_warnings() as caught:
                try:
                    out = fn(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - shown to the user
                    self._report(exc, messages, caught)
                    return None
            self._warn(caught, messages)
            return out
        return wrapped

    # ------------------------------------------------------------------ tasks
    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        for cb in list(self.busy_listeners):
            cb(busy)

    def run(self, title: str, work: Callable, *, done: Callable | None = None, cancellable: bool = True,
            unit: str = "", on_cancel: Callable | None = None, messages: MessageArea | None = None,
            errors: MessageArea | None = None) -> None:
        """Run ``work(progress, cancel)`` with feedback; then ``done(result)`` if it succeeded.

        ``progress(done, total)`` moves the bar and the "done/total · rate · ETA" text (total
        None: only the count); ``progress.phase(title, unit)`` starts a new stage with its own
        count; ``cancel`` is a ``threading.Event`` set by the Cancel button;
        ``on_cancel(exc)`` runs when the task stopped on Cancel (e.g. to show a partial
        result). ``unit`` names what is counted. ``messages``: where the task's error and warnings
        are shown (beside the control that started it; default the error bar and the task messages);
        ``errors``: another place for its error (default ``messages``).
        """
        if self.busy:
            self.show_error("Another task is still running; wait for it or press Cancel.")
            return
        self.clear_error()
        self._cancel.clear()
        self._set_busy(True)
        self.cancel_button.disabled = not cancellable
        self.progress.layout.display = None
        self.progress.value, self.progress.max = 0, 1
        self.progress.bar_style = "info"
        self.clock = clock = ProgressClock(unit)
        self.status.value = f"{html.escape(title)}…"
        step = {"title": title, "clock": clock}

        def progress(n, total=None):
            c = step["clock"]
            c.update(n, total)
            if total:
                self.progress.max = max(int(total), 1)
            self.progress.value = min(int(n), self.progress.max)
            self.status.value = f"<b>{html.escape(step['title'])}</b>: {html.escape(c.text())}"

        def phase(name: str, unit_name: str = "") -> None:
            """A new stage of the task: its own count, rate and ETA (``progress.phase(...)``)."""
            step["title"], step["clock"] = name, ProgressClock(unit_name)
            self.clock = step["clock"]
            self.progress.value, self.progress.max = 0, 1
            self.status.value = f"<b>{html.escape(name)}</b>…"
        progress.phase = phase

        def body():
            caught: list = []
            try:
                with captured_warnings() as caught:
                    result = work(progress, self._cancel)
                    if done is not None:
                        done(result)
                self._warn(caught, messages)
                self.status.value = f"{html.escape(title)}: done in {fmt_seconds(clock.elapsed)}."
            except Exception as exc:  # noqa: BLE001 - shown to the user
                if isinstance(exc, Cancelled) and on_cancel is not None:
                    self.guard(on_cancel)(exc)  # first: its own start clears the last messages
                self._report(exc, errors or messages, caught, messages)
                if not isinstance(exc, Cancelled):
                    self.status.value = f"{html.escape(title)}: failed."
            finally:
                self.progress.layout.display = "none"
                self.cancel_button.disabled = True
                self._set_busy(False)

        if self.blocking:
            body()
        else:
            self._thread = threading.Thread(target=body, name=f"workbench: {title}", daemon=True)
            self._thread.start()

    def cancel(self) -> None:
        """Ask the running task to stop at its next check."""
        self._cancel.set()
        self.status.value = "Cancelling… (the work done so far is kept)"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running task ends; False when ``timeout`` passed first."""
        t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True


class Throttle:
    """Calls ``fn(value, final)`` for the latest of rapidly changing values (a dragged slider).

    Values that arrive while a call runs are coalesced: only the newest is used next. When
    no new value came for ``settle`` seconds, ``fn(value, True)`` runs once more (a finer
    result for the value the user stopped at). ``blocking=True`` calls ``fn(value, True)`` at
    once (tests, scripts).
    """

    def __init__(self, fn: Callable, *, settle: float = 0.6, blocking: bool = False, on_error=None):
        self.fn, self.settle, self.blocking, self.on_error = fn, settle, blocking, on_error
        self._lock = threading.Condition()
        self._pending = None
        self._has_pending = False
        self._thread: threading.Thread | None = None
        self.calls: list = []  # (value, final, seconds) of the last calls, newest last

    def _call(self, value, final: bool) -> None:
        t = time.perf_counter()
        try:
            self.fn(value, final)
        except Exception as exc:  # noqa: BLE001 - shown by on_error
            if self.on_error is not None:
                self.on_error(exc)
        self.calls = (self.calls + [(value, final, time.perf_counter() - t)])[-50:]

    def __call__(self, value) -> None:
        if self.blocking:
            self._call(value, True)
            return
        with self._lock:
            self._pending, self._has_pending = value, True
            self._lock.notify()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="workbench: preview", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        last = None
        while True:
            with self._lock:
                if not self._has_pending:
                    self._lock.wait(self.settle)
                if not self._has_pending:
                    if last is not None:
                        value, last = last, None
                    else:
                        self._thread = None
                        return
                    final = True
                else:
                    value, self._has_pending, final = self._pending, False, False
            self._call(value, final)
            if not final:
                last = value

    def wait(self, timeout: float = 10.0) -> None:
        """Wait until every pending value (and the settled call) has been handled."""
        t = self._thread
        if t is not None:
            t.join(timeout)
