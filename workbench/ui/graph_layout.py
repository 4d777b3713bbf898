"""Layered drawing of a model graph (a DAG), computed in plain Python: no widgets, no plotly.

Sugiyama-style, in four steps:

1. **Collapse** (optional): nodes outside ``keep`` are hidden and the edges through them are
   contracted, so a 700-node transformer can be shown by its quantizable nodes alone.
2. **Layering** by longest path: a node sits one layer after its latest predecessor. Edges
   that span several layers get a dummy point per layer they cross (drawn as bends).
3. **Ordering** within layers by barycentric sweeps (down, then up), keeping the order with
   the fewest crossings seen.
4. **Coordinates**: layers along x; along y each node is pulled to the mean position of its
   neighbours under the order and a minimum gap of 1 (least squares, pool-adjacent-violators),
   so a chain is a straight line and a residual branch bends around it.

:func:`model_graph` reads nodes and edges from a :class:`workbench.graph.model.ModelInfo`.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Iterable, Sequence


@dataclass
class GraphLayout:
    """Positions of the visible nodes and the polylines of the edges between them.

    Attributes:
        nodes: the visible nodes in layer order (then top to bottom).
        x, y: node -> coordinate (x = layer index * ``layer_gap``).
        layer: node -> layer index.
        edges: ``(source, target, [(x, y), ...])`` with the bend points of long edges.
        hidden: visible node -> the hidden nodes contracted into its incoming edges.
        n_layers, crossings: number of layers and of edge crossings between adjacent layers.
    """

    nodes: list
    x: dict
    y: dict
    layer: dict
    edges: list
    hidden: dict = field(default_factory=dict)
    n_layers: int = 0
    crossings: int = 0


def _topological(nodes: Sequence[str], preds: dict) -> list:
    """Nodes in a topological order that keeps the given order where it can (Kahn, stable)."""
    index = {n: i for i, n in enumerate(nodes)}
    succ: dict = {n: [] for n in nodes}
    indeg = {n: 0 for n in nodes}
    for v in nodes:
        for u in preds[v]:
            succ[u].append(v)
            indeg[v] += 1
    ready = [(index[n], n) for n in nodes if indeg[n] == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        _, n = heapq.heappop(ready)
        out.append(n)
        for v in succ[n]:
            indeg[v] -= 1
            if indeg[v] == 0:
                heapq.heappush(ready, (index[v], v))
    if len(out) != len(nodes):  # a cycle (not a valid ONNX graph): keep the rest in file order
        seen = set(out)
        out += [n for n in nodes if n not in seen]
    return out


def collapse(nodes: Sequence[str], edges: Iterable[tuple], keep: set | None) -> tuple:
    """Contract the nodes outside ``keep``: returns ``(visible nodes, edges, hidden)`` where an
    edge u -> v exists when v is reachable from u through hidden nodes only, and ``hidden[v]``
    lists the hidden nodes on v's incoming paths."""
    preds: dict = {n: [] for n in nodes}
    for u, v in edges:
        if u in preds and v in preds and u != v and u not in preds[v]:
            preds[v].append(u)
    if keep is None:
        return list(nodes), [(u, v) for v in nodes for u in preds[v]], {}
    order = _topological(list(nodes), preds)
    sources: dict = {}   # hidden node -> visible nodes that reach it through hidden nodes
    via: dict = {}       # hidden node -> hidden nodes on those paths
    out_edges, hidden = [], {}
    for n in order:
        srcs, through = [], []
        for u in preds[n]:
            if u in keep:
                srcs.append(u)
            else:
                srcs += sources.get(u, [])
                through += via.get(u, []) + [u]
        srcs = list(dict.fromkeys(srcs))
        if n in keep:
            out_edges += [(u, n) for u in srcs]
            if through:
                hidden[n] = list(dict.fromkeys(through))
        else:
            sources[n], via[n] = srcs, list(dict.fromkeys(through))
    return [n for n in nodes if n in keep], out_edges, hidden


