"""Per-node overlays for Google Model Explorer: one node-data JSON per metric.

Model Explorer (``ai-edge-model-explorer``, ONNX adapter ``model-explorer-onnx``) colours
the nodes of a graph from a "node data" JSON file. We write its single-graph form
(``GraphNodeData`` in ``model_explorer.node_data_builder``)::

    {"name": "...", "results": {"<node id>": {"value": 21.3}, ...},
     "thresholds": [{"value": 15, "bgColor": "#d62728"}, ...]}

which the web app applies to the graph on screen. A threshold list is read top to bottom
and a node takes the colour of the first item with ``value <= item.value``; a gradient maps
the smallest value in ``results`` to stop 0 and the largest to stop 1. String values
(precision) carry their own ``bgColor``.

Node ids. The ONNX adapter (0.3.9 and later) shows a node under its ``name`` after
``onnx_ir``'s ``NameFixPass``: an unnamed node becomes ``node``, ``node_1``, ...; a name
already used in the same graph gets ``_1``, ``_2``, ... (one counter per base name,
shared with subgraphs). :func:`explorer_node_ids` reproduces that for the main graph, and
the test loads the exported model through the adapter to check that every id resolves.
The exporter keeps the FP32 node names (``ModelInfo`` names unnamed nodes before export),
so an FP32 node name is looked up among the exported graph's names and written under that
node's adapter id; the Q/DQ and Cast nodes the export added appear only in the precision
overlay (as "q/dq" and "cast").

Building is pure (:func:`build_explorer_overlays`); :func:`write_explorer_overlays` writes
the files of one result together. Model Explorer itself is an optional extra
(``pip install 'workbench[explorer]'``) that nothing here imports.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import onnx

from ..errors import WorkbenchError
from ..outputs import names
from ..precision import PRECISIONS, Precision

#: Colours of the bins (the house palette: matplotlib's tab10).
RED, AMBER, GREEN = "#d62728", "#ffbf00", "#2ca02c"
#: A threshold with no upper bound (JSON has no infinity).
NO_LIMIT = 1e300
#: Value and colour of the nodes the export added, in the precision overlay.
ADDED_NODES = {"QuantizeLinear": "q/dq", "DequantizeLinear": "q/dq", "Cast": "cast"}
ADDED_COLOR = "#dbdbdb"


@dataclass(frozen=True)
class OverlayMetric:
    """One overlay (one JSON file): which per-node key it shows and how it is coloured.

    Args:
        name: the file's key, e.g. ``"sqnr_db"`` -> ``<stem>.explorer.sqnr_db.json``.
        key: the key read from each node's dict (e.g. ``"sqnr_db"``).
        title: the name Model Explorer shows for the overlay.
        description: one line for documentation and reports.
        thresholds: ``(upper bound, colour)`` pairs, ascending; a value <= the bound takes the colour.
        gradient: ``(stop, colour)`` pairs from 0 (smallest value) to 1 (largest).
        categorical: values are labels (precision), coloured per value by ``colors``.
        colors: label -> colour for a categorical metric.
    """

    name: str
    key: str
    title: str
    description: str
    thresholds: tuple = ()
    gradient: tuple = ()
    categorical: bool = False
    colors: Mapping = field(default_factory=dict)


OVERLAY_METRICS = {m.name: m for m in (
    OverlayMetric("precision", "precision", "workbench: precision",
                  "INT8 / FP16 / FP32 per node; the export's Q/DQ and Cast nodes in grey",
                  categorical=True,
                  colors={**{str(p): info.color for p, info in PRECISIONS.items()},
                          **{label: ADDED_COLOR for label in ADDED_NODES.values()}}),
    OverlayMetric("sqnr_db", "sqnr_db", "workbench: output SQNR (dB)",
                  "SQNR of the node's output against FP32: red <= 15 dB, amber <= 25 dB, green above",
                  thresholds=((15.0, RED), (25.0, AMBER), (NO_LIMIT, GREEN))),
    OverlayMetric("sensitivity_rank", "sensitivity_rank", "workbench: sensitivity rank",
                  "rank 1 = the node whose quantization costs most; red (rank 1) to green (last)",
                  gradient=((0.0, RED), (0.5, AMBER), (1.0, GREEN))),
    OverlayMetric("input_amax", "amax", "workbench: input amax",
                  "amax of the node's quantized input (scale = amax / 127); white (smallest) to blue",
                  gradient=((0.0, "#ffffff"), (1.0, PRECISIONS[Precision.INT8].color))),
)}


def explorer_node_ids(model: onnx.ModelProto) -> list:
    """The id model-explorer-onnx shows for each node of ``model.graph.node`` (same order).

    Reproduces onnx_ir's ``NameFixPass`` as the adapter runs it: nodes are visited in graph
    order, each node's subgraphs right after it; names must be unique per graph; an empty
    name is replaced by ``node`` and a used one gets ``_<k>`` from a counter per base name
    that all graphs share.
    """
    counter: Counter = Counter()
    ids: list = []

    def unique(preferred: str, used: set) -> str:
        name = preferred
        while name in used:
            counter[preferred] += 1
            name = f"{preferred}_{counter[preferred]}"
        used.add(name)
        return name

    def walk(graph: onnx.GraphProto, out: list | None) -> None:
        used: set = set()
        for node in graph.node:
            node_id = unique(node.name or "node", used)
            if out is not None:
                out.append(node_id)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g, None)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for sub in attr.graphs:
                        walk(sub, None)

    walk(model.graph, ids)
    return ids


@dataclass
class ExplorerOverlays:
    """What :func:`build_explorer_overlays` made.

    ``data``: metric name -> node-data JSON object (only metrics some node has a value for).
    ``node_ids``: FP32 node name -> the id of that node in the exported graph, as the adapter shows it.
    ``missing``: FP32 node names the exported graph does not contain (e.g. folded Constants).
    ``skipped``: metric -> nodes whose value was NaN (no colour can be given; left out).
    """

    data: dict
    node_ids: dict
    missing: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)

    def to_json(self, metric: str) -> str:
        """The JSON text of ``metric``'s overlay (strict JSON: no NaN or Infinity)."""
        return json.dumps(self.data[metric], indent=1, allow_nan=False) + "\n"


