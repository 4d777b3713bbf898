"""Small ONNX helpers of the improve steps: constants (initializers or Constant nodes) read and
written by name, producers/consumers, attributes, and model copies with extra outputs or with
a node input turned into a graph input (so one session can be re-fed new weights or biases).
"""
from __future__ import annotations

import onnx
from onnx import helper, numpy_helper

import numpy as np


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def opset(model: onnx.ModelProto) -> int:
    return next((int(i.version) for i in model.opset_import if i.domain in ("", "ai.onnx")), 0)


def attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def producers(graph: onnx.GraphProto) -> dict:
    """Tensor -> the node that writes it."""
    return {t: n for n in graph.node for t in n.output if t}


def consumers(graph: onnx.GraphProto) -> dict:
    """Tensor -> list of (node, input index) that read it (graph outputs are not listed)."""
    out: dict[str, list] = {}
    for n in graph.node:
        for i, t in enumerate(n.input):
            if t:
                out.setdefault(t, []).append((n, i))
    return out


def node_by_name(graph: onnx.GraphProto) -> dict:
    return {n.name: n for n in graph.node}


def get_const(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    """The value of constant tensor ``name`` (an initializer or a Constant node's ``value``), or None."""
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for n in graph.node:
        if n.op_type == "Constant" and n.output and n.output[0] == name:
            for a in n.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
                if a.name in ("value_float", "value_floats"):
                    return np.asarray(helper.get_attribute_value(a), dtype=np.float32)
    return None


def set_const(graph: onnx.GraphProto, name: str, value: np.ndarray) -> None:
    """Replace the value of constant ``name`` in place (initializer or Constant node); a new
    initializer when it does not exist yet."""
    tensor = numpy_helper.from_array(np.asarray(value), name)
    for init in graph.initializer:
        if init.name == name:
            init.CopyFrom(tensor)
            return
    for n in graph.node:
        if n.op_type == "Constant" and n.output and n.output[0] == name:
            del n.attribute[:]
            n.attribute.append(helper.make_attribute("value", tensor))
            return
    graph.initializer.append(tensor)


def fresh_name(graph: onnx.GraphProto, base: str) -> str:
    taken = {t for n in graph.node for t in list(n.input) + list(n.output)}
    taken |= {i.name for i in graph.initializer} | {i.name for i in graph.input}
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    return name


def with_outputs(model: onnx.ModelProto, names) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs ``names`` (tensors of any float type)."""
    out = copy_model(model)
    have = {o.name for o in out.graph.output}
    types = tensor_types(model)
    for name in names:
        if name not in have:
            out.graph.output.append(helper.make_tensor_value_info(name, types.get(name, onnx.TensorProto.FLOAT), None))
            have.add(name)
    return out


def tensor_types(model: onnx.ModelProto) -> dict:
    """Tensor -> ONNX elem_type, as far as shape inference knows."""
    try:
        vis = list(onnx.shape_inference.infer_shapes(model, strict_mode=False).graph.value_info)
    except Exception:  # best effort; unknown tensors are assumed float32
        vis = list(model.graph.value_info)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(model.graph.input) + list(model.graph.output) + vis
             if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type}
    types.update({i.name: i.data_type for i in model.graph.initializer})
    return types


def feed_slot(model: onnx.ModelProto, node_name: str, index: int, value: np.ndarray, base: str) -> str:
    """Make input ``index`` of ``node_name`` read a new graph input (in place); returns its name.

    The input is appended when the node has fewer inputs (e.g. a Conv without bias). ``value``
    gives the dtype and shape declared for the new input.
    """
    g = model.graph
    node = node_by_name(g)[node_name]
    name = fresh_name(g, base)
    while len(node.input) <= index:
        node.input.append("")
    node.input[index] = name
    value = np.asarray(value)
    g.input.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape)))
    return name


def topo_levels(model: onnx.ModelProto, nodes: list) -> list:
    """Group ``nodes`` (names, in graph order) into levels: a node's level is one more than the
    highest level among the listed nodes upstream of it. Nodes of one level do not depend on
    each other, so one run of the model serves all of them."""
    g = model.graph
    prod = producers(g)
    wanted = set(nodes)
    depth: dict[str, int] = {}  # for every node: the highest level of a listed node upstream (incl. itself)
    for n in g.node:
        up = 0
        for t in n.input:
            p = prod.get(t)
            if p is not None:
                up = max(up, depth.get(p.name, 0))
        depth[n.name] = up + 1 if n.name in wanted else up
    levels: dict[int, list] = {}
    for name in nodes:
        levels.setdefault(depth[name], []).append(name)
    return [levels[k] for k in sorted(levels)]
