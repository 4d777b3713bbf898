"""The panel protocol: what the app expects of every panel.

A panel

* builds its widgets in ``__init__(ctx)`` and exposes the root as ``widget``;
* names the session events it redraws on in ``events`` (a set of
  :class:`workbench.session.Event`; ``Event.ALL`` is always delivered);
* redraws itself from the session's state in ``refresh(event)``;
* owns its busy state: ``busy_controls`` lists the widgets that start long work, and
  ``set_busy(busy)`` disables them while a task runs (override for more);
* may expose parts of itself that the app places elsewhere (the results panel's ``toolbar``,
  the calibration panel's ``method_row`` and ``run_row``).

The app only dispatches: ``for p in panels: if p.wants(event): p.refresh(event)``. A new
panel is one class here plus one line in :mod:`workbench.ui.app`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ...session import Event


@dataclass
class AppContext:
    """What panels share: the session, the task runner and the app's cross-panel actions.

    Attributes:
        session: the :class:`workbench.session.Session`.
        runner: the :class:`workbench.ui.tasks.TaskRunner` (progress, Cancel, errors).
        select: select a node everywhere (table, histogram, graph, charts).
        selected_nodes: the nodes selected in the layer table (several for bulk changes).
        show: bring a panel's tab to the front, by panel name.
    """

    session: object
    runner: object
    select: Callable[[str], None]
    selected_nodes: Callable[[], list] = field(default=lambda: [])
    show: Callable[[str], None] = field(default=lambda name: None)


class Panel:
    """Base class of the app's panels (see the module docstring)."""

    #: short name, used by ``AppContext.show`` and as the key in ``Workbench.panels``
    name: str = ""
    #: tab or section title
    title: str = ""
    #: the session events this panel redraws on
    events: frozenset = frozenset()

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.session = ctx.session
        self.runner = ctx.runner
        self.busy_controls: list = []
        self.widget = None

    def wants(self, event) -> bool:
        return event == Event.ALL or event in self.events

    def refresh(self, event) -> None:
        """Redraw from the session's state (default: nothing to redraw)."""

    def set_busy(self, busy: bool) -> None:
        """A long task started (True) or ended (False): disable what would start another."""
        for control in self.busy_controls:
            control.disabled = busy