def build_explorer_overlays(model: onnx.ModelProto, nodes: Mapping[str, Mapping],
                            metrics: Mapping[str, OverlayMetric] | None = None) -> ExplorerOverlays:
    """Node-data JSON objects for Model Explorer, one per metric, for the exported model.

    Args:
        model: the exported Q/DQ model (the file the user opens in Model Explorer).
        nodes: FP32 node name -> that node's values; each dict may hold any of the keys the
            metrics read: ``precision`` ("int8", "fp16", "fp32"), ``sqnr_db`` (SQNR of the node's
            output in dB; +inf for an exact output), ``sensitivity_rank`` (1 = most sensitive),
            ``amax`` (amax of its quantized input). Missing keys are fine; an unknown key or a
            bad value is a WorkbenchError.
        metrics: the overlays to make (default :data:`OVERLAY_METRICS`).

    Nodes the export added (Q/DQ, Cast) are shown in the precision overlay when it is made.
    """
    metrics = OVERLAY_METRICS if metrics is None else metrics
    keys = {m.key for m in metrics.values()}
    for name, values in nodes.items():
        unknown = sorted(set(values) - keys)
        if unknown:
            raise WorkbenchError(f"Node '{name}' has value(s) {unknown} that no overlay shows; "
                                 f"the overlays read: {', '.join(sorted(keys))}.")
    graph_nodes = list(model.graph.node)
    ids = explorer_node_ids(model)
    id_of: dict = {}
    for node, node_id in zip(graph_nodes, ids):
        if node.name:
            id_of.setdefault(node.name, node_id)  # a repeated name: the first keeps it
    node_ids = {n: id_of[n] for n in nodes if n in id_of}
    missing = [n for n in nodes if n not in id_of]
    if nodes and not node_ids:
        own = [n.name for n in graph_nodes if n.op_type not in ADDED_NODES]
        have = ", ".join(f"'{n}'" for n in own[:8]) + (", ..." if len(own) > 8 else "")
        raise WorkbenchError(f"None of the {len(nodes)} node names given (e.g. '{next(iter(nodes))}') is in "
                             f"the exported model '{model.graph.name}'; its nodes are: {have}.")
    added = {node_id: ADDED_NODES[node.op_type] for node, node_id in zip(graph_nodes, ids)
             if node.op_type in ADDED_NODES and node.name not in nodes}
    out = ExplorerOverlays({}, node_ids, missing)
    for metric in metrics.values():
        values = {node_ids[n]: (n, v[metric.key]) for n, v in nodes.items()
                  if n in node_ids and metric.key in v}
        if not values:
            continue
        if metric.categorical:
            data = _categorical(metric, values, added)
        else:
            data, skipped = _numeric(metric, values)
            if skipped:
                out.skipped[metric.name] = skipped
        out.data[metric.name] = data
    return out