def _pav(targets: list, weights: list | None = None) -> list:
    """Weighted least-squares positions closest to ``targets`` that keep the order with gaps
    >= 1 (pool adjacent violators on ``target - index``)."""
    weights = weights or [1.0] * len(targets)
    blocks: list = []  # [weighted sum, weight, count]
    for i, (t, wt) in enumerate(zip(targets, weights)):
        blocks.append([(t - i) * wt, wt, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, wsum, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += wsum
            blocks[-1][2] += c
    out = []
    for s, wsum, c in blocks:
        out += [s / wsum] * c
    return [z + i for i, z in enumerate(out)]


def _crossings(upper: dict, lower_pos: dict, links: list) -> int:
    """Edge crossings between two adjacent layers (``links`` = [(u, v)], u in the upper layer)."""
    pairs = sorted((upper[u], lower_pos[v]) for u, v in links)
    count = 0
    for i in range(len(pairs)):
        a, b = pairs[i]
        for j in range(i + 1, len(pairs)):
            if pairs[j][0] > a and pairs[j][1] < b:
                count += 1
    return count


def layered_layout(nodes: Sequence[str], edges: Iterable[tuple], *, keep: set | None = None,
                   sweeps: int = 6, layer_gap: float = 1.0) -> GraphLayout:
    """Lay out a DAG in layers (see the module docstring).

    Args:
        nodes: node names (their order is the tie-break: file order keeps related nodes close).
        edges: ``(source, target)`` pairs; pairs naming unknown nodes are ignored.
        keep: show only these nodes, contracting edges through the others (None: all).
        sweeps: barycentric ordering passes (each a down and an up sweep).
        layer_gap: distance between layers along x.
    """
    visible, vedges, hidden = collapse(nodes, edges, keep)
    preds: dict = {n: [] for n in visible}
    for u, v in vedges:
        preds[v].append(u)
    order = _topological(visible, preds)
    layer: dict = {}
    for n in order:
        layer[n] = 1 + max((layer[u] for u in preds[n]), default=-1)
    n_layers = 1 + max(layer.values(), default=-1)
    # long edges get one dummy point per crossed layer
    layers: list = [[] for _ in range(n_layers)]
    for n in order:
        layers[layer[n]].append(n)
    down: dict = {n: [] for n in visible}    # item -> items in the next layer
    up: dict = {n: [] for n in visible}
    chains = []
    for u, v in vedges:
        chain = [u]
        for k in range(layer[u] + 1, layer[v]):
            d = ("dummy", u, v, k)
            layers[k].append(d)
            down[d], up[d] = [], []
            chain.append(d)
        chain.append(v)
        for a, b in zip(chain, chain[1:]):
            down[a].append(b)
            up[b].append(a)
        chains.append((u, v, chain))
    pos = [{n: i for i, n in enumerate(items)} for items in layers]

    def total_crossings() -> int:
        return sum(_crossings(pos[k], pos[k + 1], [(a, b) for a in layers[k] for b in down[a]])
                   for k in range(n_layers - 1))

    def sweep(ks, nbrs, ref_offset) -> None:
        for k in ks:
            ref = pos[k + ref_offset]
            bary = {}
            for n in layers[k]:
                ps = [ref[m] for m in nbrs[n]]
                bary[n] = sum(ps) / len(ps) if ps else pos[k][n]
            # dummies (bends of long edges) give way to nodes, always on the same side
            layers[k].sort(key=lambda n: (bary[n], 0 if isinstance(n, tuple) else 1, pos[k][n]))
            pos[k] = {n: i for i, n in enumerate(layers[k])}

    best = total_crossings()
    best_layers = [list(items) for items in layers]
    for _ in range(sweeps if best else 0):
        sweep(range(1, n_layers), up, -1)
        sweep(range(n_layers - 2, -1, -1), down, +1)
        c = total_crossings()
        if c < best:
            best, best_layers = c, [list(items) for items in layers]
        if best == 0:
            break
    layers = best_layers
    # y coordinates: start from the order, then pull towards the neighbours' mean
    y: dict = {}
    for items in layers:
        real = [n for n in items if not isinstance(n, tuple)]
        for i, n in enumerate(real):
            y[n] = i - (len(real) - 1) / 2
        for n in items:
            y.setdefault(n, 0.0)
    for _ in range(4):
        for k in [*range(1, n_layers), *range(n_layers - 2, -1, -1)]:
            items = layers[k]
            targets = []
            for n in items:
                near = up[n] + down[n]
                if not isinstance(n, tuple):  # a node follows nodes; bends follow whatever they join
                    near = [m for m in near if not isinstance(m, tuple)] or near
                ps = [y[m] for m in near]
                targets.append(sum(ps) / len(ps) if ps else y[n])
            # nodes keep their line; the bends of long edges move out of the way
            weights = [0.01 if isinstance(n, tuple) else 1.0 for n in items]
            for n, v in zip(items, _pav(targets, weights)):
                y[n] = v
    x = {n: layer[n] * layer_gap for n in visible}
    edges_out = []
    for u, v, chain in chains:
        pts = [(layer[u] * layer_gap, y[u])]
        pts += [(c[3] * layer_gap, y[c]) for c in chain[1:-1]]
        pts.append((layer[v] * layer_gap, y[v]))
        edges_out.append((u, v, pts))
    ordered = [n for items in layers for n in items if not isinstance(n, tuple)]
    return GraphLayout(ordered, x, {n: y[n] for n in visible}, layer, edges_out, hidden, n_layers, best)


def model_graph(model_info) -> tuple:
    """``(nodes, edges, op_types)`` of an ONNX model: every node by name, an edge from the
    producer of each tensor to each node that reads it."""
    nodes = [n.name for n in model_info.nodes]
    producer = {}
    for n in model_info.nodes:
        for out in n.output:
            if out:
                producer[out] = n.name
    edges = []
    for n in model_info.nodes:
        for x in n.input:
            if x in producer and producer[x] != n.name:
                edges.append((producer[x], n.name))
    return nodes, list(dict.fromkeys(edges)), {n.name: n.op_type for n in model_info.nodes}
