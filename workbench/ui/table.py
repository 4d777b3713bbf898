"""A small table widget (anywidget): labelled sortable columns, row selection synced to Python.

``ipywidgets`` has no table; a ``<select>`` of fixed-width text lines cut columns and could not
label them. This one renders an HTML table whose header cells carry tooltips; clicking a header
asks Python to sort (``sort`` trait; the rows then start from the top), clicking a row selects it (Ctrl/Cmd toggles, Shift
extends: ``selected`` trait). Python formats every cell; the browser only draws, so the
widget logic is testable without a browser by setting the traits.
"""
from __future__ import annotations

from .._optional import require
from ..precision.kinds import PRECISIONS

anywidget = require("anywidget", "workbench app", "ui")
traitlets = require("traitlets", "workbench app", "ui")

_ESM = r"""
function render({ model, el }) {
  el.classList.add("wb-table-root");
  const wrap = document.createElement("div");
  wrap.className = "wb-table-scroll";
  const table = document.createElement("table");
  table.className = "wb-table";
  const thead = document.createElement("thead");
  const tbody = document.createElement("tbody");
  table.append(thead, tbody);
  wrap.append(table);
  el.append(wrap);
  let anchor = null;

  function drawHead() {
    thead.innerHTML = "";
    const tr = document.createElement("tr");
    const sort = model.get("sort") || {};
    for (const c of model.get("columns")) {
      const th = document.createElement("th");
      th.textContent = c.label + (sort.key === c.key ? (sort.descending ? " ▼" : " ▲") : "");
      th.title = c.tooltip || "";
      th.dataset.key = c.key;
      th.style.textAlign = c.align || "left";
      th.onclick = () => {
        const s = model.get("sort") || {};
        model.set("sort", { key: c.key, descending: s.key === c.key ? !s.descending : !!c.descending_first });
        model.save_changes();
      };
      tr.append(th);
    }
    thead.append(tr);
  }

  function drawBody() {
    tbody.innerHTML = "";
    const cols = model.get("columns");
    const sel = new Set(model.get("selected"));
    for (const r of model.get("rows")) {
      const tr = document.createElement("tr");
      tr.dataset.key = r.key;
      if (r.cls) tr.className = r.cls;
      if (sel.has(r.key)) tr.classList.add("wb-selected");
      if (r.title) tr.title = r.title;
      r.cells.forEach((v, i) => {
        const td = document.createElement("td");
        td.textContent = v;
        td.style.textAlign = (cols[i] && cols[i].align) || "left";
        if (cols[i] && cols[i].key) td.dataset.col = cols[i].key;
        tr.append(td);
      });
      tr.onclick = (ev) => clicked(r.key, ev);
      tbody.append(tr);
    }
  }

  function clicked(key, ev) {
    const keys = model.get("rows").map((r) => r.key);
    let sel = model.get("selected").slice();
    if (ev.shiftKey && anchor !== null && keys.includes(anchor)) {
      const a = keys.indexOf(anchor), b = keys.indexOf(key);
      sel = keys.slice(Math.min(a, b), Math.max(a, b) + 1);
    } else if (ev.ctrlKey || ev.metaKey) {
      sel = sel.includes(key) ? sel.filter((k) => k !== key) : sel.concat([key]);
      anchor = key;
    } else {
      sel = [key];
      anchor = key;
    }
    model.set("selected", sel);
    model.save_changes();
  }

  function showSelected(scroll = true) {
    const sel = new Set(model.get("selected"));
    let first = null;
    for (const tr of tbody.children) {
      const on = sel.has(tr.dataset.key);
      tr.classList.toggle("wb-selected", on);
      if (on && first === null) first = tr;
    }
    if (first && scroll) {
      const top = first.offsetTop - thead.offsetHeight, bottom = first.offsetTop + first.offsetHeight;
      if (top < wrap.scrollTop || bottom > wrap.scrollTop + wrap.clientHeight) {
        wrap.scrollTop = Math.max(0, top - wrap.clientHeight / 3);
      }
    }
  }

  function size() { wrap.style.maxHeight = model.get("height") + "px"; }

  // a new sort order starts at the top (the old scroll position would show arbitrary rows)
  let sorted = false;
  const toTop = () => { wrap.scrollTop = 0; wrap.scrollLeft = 0; };
  model.on("change:columns", () => { drawHead(); drawBody(); });
  model.on("change:sort", () => { drawHead(); sorted = true; toTop(); });
  model.on("change:rows", () => {
    drawBody();
    if (sorted) { sorted = false; toTop(); showSelected(false); } else showSelected();
  });
  model.on("change:selected", showSelected);
  model.on("change:height", size);
  size(); drawHead(); drawBody(); showSelected();
}
export default { render };
"""

_CSS = """
.wb-table-scroll { overflow: auto; border: 1px solid #ddd; }
.wb-table { border-collapse: collapse; width: 100%; font-size: 11px; font-family: var(--jp-code-font-family, monospace); }
.wb-table th { position: sticky; top: 0; background: #f3f3f3; cursor: pointer; padding: 3px 4px;
  border-bottom: 1px solid #ccc; white-space: normal; vertical-align: bottom;
  font-family: var(--jp-ui-font-family, sans-serif); user-select: none; }
.wb-table td { padding: 1px 4px; white-space: nowrap; border-bottom: 1px solid #f0f0f0; cursor: pointer; }
.wb-table tr:hover td { background: #eef5fc; }
.wb-table tr.wb-selected td { background: #cfe3f7; }
.wb-table tr.manual td[data-col="amax"] { color: #c05000; }
"""
# the precision column in the registry's colours (one source: workbench.precision.kinds)
_CSS += "".join(f'.wb-table tr.prec-{p.precision.value} td[data-col="precision"] {{ color: {p.color}; font-weight: bold; }}\n'
                for p in PRECISIONS.values())


class DataTable(anywidget.AnyWidget):
    """Rows of preformatted cells with labelled, sortable columns and a shared selection.

    Traits (all synced with the browser):
        columns: ``[{"key", "label", "tooltip", "align"}]``.
        rows: ``[{"key": row id, "cells": [str, ...], "cls": css classes, "title": tooltip}]``.
        selected: the selected row keys (the browser sets it on click; Python may set it).
        sort: ``{"key": column key, "descending": bool}`` (the browser sets it on a header click).
        height: the most pixels the table takes before it scrolls.
    """

    _esm = _ESM
    _css = _CSS
    columns = traitlets.List([]).tag(sync=True)
    rows = traitlets.List([]).tag(sync=True)
    selected = traitlets.List([]).tag(sync=True)
    sort = traitlets.Dict({}).tag(sync=True)
    height = traitlets.Int(320).tag(sync=True)

    def click_row(self, key: str, *, ctrl: bool = False) -> None:
        """What a click on row ``key`` does in the browser (for scripts and tests)."""
        if ctrl:
            self.selected = [k for k in self.selected if k != key] if key in self.selected else [*self.selected, key]
        else:
            self.selected = [key]

    def click_header(self, key: str) -> None:
        """What a click on column ``key``'s header does in the browser."""
        same = self.sort.get("key") == key
        col = next((c for c in self.columns if c.get("key") == key), {})
        first = bool(col.get("descending_first"))
        self.sort = {"key": key, "descending": (not self.sort.get("descending")) if same else first}
