"""Graph facts :class:`~workbench.evaluate.downstream.DownstreamRuns` plans with: where each switch
is first read, and how large each candidate checkpoint is."""
from __future__ import annotations

import numpy as np

from .emulate import FP16_FLAGS, INT8_FLAGS, SCALE, TENSOR_FLAGS
from .reuse import subgraphs

SWITCHES = (INT8_FLAGS, FP16_FLAGS, SCALE, TENSOR_FLAGS)


def cut_sizes(proto, batches: list, tensors: list) -> dict:
    """Bytes of each of ``tensors`` over all rows of ``batches``, by shape inference with the
    batches' input shapes (None where a size stays unknown, e.g. a size computed at run time)."""
    import onnx
    from onnx import helper

    out: dict = {t: 0 for t in tensors}
    for feed in batches:
        m = onnx.ModelProto()
        m.CopyFrom(proto)
        for slot in m.graph.input:
            value = feed.get(slot.name)
            if value is None or not slot.type.HasField("tensor_type"):
                continue
            dims = slot.type.tensor_type.shape
            dims.Clear()
            for d in np.shape(value):
                dims.dim.add().dim_value = int(d)
        del m.graph.value_info[:]
        try:
            inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False)
        except Exception:  # noqa: BLE001 - a model shape inference cannot follow: sizes unknown
            return {t: None for t in tensors}
        known = {}
        for v in inferred.graph.value_info:
            tt = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            if tt.HasField("shape") and all(d is not None for d in dims):
                itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)).itemsize
                known[v.name] = int(np.prod(dims, dtype=np.int64)) * itemsize
        for t in tensors:
            if out[t] is not None:
                out[t] = out[t] + known[t] if t in known else None
    return out


def switch_readers(graph, inputs: list) -> dict:
    """(switch input, index or None) -> the position of the first node that reads it (in its
    subgraphs too): through a ``Gather`` of one constant index (that index), or otherwise
    (None: every index)."""
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer if not t.dims}
    first: dict = {}

    def scan(nodes, k):
        for n in nodes:
            for slot, i in enumerate(n.input):
                if i not in SWITCHES:
                    continue
                if n.op_type == "Gather" and slot == 0 and len(n.input) > 1 and n.input[1] in consts:
                    key = (i, int(consts[n.input[1]]))
                else:
                    key = (i, None)
                first[key] = min(first.get(key, k), k)
            for sub in subgraphs(n):
                scan(sub.node, k)

    for k, n in enumerate(graph.node):
        # a top-level Gather's value is read where its consumers are: attribute it to them
        if n.op_type == "Gather" and n.input and n.input[0] in SWITCHES:
            continue
        scan([n], k)
    readers: dict = {}
    for j, ins in enumerate(inputs):
        for i in ins:
            readers.setdefault(i, []).append(j)
    for k, n in enumerate(graph.node):  # top-level Gathers: the first node reading their output
        if not (n.op_type == "Gather" and n.input and n.input[0] in SWITCHES):
            continue
        key = (n.input[0], int(consts[n.input[1]])) if len(n.input) > 1 and n.input[1] in consts else (n.input[0], None)
        at = [j for o in n.output for j in readers.get(o, [])] or [k]
        first[key] = min(first.get(key, min(at)), min(at))
    return first


__all__ = ["SWITCHES", "cut_sizes", "switch_readers"]
