"""Precision controls: selected nodes to INT8/FP16/FP32, bulk by op type or pattern, Auto, Undo."""
from __future__ import annotations

import html

from ..._optional import require

w = require("ipywidgets", "workbench app", "ui")


class PrecisionPanel:
    def __init__(self, session, runner, selected_nodes):
        self.session, self.runner, self.selected_nodes = session, runner, selected_nodes
        self.buttons = {}
        for prec, style in (("int8", "info"), ("fp16", "warning"), ("fp32", "")):
            b = w.Button(description=f"Selected → {prec.upper()}", button_style=style, layout=w.Layout(width="150px"))
            b.add_class(f"wb-set-{prec}")
            b.on_click(lambda _, p=prec: runner.guard(self.set_selected)(p))
            self.buttons[prec] = b
        self.undo = w.Button(description="Undo", icon="undo", layout=w.Layout(width="260px"))
        self.undo.add_class("wb-undo")
        self.undo.on_click(lambda _: runner.guard(self.session.undo)())
        self.op_type = w.Dropdown(options=[], description="All of op", layout=w.Layout(width="220px"))
        self.pattern = w.Text(placeholder="regex on node names", description="or names",
                              layout=w.Layout(width="260px"))
        self.pattern.add_class("wb-pattern")
        self.bulk_precision = w.Dropdown(options=["int8", "fp16", "fp32"], value="fp16", layout=w.Layout(width="80px"))
        self.bulk = w.Button(description="Apply", layout=w.Layout(width="80px"))
        self.bulk.add_class("wb-bulk-apply")
        self.bulk.on_click(lambda _: runner.guard(self.apply_bulk)())
        self.target = w.Text(value="top1>=0.99", description="Target", layout=w.Layout(width="220px"))
        self.target.add_class("wb-auto-target")
        self.auto = w.Button(description="Auto", icon="magic", button_style="success", layout=w.Layout(width="90px"))
        self.auto.add_class("wb-auto")
        self.auto.on_click(lambda _: self.run_auto())
        self.sensitivity = w.Button(description="Sensitivity", icon="sort-amount-desc", layout=w.Layout(width="120px"))
        self.sensitivity.add_class("wb-sensitivity")
        self.sensitivity.on_click(lambda _: self.run_sensitivity())
        self.info = w.HTML()
        self.widget = w.VBox([
            w.HBox([*self.buttons.values(), self.undo]),
            w.HBox([self.op_type, self.pattern, self.bulk_precision, self.bulk]),
            w.HBox([self.sensitivity, self.target, self.auto, self.info]),
        ])
        self.refresh("model")

    def set_selected(self, precision: str) -> None:
        nodes = self.selected_nodes() or ([self.session.selected] if self.session.selected else [])
        self.session.set_precision(nodes, precision)

    def apply_bulk(self) -> None:
        if self.pattern.value.strip():
            changed = self.session.set_precision_by_pattern(self.pattern.value.strip(), self.bulk_precision.value)
        else:
            changed = self.session.set_precision_by_op(self.op_type.value, self.bulk_precision.value)
        self.info.value = f"{len(changed or [])} nodes changed."

    def run_sensitivity(self) -> None:
        self.runner.run("Sensitivity analysis", lambda progress, cancel: self.session.run_sensitivity(
            progress=progress, cancel=cancel))

    def run_auto(self) -> None:
        target = self.target.value.strip()

        def work(progress, cancel):
            return self.session.auto(target, progress=progress, cancel=cancel)

        def done(result):
            self.info.value = (f"Auto: {len(result.fallback)} nodes out of INT8; target "
                               f"{'met' if result.met else '<b>not met</b>'} ({result.evaluations} evaluations). "
                               "Press Rebuild to evaluate.")
        self.runner.run(f"Automatic mixed precision to {target}", work, done=done)

    def refresh(self, what: str) -> None:
        s = self.session
        if what in ("model", "all") and s.model_info is not None:
            ops = sorted({t.op_type for t in s.model_info.quantizable_nodes()})
            self.op_type.options = ops
        if what in ("plan", "model", "ranges", "all"):
            label = s.undo_label
            self.undo.disabled = label is None
            self.undo.description = f"Undo: {label}"[:40] if label else "Undo"
            if s.plan is not None:
                self.info.value = (f"Plan: {len(s.plan.int8_nodes())} INT8, {len(s.plan.fp16_nodes())} FP16 nodes."
                                   if not self.info.value.startswith("Auto") else self.info.value)
