"""A light plot widget: a plotly figure drawn in the browser, clicks sent back to Python.

plotly's own ``FigureWidget`` ships its 5 MB JavaScript bundle inside every widget's state and
the browser compiles it once per widget; anywidget gives each widget 2 s to get ready, so on a
busy machine an app with five plots came up with empty plots. This widget sends plotly.js
once per page (only when the page has none) and each plot is then a small JSON figure.

Python keeps the figure (a ``plotly.graph_objects.Figure``): ``view.data`` / ``view.layout``
read it, :meth:`PlotView.show` replaces it, :meth:`PlotView.restyle` / :meth:`relayout` change
a part of it (a dragged threshold line, the graph's view window) without resending the rest.
Clicks call the callbacks registered with :meth:`on_click` per trace ``meta``;
:meth:`click` does the same from Python (tests, scripts).
"""
from __future__ import annotations

import json
from typing import Callable

from .._optional import require

anywidget = require("anywidget", "workbench app", "ui")
traitlets = require("traitlets", "workbench app", "ui")
go = require("plotly.graph_objects", "workbench app", "ui", package="plotly")

_ESM = r"""
const KEY = "__workbenchPlotly";

function plotlyReady(model) {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window[KEY]) {
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    window[KEY] = { promise, resolve, asked: false };
  }
  const state = window[KEY];
  if (!state.asked) { state.asked = true; model.send({ type: "need-plotly" }); }
  return state.promise;
}

function installPlotly(text) {
  if (!window.Plotly) {
    const amd = window.define;
    window.define = undefined;  // plotly.min.js is UMD: make it set window.Plotly
    const s = document.createElement("script");
    s.textContent = text;
    document.head.appendChild(s);
    window.define = amd;
  }
  const state = window[KEY];
  if (state) state.resolve(window.Plotly);
}

function render({ model, el }) {
  const div = document.createElement("div");
  div.className = "wb-plot-div";
  el.appendChild(div);
  let P = null;
  let drawn = false;
  const config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

  function draw() {
    if (!P) return;
    const spec = model.get("spec") || {};
    P.react(div, spec.data || [], spec.layout || {}, config);
    if (!drawn) {
      drawn = true;
      div.on("plotly_click", (ev) => {
        const pt = ev.points && ev.points[0];
        if (!pt) return;
        const index = pt.pointIndex !== undefined ? pt.pointIndex : pt.pointNumber;
        model.send({ type: "click", trace: pt.curveNumber, index });
      });
    }
  }
  // keep the model's figure in step with restyle/relayout (a view drawn later starts from it)
  function setPath(obj, path, value) {
    const keys = path.split(".");
    let o = obj;
    for (const k of keys.slice(0, -1)) { if (typeof o[k] !== "object" || o[k] === null) o[k] = {}; o = o[k]; }
    o[keys[keys.length - 1]] = value;
  }
  const onMsg = (msg) => {
    if (msg.type === "plotly") { installPlotly(msg.text); return; }
    const spec = model.get("spec") || {};
    if (msg.type === "restyle" && spec.data && spec.data[msg.index]) {
      for (const [k, v] of Object.entries(msg.props)) setPath(spec.data[msg.index], k, v[0]);
    } else if (msg.type === "relayout") {
      spec.layout = spec.layout || {};
      for (const [k, v] of Object.entries(msg.props)) setPath(spec.layout, k, v);
    }
    if (!P || !drawn) return;
    if (msg.type === "restyle") P.restyle(div, msg.props, [msg.index]);
    else if (msg.type === "relayout") P.relayout(div, msg.props);
  };
  model.on("msg:custom", onMsg);
  model.on("change:spec", draw);
  const ro = new ResizeObserver(() => { if (P && drawn && div.offsetParent !== null) P.Plots.resize(div); });
  ro.observe(el);
  plotlyReady(model).then((plotly) => { P = plotly; draw(); });
  return () => {
    ro.disconnect(); model.off("msg:custom", onMsg); model.off("change:spec", draw);
    if (P) P.purge(div);
  };
}
export default { render };
"""

