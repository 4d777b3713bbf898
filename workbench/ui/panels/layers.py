"""Layer table: one row per quantizable node, sortable and filterable; selection is shared."""
from __future__ import annotations

import math
import re

from ..._optional import require

w = require("ipywidgets", "workbench app", "ui")

SORT_KEYS = {"graph order": None, "name": "node", "op type": "op_type", "clipped %": "clipped_pct",
             "SQNR (worst first)": "sqnr_db", "sensitivity rank": "sensitivity_rank", "amax": "amax",
             "precision": "precision"}
NODE_WIDTH = 24
HEADER = (f"{'node':<{NODE_WIDTH}} {'op':<8} {'prec':<4} {'amax':>8} {'scale':>8} {'clip%':>7} "
          f"{'SQNR':>5} {'sens':>4}")


def _num(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, fmt)


def format_row(r: dict) -> str:
    """One fixed-width line of the table (the Select widget shows plain text)."""
    name = r["node"] if len(r["node"]) <= NODE_WIDTH else "…" + r["node"][-NODE_WIDTH + 1:]
    amax = _num(r.get("amax"), ".4g") + ("*" if r.get("manual") else "")
    return (f"{name:<{NODE_WIDTH}} {r['op_type'][:8]:<8} {str(r.get('precision') or '-'):<4} {amax:>8} "
            f"{_num(r.get('scale'), '.3g'):>8} {_num(r.get('clipped_pct'), '.3g'):>7} "
            f"{_num(r.get('sqnr_db'), '.1f'):>5} {_num(r.get('sensitivity_rank'), '.0f'):>4}")


def filter_and_sort(table, text: str, sort: str, descending: bool = False):
    """Rows whose node, op type, tensor or precision match ``text`` (regex, case-insensitive),
    sorted by the column of ``sort`` (see SORT_KEYS). Missing values sort last."""
    df = table
    if text:
        try:
            pat = re.compile(text, re.IGNORECASE)
            match = lambda s: bool(pat.search(str(s)))  # noqa: E731
        except re.error:
            match = lambda s: text.lower() in str(s).lower()  # noqa: E731
        keep = [any(match(r[c]) for c in ("node", "op_type", "tensor", "precision")) for _, r in df.iterrows()]
        df = df[keep]
    key = SORT_KEYS.get(sort)
    if key is not None and key in df.columns:
        df = df.sort_values(key, ascending=not descending, na_position="last", kind="stable")
    return df


class LayerTable:
    def __init__(self, session, runner, on_select):
        self.session, self.runner, self.on_select = session, runner, on_select
        self.filter = w.Text(placeholder="filter: name, op type, precision (regex)", description="Filter",
                             layout=w.Layout(width="330px"))
        self.filter.add_class("wb-layer-filter")
        self.sort = w.Dropdown(options=list(SORT_KEYS), value="graph order", description="Sort",
                               layout=w.Layout(width="230px"))
        self.sort.add_class("wb-layer-sort")
        self.descending = w.Checkbox(value=False, description="descending", indent=False,
                                     layout=w.Layout(width="110px"))
        self.header = w.HTML(f"<pre style='margin:0 0 0 4px;font-size:11px'>{HEADER}</pre>")
        self.rows = w.SelectMultiple(options=[], rows=14, layout=w.Layout(width="100%"))
        self.rows.add_class("wb-layer-table")
        self.count = w.HTML()
        for ctl in (self.filter, self.sort, self.descending):
            ctl.observe(lambda ch: self.redraw(), names="value")
        self.rows.observe(self._selected, names="value")
        self._updating = False
        self.table = None
        self.widget = w.VBox([w.HBox([self.filter, self.sort, self.descending, self.count]),
                              self.header, self.rows])

    @property
    def selected_nodes(self) -> list:
        return list(self.rows.value)

    def _selected(self, change) -> None:
        if self._updating or not change["new"]:
            return
        new = [n for n in change["new"] if n not in (change["old"] or ())]
        node = new[-1] if new else change["new"][-1]
        if node != self.session.selected:
            self.runner.guard(self.on_select)(node)

    def redraw(self) -> None:
        """Rebuild the rows from the session's layer table (keeps the selection)."""
        if self.session.model_info is None:
            return
        self.table = self.session.layer_table()
        df = filter_and_sort(self.table, self.filter.value, self.sort.value, self.descending.value)
        options = [(format_row(r), r["node"]) for r in df.to_dict("records")]
        keep = tuple(n for n in self.rows.value if n in set(df["node"]))
        if not keep and self.session.selected in set(df["node"]):
            keep = (self.session.selected,)
        self._updating = True
        try:
            self.rows.options = options
            self.rows.value = keep
        finally:
            self._updating = False
        self.count.value = f"{len(df)} of {len(self.table)} layers"

    def refresh(self, what: str) -> None:
        if what == "selection":
            sel = self.session.selected
            if sel is not None and sel not in self.rows.value and sel in {v for _, v in self.rows.options}:
                self._updating = True
                try:
                    self.rows.value = (sel,)
                finally:
                    self._updating = False
            return
        if what in ("model", "ranges", "plan", "build", "sensitivity", "all"):
            self.redraw()
