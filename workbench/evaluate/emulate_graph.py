"""ONNX building blocks of the emulation graph (:mod:`workbench.evaluate.emulate`): node variants, ``If``
switches, float16 rounding, and feeds merged into few session calls."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..errors import InternalError


def fp16_round(x: str, name: str) -> list:
    """Nodes that round ``x`` to float16 and back into ``name``."""
    return [helper.make_node("Cast", [x], [name + "_16"], to=TensorProto.FLOAT16),
            helper.make_node("Cast", [name + "_16"], [name], to=TensorProto.FLOAT)]


def _graph(nodes: list, out_value: str, name: str) -> onnx.GraphProto:
    if not nodes or out_value not in nodes[-1].output:
        nodes = list(nodes) + [helper.make_node("Identity", [out_value], [name + "_o"])]
        out_value = name + "_o"
    return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(out_value, TensorProto.FLOAT, None)])


def branch(nodes: list, cond: str, then_nodes: list, then_out: str, else_nodes: list, else_out: str,
            out: str) -> None:
    """Append ``out = cond ? (then_nodes -> then_out) : (else_nodes -> else_out)`` as an ONNX ``If``.

    An ``If`` runs only the taken branch, so a switched-off fake-quant costs nothing but the copy
    of the value passed through (a ``Where`` would compute both sides on every run).
    """
    nodes.append(helper.make_node("If", [cond], [out], then_branch=_graph(then_nodes, then_out, out + "_then"),
                                  else_branch=_graph(else_nodes, else_out, out + "_else")))


def merge_batches(batches: list, max_rows: int = 64) -> list:
    """``batches`` (feeds stacked on axis 0) regrouped into as few feeds of at most ``max_rows``
    rows as possible: each session call has a fixed cost (every ``If`` and ``Gather`` of the
    emulation graph), so a search makes one call per evaluation where it can."""
    if len(batches) <= 1:
        return list(batches)
    out, pending, rows = [], [], 0
    for feed in batches:
        n = len(next(iter(feed.values()))) if feed else 0
        if pending and (rows + n > max_rows or any(np.shape(v)[1:] != np.shape(pending[0][k])[1:]
                                                   for k, v in feed.items())):  # one shape per call
            out.append({k: np.concatenate([f[k] for f in pending]) for k in pending[0]})
            pending, rows = [], 0
        pending.append(feed)
        rows += n
    if pending:
        out.append(pending[0] if len(pending) == 1 else
                   {k: np.concatenate([f[k] for f in pending]) for k in pending[0]})
    return out


def node_variant(node, tag: str, inputs: dict, extra: list) -> tuple:
    """(nodes, results): ``extra`` nodes then a copy of ``node`` reading ``inputs`` (index ->
    tensor) and writing ``<output>__<tag>``; ``results`` are those outputs in order."""
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.name = f"{node.name}__{tag}"
    for j, x in inputs.items():
        copy.input[j] = x
    results = []
    for j, y in enumerate(copy.output):
        if y:
            copy.output[j] = f"{y}__{tag}"
            results.append(copy.output[j])
    return list(extra) + [copy], results

def if_node(cond: str, then: tuple, other: tuple, outs: list, types: dict, tag: str) -> tuple:
    """(nodes, results) of ``If(cond, then, other)`` whose outputs are ``outs`` (the original
    names) when ``tag`` is the outermost level, else ``<out>__<tag>``."""
    def graph(branch, name):
        nodes, results = branch[:2]
        if len(results) != len(outs):
            raise InternalError(f"emulation branch {name} yields {results}, expected {outs}")
        # constant weights the branch owns: ONNX Runtime pre-packs a Gemm/MatMul weight only
        # when it is a constant of the graph running the node (packed and unpacked SGEMM
        # differ in the last bits), so FP32/FP16 branches carry theirs to stay bit-identical
        # with the exported model's main-graph constants
        owned = branch[2] if len(branch) > 2 else []
        return helper.make_graph(nodes, name, [], [
            helper.make_tensor_value_info(r, types.get(o, TensorProto.FLOAT), None)
            for r, o in zip(results, outs)], initializer=owned)

    names = [f"{o}__{tag}" for o in outs]
    node = helper.make_node("If", [cond], names, name=f"{tag}_if", then_branch=graph(then, f"{tag}_then"),
                            else_branch=graph(other, f"{tag}_else"))
    return [node], names
