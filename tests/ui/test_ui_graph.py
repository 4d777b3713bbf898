"""The layered graph layout (pure Python) and the graph figure built from it."""
import pytest

from workbench.ui.graph_layout import collapse, layered_layout, model_graph


def _chain(n):
    nodes = [f"n{i}" for i in range(n)]
    return nodes, list(zip(nodes, nodes[1:]))


def test_layers_follow_the_longest_path():
    # a -> b -> c -> d and a shortcut a -> d: d sits after c, not after a
    L = layered_layout(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")])
    assert [L.layer[n] for n in "abcd"] == [0, 1, 2, 3]
    (long,) = [pts for u, v, pts in L.edges if (u, v) == ("a", "d")]
    assert len(long) == 4  # two bends: one per layer it crosses
    assert all(y != L.y["b"] for _, y in long[1:3])  # the bends go round the nodes, not through them


def test_a_chain_is_a_straight_line_and_skips_bend_around_it():
    nodes, edges = _chain(12)
    edges += [("n1", "n5"), ("n5", "n9")]  # residual-style skips
    L = layered_layout(nodes, edges)
    ys = {round(L.y[n], 6) for n in nodes}
    assert len(ys) == 1 or max(ys) - min(ys) < 0.2
    assert L.crossings == 0
    for u, v, pts in L.edges:
        if (u, v) in (("n1", "n5"), ("n5", "n9")):
            assert all(abs(y - L.y[u]) >= 0.8 for _, y in pts[1:-1])


def test_ordering_removes_avoidable_crossings():
    # two parallel branches whose file order would cross them
    nodes = ["s", "a1", "b1", "b2", "a2", "t"]
    edges = [("s", "a1"), ("s", "b1"), ("a1", "a2"), ("b1", "b2"), ("a2", "t"), ("b2", "t")]
    L = layered_layout(nodes, edges)
    assert L.crossings == 0
    assert (L.y["a1"] < L.y["b1"]) == (L.y["a2"] < L.y["b2"])


def test_collapse_contracts_hidden_nodes_into_edges():
    nodes = ["conv", "reshape", "transpose", "matmul", "add"]
    edges = [("conv", "reshape"), ("reshape", "transpose"), ("transpose", "matmul"), ("matmul", "add"),
             ("conv", "add")]
    visible, vedges, hidden = collapse(nodes, edges, {"conv", "matmul", "add"})
    assert visible == ["conv", "matmul", "add"]
    assert set(vedges) == {("conv", "matmul"), ("matmul", "add"), ("conv", "add")}
    assert hidden == {"matmul": ["reshape", "transpose"]}
    L = layered_layout(nodes, edges, keep={"conv", "matmul", "add"})
    assert sorted(L.nodes) == ["add", "conv", "matmul"] and L.n_layers == 3


def test_layout_of_a_large_graph_places_every_node_once():
    nodes, edges = _chain(300)
    edges += [(f"n{i}", f"n{i + 3}") for i in range(0, 296, 4)]
    L = layered_layout(nodes, edges)
    assert sorted(L.nodes) == sorted(nodes)
    pos = {(L.x[n], L.y[n]) for n in nodes}
    assert len(pos) == len(nodes)  # no two nodes on the same spot


def test_model_graph_and_figure_of_the_sample(sample_model_path):
    pytest.importorskip("plotly")
    from workbench.graph.model import ModelInfo
    from workbench.ui import graph_plot

    info = ModelInfo.from_path(sample_model_path)
    nodes, edges, ops = model_graph(info)
    assert len(nodes) == len(info.nodes) and all(u in ops and v in ops for u, v in edges)
    L = layered_layout(nodes, edges)
    marks = graph_plot.qdq_marks(L, {"node_Conv_802": ["getitem_6"]}, {"getitem_6": "n4_2"})
    assert len(marks) == 1 and marks[0][2] == "Q/DQ on getitem_6 → node_Conv_802"
    fig = graph_plot.graph_figure(L, op_types=ops, precisions={n: "INT8" for n in nodes}, qdq=marks,
                                  selected="node_Conv_802", window=30)
    (pts,) = [t for t in fig.data if t.meta == "nodes"]
    assert len(pts.x) == len(nodes) and set(pts.customdata) == set(nodes)
    lo, hi = fig.layout.xaxis.range
    assert lo <= L.x["node_Conv_802"] <= hi and hi - lo == 30
    assert fig.layout.xaxis.rangeslider.visible  # 94 layers > 30 shown: the overview slider
    labels = {t for t in pts.text if t}
    assert "Conv" not in labels and "Add" in labels  # only the rare op types are written out
