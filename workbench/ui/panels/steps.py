"""Accuracy steps (part of the calibration section): a toggle per step, Apply, and the step table
(held-out output SQNR and metric before/after, kept or why not). The session computes; this draws."""
from __future__ import annotations

import html

from ..._optional import require
from ...session import Event
from .base import Panel

w = require("ipywidgets", "workbench app", "ui")


def steps_html(rows: list, judged_on: str = "") -> str:
    """The step table as HTML (``rows``: :meth:`Session.step_table` dicts)."""
    if not rows:
        return "<i style='font-size:12px'>No accuracy step run yet: calibrate, tick the steps, press Apply.</i>"

    def f(v):
        return "–" if v is None else f"{v:.2f}"

    head = ("<tr><th>step</th><th>layers</th><th>SQNR before</th><th>after</th><th>metric before</th>"
            "<th>after</th><th>kept</th><th>s</th></tr>")
    body = []
    for r in rows:
        kept = "applied" if r["applied"] else "skipped"
        body.append(f"<tr class='wb-step-{kept}' title='{html.escape(r['reason'] or '')}'>"
                    f"<td>{html.escape(r['step'])}</td><td>{r['layers']}</td><td>{f(r['sqnr_before'])}</td>"
                    f"<td>{f(r['sqnr_after'])}</td><td>{f(r['metric_before'])}</td><td>{f(r['metric_after'])}</td>"
                    f"<td>{kept}{': ' + html.escape(r['reason']) if r['reason'] else ''}</td>"
                    f"<td>{r['seconds']:.1f}</td></tr>")
    note = (f"<div class='wb-note'>output vs FP32 on {html.escape(judged_on)}, exact ONNX semantics; "
            "builds and exports use the applied steps</div>") if judged_on else ""
    return f"<table class='wb-metrics wb-steps-table'>{head}{''.join(body)}</table>{note}"


class StepsPanel(Panel):
    name, title = "steps", "Accuracy steps"
    events = frozenset({Event.MODEL, Event.RANGES, Event.PLAN})

    def __init__(self, ctx):
        from ...improve import STEPS

        super().__init__(ctx)
        self.toggles = {name: w.Checkbox(value=True, description=name.replace("_", " "), tooltip=step.title,
                                         indent=False, layout=w.Layout(width="auto", margin="0 10px 0 0"))
                        for name, step in STEPS.items()}
        for name, box in self.toggles.items():
            box.add_class(f"wb-step-{name.replace('_', '-')}")
        self.apply = w.Button(description="Apply steps", icon="magic",
                              tooltip="try the ticked steps; each is kept only when the held-out output improves",
                              layout=w.Layout(width="auto", flex="0 0 auto"))
        self.apply.add_class("wb-apply-steps")
        self.apply.on_click(lambda _: self.run_steps())
        self.busy_controls = [self.apply]
        self.table = w.HTML(layout=w.Layout(width="100%"))
        self.table.add_class("wb-steps")
        row = w.HBox([w.HTML("<b style='font-size:12px;margin-right:8px'>Accuracy steps</b>"),
                      *self.toggles.values(), self.apply],
                     layout=w.Layout(align_items="center", flex_flow="row wrap", width="100%"))
        self.widget = w.VBox([row, self.table], layout=w.Layout(width="100%"))

    def chosen(self) -> list:
        return [name for name, box in self.toggles.items() if box.value]

    def run_steps(self) -> None:
        """Run :meth:`Session.improve` with the ticked steps as a task."""
        steps = self.chosen()
        self.runner.run("Accuracy steps", lambda progress, cancel: self.session.improve(
            steps, progress=progress, cancel=cancel), unit="layers")

    def refresh(self, event) -> None:
        s = self.session
        imp = s.improvement
        text = steps_html(s.step_table(), imp.judged_on if imp is not None else "")
        note = s.improvement_note()
        if note:
            text = f"<div class='wb-stale-note'>{html.escape(note)}</div>" + text
        self.table.value = text
        self.apply.disabled = s.base_ranges is None or self.runner.busy
