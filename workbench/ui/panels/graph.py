"""Model graph view: the ONNX graph as a layered DAG, coloured by precision, per-layer SQNR or
sensitivity, Q/DQ positions marked; a click on a node selects it everywhere."""
from __future__ import annotations

import html

from ..._optional import require
from ...session import Event
from .. import graph_plot
from ..graph_layout import layered_layout, model_graph
from ..plotview import PlotView
from .base import Panel

w = require("ipywidgets", "workbench app", "ui")
go = require("plotly.graph_objects", "workbench app", "ui", package="plotly")

COLOR_CHOICES = (("precision", "precision"), ("per-layer SQNR", "sqnr"), ("sensitivity", "sensitivity"),
                 ("range sensitivity", "range"))
SHOW_CHOICES = (("all nodes", "all"), ("quantizable only", "quantizable"))
#: above this many nodes the view starts with the quantizable nodes only
COLLAPSE_ABOVE = 300


class GraphPanel(Panel):
    name, title = "graph", "Model graph"
    events = frozenset({Event.MODEL, Event.PLAN, Event.BUILD, Event.SENSITIVITY, Event.SELECTION, Event.RANGES})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.color_by = w.Dropdown(options=COLOR_CHOICES, value="precision", description="Colour by",
                                   tooltip="precision in the plan; per-layer SQNR of the last build (red = low); "
                                           "sensitivity: output SQNR with only that node INT8 (run the ranking first); "
                                           "range sensitivity: what its input's threshold costs (Explain thresholds)",
                                   layout=w.Layout(width="230px", flex="0 0 auto"), style={"description_width": "64px"})
        self.color_by.add_class("wb-graph-color")
        self.show_nodes = w.Dropdown(options=SHOW_CHOICES, value="all", description="Show",
                                     tooltip="hide the nodes that cannot be quantized (their edges are contracted)",
                                     layout=w.Layout(width="210px"), style={"description_width": "40px"})
        self.show_nodes.add_class("wb-graph-show")
        self.info = w.HTML(layout=w.Layout(flex="1 1 auto", min_width="0"))
        self.info.add_class("wb-graph-info")
        self.figure = PlotView(go.Figure().update_layout(height=graph_plot.HEIGHT))
        self.figure.on_click("nodes", self._clicked)
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

    def _clicked(self, point: dict) -> None:
        node = point["customdata"]
        if node is None:
            return
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
        values = {"sqnr": view["sqnr"], "sensitivity": view["sensitivity"], "range": view["range"]}.get(mode)
        details = {n: f"{len(h)} hidden node(s) on its inputs" for n, h in self.layout.hidden.items()}
        marks = graph_plot.qdq_marks(self.layout, view["qdq"], view["producer"])
        fig = graph_plot.graph_figure(self.layout, op_types=self._graph[1], precisions=view["precision"],
                                      values=values, color_by=mode, qdq=marks, selected=s.selected,
                                      details=details)
        self.figure.show(fig)
        missing = {"sqnr": "no build yet: press Rebuild", "sensitivity": "no ranking yet: run the ranking",
                   "range": "not explained yet: press Explain thresholds"}
        note = f" ({missing[mode]})" if values is not None and not values else ""
        self.info.value = (f"<span style='font-size:12px'>{len(self.layout.nodes)} nodes shown, "
                           f"{len(marks)} Q/DQ pairs{html.escape(note)}. Drag to pan, scroll to zoom.</span>")

    def show_selection(self) -> None:
        """Move the ring to the selected node and bring it into view (no full redraw)."""
        s = self.session
        if self.layout is None or s.selected not in self.layout.x:
            return
        x, y = self.layout.x[s.selected], self.layout.y[s.selected]
        if not self.figure.restyle("selected", x=[x], y=[y]):
            return
        xr = self.figure.layout.xaxis.range
        if xr is not None and not (xr[0] <= x <= xr[1]):
            self.figure.relayout(**{"xaxis.range": list(graph_plot.graph_window(self.layout, s.selected, 48))})

    def refresh(self, event) -> None:
        if event == Event.SELECTION:
            self.show_selection()
        elif event == Event.SENSITIVITY and self.color_by.value != "sensitivity":
            return  # a new ranking changes nothing drawn unless the nodes are coloured by it
        else:
            self.redraw(relayout=event in (Event.MODEL, Event.ALL))
