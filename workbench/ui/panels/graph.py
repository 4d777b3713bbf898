"""Model graph view: the ONNX graph as a layered DAG, coloured by precision, per-layer SQNR or
sensitivity, Q/DQ positions marked; a click on a node selects it everywhere."""
from __future__ import annotations

import html

from ..._optional import require
from ...session import Event
from .. import graph_plot
from ..graph_layout import layered_layout, model_graph
from .base import Panel

w = require("ipywidgets", "workbench app", "ui")
go = require("plotly.graph_objects", "workbench app", "ui", package="plotly")

COLOR_CHOICES = (("precision", "precision"), ("per-layer SQNR", "sqnr"), ("sensitivity", "sensitivity"))
SHOW_CHOICES = (("all nodes", "all"), ("quantizable only", "quantizable"))
#: above this many nodes the view starts with the quantizable nodes only
COLLAPSE_ABOVE = 300


class GraphPanel(Panel):
    name, title = "graph", "Model graph"
    events = frozenset({Event.MODEL, Event.PLAN, Event.BUILD, Event.SENSITIVITY, Event.SELECTION, Event.RANGES})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.color_by = w.ToggleButtons(options=COLOR_CHOICES, value="precision", description="Colour",
                                        tooltips=["INT8 / FP16 / FP32 in the plan",
                                                  "per-layer SQNR of the last build (red = low)",
                                                  "output SQNR with only that node INT8 (run the ranking first)"],
                                        style={"button_width": "auto", "description_width": "48px"})
        self.color_by.add_class("wb-graph-color")
        self.show_nodes = w.Dropdown(options=SHOW_CHOICES, value="all", description="Show",
                                     tooltip="hide the nodes that cannot be quantized (their edges are contracted)",
                                     layout=w.Layout(width="210px"), style={"description_width": "40px"})
        self.show_nodes.add_class("wb-graph-show")
        self.info = w.HTML(layout=w.Layout(flex="1 1 auto", min_width="0"))
        self.info.add_class("wb-graph-info")
        self.figure = go.FigureWidget(go.Figure().update_layout(height=330))
        self.figure.add_class("wb-graph")
        self.color_by.observe(lambda ch: self.redraw(), names="value")
        self.show_nodes.observe(lambda ch: self.redraw(relayout=True), names="value")
        self.layout = None
        self._graph = None
        self._bound = None
        self.widget = w.VBox([w.HBox([self.color_by, self.show_nodes, self.info],
                                     layout=w.Layout(align_items="center", flex_flow="row wrap", width="100%")),
                              self.figure], layout=w.Layout(width="100%"))

    # ------------------------------------------------------------------ layout (pure, cached per model)
    def _relayout(self) -> None:
        info = self.session.model_info
        nodes, edges, ops = model_graph(info)
        if self._graph is None or self._graph[0] is not info:
            if len(nodes) > COLLAPSE_ABOVE and self.show_nodes.value == "all":
                self.show_nodes.value = "quantizable"  # observer calls redraw(relayout=True)
                return
        keep = set(self.session.graph_view()["quantizable"]) if self.show_nodes.value == "quantizable" else None
        self.layout = layered_layout(nodes, edges, keep=keep)
        self._graph = (info, ops)

    def _clicked(self, trace, points, state) -> None:
        if not points.point_inds:
            return
        node = trace.customdata[points.point_inds[0]]
        if node in self.session.graph_view()["quantizable"]:
            self.runner.guard(self.ctx.select)(node)
        else:
            op = self._graph[1].get(node, "?") if self._graph else "?"
            self.info.value = (f"<span style='font-size:12px'><b>{html.escape(node)}</b> ({html.escape(op)}) "
                               "cannot be quantized: it has no range or precision to set.</span>")

    def redraw(self, relayout: bool = False) -> None:
        s = self.session
        if s.model_info is None:
            return
        if relayout or self._graph is None or self._graph[0] is not s.model_info:
            self._relayout()
            if self.layout is None:
                return
        view = s.graph_view()
        mode = self.color_by.value
        values = {"sqnr": view["sqnr"], "sensitivity": view["sensitivity"]}.get(mode)
        details = {n: f"{len(h)} hidden node(s) on its inputs" for n, h in self.layout.hidden.items()}
        marks = graph_plot.qdq_marks(self.layout, view["qdq"], view["producer"])
        fig = graph_plot.graph_figure(self.layout, op_types=self._graph[1], precisions=view["precision"],
                                      values=values, color_by=mode, qdq=marks, selected=s.selected,
                                      details=details)
        nodes_trace = plots_nodes(self.figure)
        from ..plots import update_figure_in_place

        update_figure_in_place(self.figure, fig)
        trace = plots_nodes(self.figure)
        if trace is not None and trace is not nodes_trace:
            trace.on_click(self._clicked)
        missing = {"sqnr": "no build yet: press Rebuild", "sensitivity": "no ranking yet: run the ranking"}
        note = f" ({missing[mode]})" if values is not None and not values else ""
        self.info.value = (f"<span style='font-size:12px'>{len(self.layout.nodes)} nodes shown, "
                           f"{len(marks)} Q/DQ pairs{html.escape(note)}. Drag to pan, scroll to zoom.</span>")

    def show_selection(self) -> None:
        """Move the ring to the selected node and bring it into view (no full redraw)."""
        s = self.session
        if self.layout is None or s.selected not in self.layout.x:
            return
        rings = [t for t in self.figure.data if t.meta == "selected"]
        if not rings:
            return
        lo, hi = graph_plot.graph_window(self.layout, s.selected, 60)
        with self.figure.batch_update():
            rings[0].x, rings[0].y = [self.layout.x[s.selected]], [self.layout.y[s.selected]]
            xr = self.figure.layout.xaxis.range
            if xr is not None and not (xr[0] <= self.layout.x[s.selected] <= xr[1]):
                self.figure.layout.xaxis.range = [lo, hi]

    def refresh(self, event) -> None:
        if event == Event.SELECTION:
            self.show_selection()
        else:
            self.redraw(relayout=event in (Event.MODEL, Event.ALL))


def plots_nodes(fig):
    """The node trace of a graph figure (None before the first draw)."""
    return next((t for t in fig.data if t.meta == "nodes"), None)
