"""Running session work from widgets: background thread, progress bar, Cancel, readable errors.

Long work (calibration, rebuild, sensitivity, auto search) runs in a thread so the notebook
stays responsive; the progress bar and the Cancel button follow it. Errors are shown in the
app as one readable message (``WorkbenchError`` text as is; an unexpected exception as its
type and message, with the traceback folded away), never as a traceback in the cell.
"""
from __future__ import annotations

import html
import threading
import traceback
from typing import Callable

from .._optional import require
from ..errors import CancelledError, WorkbenchError

w = require("ipywidgets", "workbench app", "ui")


class TaskRunner:
    """Runs one task at a time and shows its progress and outcome.

    Args:
        blocking: run tasks in the calling thread (for scripts, tests and headless notebook
            runs); default False: a background thread.
    """

    def __init__(self, *, blocking: bool = False):
        self.blocking = blocking
        self.progress = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="260px", visibility="hidden"))
        self.progress.add_class("wb-progress")
        self.status = w.HTML("Ready.")
        self.status.add_class("wb-status")
        self.cancel_button = w.Button(description="Cancel", icon="stop", disabled=True,
                                      layout=w.Layout(width="90px"))
        self.cancel_button.add_class("wb-cancel")
        self.cancel_button.on_click(lambda _: self.cancel())
        self.error = w.HTML("")
        self.error.add_class("wb-error")
        self.busy_listeners: list[Callable[[bool], None]] = []
        self.busy = False
        self.last_error: str | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def widget(self):
        return w.VBox([w.HBox([self.progress, self.cancel_button, self.status]), self.error])

    # ------------------------------------------------------------------ messages
    def show_error(self, message: str, details: str | None = None) -> None:
        """Show ``message`` in the error area (``details`` folded in a <details> block)."""
        self.last_error = message
        extra = (f"<details><summary>details</summary><pre style='font-size:11px'>{html.escape(details)}</pre>"
                 "</details>") if details else ""
        self.error.value = (f"<div style='color:#a00;background:#fee;border:1px solid #e99;padding:4px 8px'>"
                            f"<b>Error:</b> {html.escape(message)}{extra}</div>")

    def clear_error(self) -> None:
        self.last_error = None
        self.error.value = ""

    def _report(self, exc: BaseException) -> None:
        if isinstance(exc, CancelledError):
            self.status.value = f"<i>{html.escape(str(exc))}</i>"
        elif isinstance(exc, WorkbenchError):
            self.show_error(str(exc))
        else:
            self.show_error(f"Unexpected {type(exc).__name__}: {exc}. This is a bug in the workbench; "
                            "please report it with the details below.", traceback.format_exc())

    def guard(self, fn: Callable) -> Callable:
        """Wrap a quick callback so its errors are shown in the app instead of raised."""
        def wrapped(*args, **kwargs):
            self.clear_error()
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - shown to the user
                self._report(exc)
                return None
        return wrapped

    # ------------------------------------------------------------------ tasks
    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        for cb in list(self.busy_listeners):
            cb(busy)

    def run(self, title: str, work: Callable, *, done: Callable | None = None, cancellable: bool = True) -> None:
        """Run ``work(progress, cancel)`` with feedback; then ``done(result)`` if it succeeded.

        ``progress(done, total)`` moves the bar (total None: indeterminate); ``cancel`` is a
        ``threading.Event`` set by the Cancel button.
        """
        if self.busy:
            self.show_error("Another task is still running; wait for it or press Cancel.")
            return
        self.clear_error()
        self._cancel.clear()
        self._set_busy(True)
        self.cancel_button.disabled = not cancellable
        self.progress.layout.visibility = "visible"
        self.progress.value, self.progress.max = 0, 1
        self.progress.bar_style = "info"
        self.status.value = f"{html.escape(title)}…"

        def progress(n, total=None):
            if total:
                self.progress.max = max(int(total), 1)
            self.progress.value = min(int(n), self.progress.max)
            self.status.value = f"{html.escape(title)}… {int(n)}{'/' + str(int(total)) if total else ''}"

        def body():
            try:
                result = work(progress, self._cancel)
                if done is not None:
                    done(result)
                self.status.value = f"{html.escape(title)}: done."
            except Exception as exc:  # noqa: BLE001 - shown to the user
                self._report(exc)
                if not isinstance(exc, CancelledError):
                    self.status.value = f"{html.escape(title)}: failed."
            finally:
                self.progress.layout.visibility = "hidden"
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
        self.status.value = "Cancelling…"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running task ends; False when ``timeout`` passed first."""
        t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True
