"""Precision tools under the layer table: selected nodes to INT8/FP16/FP32, bulk by op type or
name pattern, Undo."""
from __future__ import annotations

import html

from ..._optional import require
from ...session import Event
from .base import Panel

w = require("ipywidgets", "workbench app", "ui")

PRECISIONS = (("int8", "info", "run the selected layers in INT8 (Q/DQ on their inputs)"),
              ("fp16", "warning", "run the selected layers in FP16 (no Q/DQ, float16 tensors)"),
              ("fp32", "", "keep the selected layers in FP32"))


class PrecisionPanel(Panel):
    name, title = "precision", "Precision"
    events = frozenset({Event.MODEL, Event.PLAN, Event.RANGES})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.buttons = {}
        for prec, style, tip in PRECISIONS:
            b = w.Button(description=f"Selected → {prec.upper()}", button_style=style, tooltip=tip,
                         layout=w.Layout(width="auto", flex="0 0 auto"))
            b.add_class(f"wb-set-{prec}")
            b.on_click(lambda _, p=prec: self.runner.guard(self.set_selected)(p))
            self.buttons[prec] = b
        self.undo = w.Button(description="Undo", icon="undo", tooltip="undo the last plan change",
                             layout=w.Layout(width="auto", flex="0 0 auto"))
        self.undo.add_class("wb-undo")
        self.undo.on_click(lambda _: self.runner.guard(self.session.undo)())
        self.op_type = w.Dropdown(options=[], description="All of op", tooltip="every node of this op type",
                                  layout=w.Layout(width="170px"), style={"description_width": "56px"})
        self.pattern = w.Text(placeholder="or a name regex", tooltip="every node whose name matches (wins over op)",
                              layout=w.Layout(flex="1 1 110px", min_width="110px"))
        self.pattern.add_class("wb-pattern")
        self.bulk_precision = w.Dropdown(options=["int8", "fp16", "fp32"], value="fp16", description="→",
                                         tooltip="precision to apply", layout=w.Layout(width="86px"),
                                         style={"description_width": "16px"})
        self.bulk = w.Button(description="Apply", tooltip="apply to every matching node (one undo step)",
                             layout=w.Layout(width="auto", flex="0 0 auto"))
        self.bulk.add_class("wb-bulk-apply")
        self.bulk.on_click(lambda _: self.runner.guard(self.apply_bulk)())
        self.info = w.HTML()
        self.info.add_class("wb-plan-info")
        row = dict(align_items="center", flex_flow="row wrap", width="100%")
        self.widget = w.VBox([
            w.HBox([*self.buttons.values(), self.undo], layout=w.Layout(**row)),
            w.HBox([self.op_type, self.pattern, self.bulk_precision, self.bulk], layout=w.Layout(**row)),
            self.info,
        ], layout=w.Layout(width="100%"))

    def set_selected(self, precision: str) -> None:
        s = self.session
        nodes = self.ctx.selected_nodes() or ([s.selected] if s.selected else [])
        s.set_precision(nodes, precision, origin="app click")

    def apply_bulk(self) -> None:
        if self.pattern.value.strip():
            changed = self.session.set_precision_by_pattern(self.pattern.value.strip(), self.bulk_precision.value,
                                                            origin="app")
        else:
            changed = self.session.set_precision_by_op(self.op_type.value, self.bulk_precision.value,
                                                       origin="app")
        self._note = f"{len(changed or [])} node(s) set to {self.bulk_precision.value.upper()}. "
        self.refresh(Event.PLAN)

    def refresh(self, event) -> None:
        s = self.session
        if event in (Event.MODEL, Event.ALL) and s.model_info is not None:
            ops = sorted({t.op_type for t in s.model_info.quantizable_nodes()})
            self.op_type.options = ops
            self.op_type.value = ops[0] if ops else None
        label = s.undo_label
        self.undo.disabled = label is None
        self.undo.tooltip = f"undo: {label}" if label else "nothing to undo"
        note, self._note = getattr(self, "_note", ""), ""
        if s.plan is not None:
            last = f" Last change: <i>{html.escape(label)}</i>." if label else ""
            self.info.value = (f"<span style='font-size:12px'>{html.escape(note)}Plan: "
                               f"<b>{len(s.plan.int8_nodes())}</b> INT8, <b>{len(s.plan.fp16_nodes())}</b> FP16 "
                               f"nodes.{last}</span>")