def _categorical(metric: OverlayMetric, values: dict, added: dict) -> dict:
    results = {}
    for node_id, (name, value) in values.items():
        label = str(value).lower()
        if label not in metric.colors:
            choices = ", ".join(k for k in metric.colors if k not in ADDED_NODES.values())
            raise WorkbenchError(f"Node '{name}' has {metric.key} {value!r}; expected one of: {choices}.")
        results[node_id] = {"value": label, "bgColor": metric.colors[label]}
    for node_id, label in added.items():
        results.setdefault(node_id, {"value": label, "bgColor": metric.colors[label]})
    return {"name": metric.title, "results": results, "showExpandedSummaryOnGroupNode": True,
            "showLabelCountColumnsInChildrenStatsTable": True}


def _numeric(metric: OverlayMetric, values: dict) -> tuple:
    results, skipped = {}, []
    for node_id, (name, value) in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
            raise WorkbenchError(f"Node '{name}' has {metric.key} {value!r}; expected a number.")
        x = float(value)
        if math.isnan(x):
            skipped.append(name)
        elif math.isinf(x):  # JSON has no infinity: a label, coloured as its end of the scale
            results[node_id] = {"value": "inf" if x > 0 else "-inf", "bgColor": _end_color(metric, x > 0)}
        else:
            results[node_id] = {"value": int(x) if x.is_integer() and abs(x) < 2 ** 53 else x}
    data = {"name": metric.title, "results": results, "hideAggregatedStats": ["sum"]}
    if metric.thresholds:
        data["thresholds"] = [{"value": v, "bgColor": c} for v, c in metric.thresholds]
    if metric.gradient:
        data["gradient"] = [{"stop": s, "bgColor": c} for s, c in metric.gradient]
    return data, skipped


def _end_color(metric: OverlayMetric, top: bool) -> str:
    scale = metric.gradient or metric.thresholds
    return scale[-1][1] if top else scale[0][1]


def overlay_path(stem, metric: str) -> Path:
    """The overlay file of ``metric`` for result ``stem``: ``out/model`` -> ``out/model.explorer.sqnr_db.json``."""
    stem = Path(stem)
    return names.overlay_path(stem, metric)


def overlay_files(stem, metrics) -> dict:
    """metric -> file for each of ``metrics`` (names, or an ExplorerOverlays' ``data``), for a
    caller's :class:`workbench.outputs.ResultWriter`."""
    return {m: overlay_path(stem, m) for m in metrics}


def write_explorer_overlays(overlays: ExplorerOverlays, stem, *, result=None, inputs=(),
                            overwrite: bool = False) -> dict:
    """Write every overlay of ``overlays`` as ``<stem>.explorer.<metric>.json``; returns metric -> path.

    Args:
        overlays: from :func:`build_explorer_overlays`.
        stem: the result's stem (``out/model`` for ``out/model.onnx``).
        result: a ResultWriter that declared :func:`overlay_files` (the caller commits it with
            the rest of its result); None: these files are one result of their own.
        inputs: the command's input files (no overlay may replace one), without ``result``.
        overwrite: without ``result``, replace existing overlay files (default False: refused).
    """
    from contextlib import nullcontext

    from .._io import atomic_write_text
    from ..outputs import ResultWriter

    files = overlay_files(stem, overlays.data)
    writer = nullcontext(result) if result is not None else ResultWriter(
        list(files.values()), inputs=inputs, overwrite=overwrite,
        what=f"Model Explorer overlays of '{Path(stem).name}'")
    with writer as res:
        for metric, path in files.items():
            atomic_write_text(res.path(path), overlays.to_json(metric))
    return files
