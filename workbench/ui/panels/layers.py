"""Layer table: one row per quantizable node, labelled sortable columns, filter; selection is shared."""
from __future__ import annotations

import math
import re

from ..._optional import require
from ...session import Event
from ..style import fmt_num
from ..table import DataTable
from .base import Panel

w = require("ipywidgets", "workbench app", "ui")

#: (layer-table column, header, tooltip, format, align, sort descending first)
COLUMNS = (
    ("node", "node", "ONNX node name", "s", "left", False),
    ("op_type", "op", "ONNX op type", "s", "left", False),
    ("precision", "precision", "INT8 / FP16 / FP32 in the current plan", "s", "left", False),
    ("amax", "amax", "threshold in use (* = set by hand); scale = amax / 127", "amax", "right", True),
    ("clipped_pct", "clip %", "clipped: share of the calibration values above amax, in %", "pct", "right", True),
    ("sqnr_db", "SQNR", "per-layer SQNR of the last build in dB (higher is better)", ".1f", "right", False),
    ("sensitivity_rank", "rank", "sensitivity rank, 1 = most sensitive (tab Sensitivity & auto)", ".0f",
     "right", False),
    ("range_sensitivity", "range sens.", "output SQNR lost by this tensor's threshold (range sensitivity)",
     ".2f", "right", True),
    ("weight_sqnr_nearest", "w SQNR rtn", "weight SQNR in dB with round-to-nearest INT8 weights", ".1f", "right",
     False),
    ("weight_sqnr_rounded", "w SQNR rounded", "weight SQNR in dB with the rounding the accuracy step chose "
     "(it minimises the layer's output error, not the weight error)", ".1f", "right", False),
    ("bias_shift", "bias shift", "largest |per-channel shift| bias correction removed from the bias", ".3g",
     "right", True),
)


def _cell(value, fmt: str, row: dict) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if fmt == "s":
        return str(value)
    if fmt == "amax":
        return fmt_num(value, 4) + ("*" if row.get("manual") else "")
    if fmt == "pct":
        return "0" if value == 0 else (f"{value:.3g}" if value >= 0.001 else "<0.001")
    return format(float(value), fmt)


#: node names longer than this show their end ("…/stage3/block2/conv/Conv"); the row's tooltip has all
NODE_CHARS = 28


def short_name(name: str, most: int = NODE_CHARS) -> str:
    """``name`` cut to its last ``most`` characters (the distinctive part of a path-like name)."""
    return name if len(name) <= most else "…" + name[-(most - 1):]


def table_rows(df, columns) -> list:
    """The widget rows of a layer-table DataFrame (cells formatted for people; long node names
    shortened to their end, whole in the row's tooltip)."""
    rows = []
    for r in df.to_dict("records"):
        prec = str(r.get("precision") or "").lower()
        cls = f"prec-{prec}" + (" manual" if r.get("manual") else "")
        title = f"{r['node']} reads {r.get('tensor')}" + (
            f"; scale {r['scale']:.4g}" if r.get("scale") is not None and not _nan(r.get("scale")) else "")
        rows.append({"key": r["node"], "cls": cls, "title": title,
                     "cells": [short_name(str(r[key])) if key == "node" else _cell(r.get(key), fmt, r)
                               for key, _, _, fmt, _, _ in columns]})
    return rows


def _nan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def filter_and_sort(table, text: str, sort: str | None, descending: bool = False):
    """Rows whose node, op type, tensor or precision match ``text`` (regex, case-insensitive),
    sorted by column ``sort`` (None or "": graph order). Missing values sort last."""
    df = table
    if text:
        try:
            pat = re.compile(text, re.IGNORECASE)
            match = lambda s: bool(pat.search(str(s)))  # noqa: E731
        except re.error:
            match = lambda s: text.lower() in str(s).lower()  # noqa: E731
        cols = [c for c in ("node", "op_type", "tensor", "precision") if c in df.columns]
        keep = [any(match(r[c]) for c in cols) for _, r in df.iterrows()]
        df = df[keep]
    if sort and sort in df.columns:
        df = df.sort_values(sort, ascending=not descending, na_position="last", kind="stable")
    return df


class LayerTable(Panel):
    name, title = "layers", "Layers"
    events = frozenset({Event.MODEL, Event.RANGES, Event.PLAN, Event.BUILD, Event.SENSITIVITY, Event.SELECTION})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.filter = w.Text(placeholder="regex: name, op, precision", description="Filter",
                             tooltip="show only the rows matching this regular expression",
                             layout=w.Layout(flex="1 1 240px", min_width="220px"),
                             style={"description_width": "40px"})
        self.filter.add_class("wb-layer-filter")
        self.graph_order = w.Button(description="Graph order", icon="list-ol",
                                    tooltip="sort the rows in graph order (click a column header to sort by it)",
                                    layout=w.Layout(width="auto", flex="0 0 auto"))
        self.graph_order.add_class("wb-layer-sort")
        self.count = w.HTML(layout=w.Layout(width="auto", margin="0 0 0 8px"))
        self.rows = DataTable(height=262, layout=w.Layout(width="100%"))
        self.rows.add_class("wb-layer-table")
        self.filter.observe(lambda ch: self.redraw(), names="value")
        self.rows.observe(lambda ch: self.redraw(), names="sort")
        self.graph_order.on_click(lambda _: setattr(self.rows, "sort", {}))
        self.rows.observe(self._selected, names="selected")
        self._updating = False
        self.table = None
        self.widget = w.VBox([w.HBox([self.filter, self.graph_order, self.count],
                                     layout=w.Layout(align_items="center", width="100%")), self.rows],
                             layout=w.Layout(width="100%"))

    @property
    def selected_nodes(self) -> list:
        return list(self.rows.selected)

    def _selected(self, change) -> None:
        if self._updating or not change["new"]:
            return
        new = [n for n in change["new"] if n not in (change["old"] or ())]
        node = new[-1] if new else change["new"][-1]
        if node != self.session.selected:
            self.runner.guard(self.ctx.select)(node)

    def columns(self) -> list:
        present = set(self.table.columns) if self.table is not None else set()
        return [c for c in COLUMNS if c[0] in present and (c[0] != "range_sensitivity"
                                                            or self.table[c[0]].notna().any())]

    def redraw(self) -> None:
        """Rebuild the rows from the session's layer table (keeps the selection)."""
        if self.session.model_info is None:
            return
        self.table = self.session.layer_table()
        cols = self.columns()
        sort = self.rows.sort or {}
        df = filter_and_sort(self.table, self.filter.value, sort.get("key"), bool(sort.get("descending")))
        spec = [{"key": k, "label": label, "tooltip": tip, "align": align, "descending_first": first}
                for k, label, tip, _, align, first in cols]
        shown = set(df["node"])
        keep = [n for n in self.rows.selected if n in shown]
        if not keep and self.session.selected in shown:
            keep = [self.session.selected]
        self._updating = True
        try:
            if spec != self.rows.columns:
                self.rows.columns = spec
            self.rows.rows = table_rows(df, cols)
            self.rows.selected = keep
        finally:
            self._updating = False
        self.count.value = f"{len(df)} of {len(self.table)} layers"

    def refresh(self, event) -> None:
        if event == Event.SELECTION:
            sel = self.session.selected
            if sel is not None and sel not in self.rows.selected:
                self._updating = True
                try:
                    self.rows.selected = [sel]
                finally:
                    self._updating = False
            return
        self.redraw()