_CSS = ".wb-plot-div { width: 100%; }"
_PLOTLY_JS: str | None = None


def _plotly_js() -> str:
    global _PLOTLY_JS
    if _PLOTLY_JS is None:
        from plotly.offline import get_plotlyjs

        _PLOTLY_JS = get_plotlyjs()
    return _PLOTLY_JS


def _json(obj) -> dict:
    """JSON-safe plain data (numpy arrays to lists, NaN to null) through plotly's encoder."""
    import plotly.io as pio

    return json.loads(pio.to_json(obj, validate=False))


class PlotView(anywidget.AnyWidget):
    """A plotly figure in the app (see the module docstring)."""

    _esm = _ESM
    _css = _CSS
    spec = traitlets.Dict({}).tag(sync=True)

    def __init__(self, figure=None, **kwargs):
        super().__init__(**kwargs)
        self.figure = go.Figure()
        self._click: dict[str, list[Callable]] = {}
        self.on_msg(self._message)
        if figure is not None:
            self.show(figure)

    # ------------------------------------------------------------------ the figure
    @property
    def data(self):
        return self.figure.data

    @property
    def layout(self):
        return self.figure.layout

    def show(self, figure) -> None:
        """Draw ``figure`` (a plotly Figure, kept as is, or its dict; replaces the previous one)."""
        self.figure = figure if isinstance(figure, go.Figure) else go.Figure(figure)
        d = self.figure.to_plotly_json()
        self.spec = _json({"data": d["data"], "layout": d["layout"]})

    def _index(self, meta: str) -> int | None:
        for i, t in enumerate(self.figure.data):
            if t.meta == meta or (isinstance(t.meta, (list, tuple)) and meta in t.meta):
                return i
        return None

    def restyle(self, meta: str, **props) -> bool:
        """Change properties of the trace whose meta is ``meta`` (e.g. ``x=[a, a]``, or a plotly
        path: ``**{"marker.line.width": [...]}``) in Python and in the browser; False when there
        is no such trace."""
        i = self._index(meta)
        if i is None:
            return False
        self.figure.data[i].update(**{k.replace(".", "_"): v for k, v in props.items()})
        data = _json(props)
        self.send({"type": "restyle", "index": i, "props": {k: [v] for k, v in data.items()}})
        return True

    def relayout(self, **props) -> None:
        """Change layout properties given as plotly paths (``{"xaxis.range": [0, 10]}``)."""
        self.figure.update_layout(**{k.replace(".", "_"): v for k, v in props.items()})
        self.send({"type": "relayout", "props": _json(props)})

    # ------------------------------------------------------------------ clicks
    def on_click(self, meta: str, callback: Callable) -> None:
        """Call ``callback(point)`` when a point of the trace ``meta`` is clicked; ``point`` is a
        dict with index, x, y and customdata (None when the trace has none)."""
        self._click.setdefault(meta, []).append(callback)

    def click(self, meta: str, index: int) -> None:
        """What a click on point ``index`` of trace ``meta`` does in the browser."""
        i = self._index(meta)
        if i is None:
            raise KeyError(f"no trace '{meta}' in this plot")
        self._clicked(i, index)

    def _clicked(self, trace: int, index: int) -> None:
        if not 0 <= trace < len(self.figure.data):
            return
        t = self.figure.data[trace]
        metas = t.meta if isinstance(t.meta, (list, tuple)) else [t.meta]

        def pick(values):
            return values[index] if values is not None and 0 <= index < len(values) else None
        point = {"index": index, "x": pick(t.x), "y": pick(t.y), "customdata": pick(getattr(t, "customdata", None))}
        for m in metas:
            for cb in self._click.get(m, []):
                cb(point)

    def _message(self, widget, content, buffers) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "need-plotly":
            self.send({"type": "plotly", "text": _plotly_js()})
        elif kind == "click":
            self._clicked(int(content.get("trace", -1)), int(content.get("index", -1)))
