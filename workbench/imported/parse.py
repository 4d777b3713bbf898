"""Find the Q/DQ structure of a model: QuantizeLinear -> DequantizeLinear pairs, stored
quantized constants (a DequantizeLinear of an int8/int4/fp8 initializer) and the Q/DQ nodes
that cannot be removed (they stay in the recovered graph and are reported)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from ..errors import WorkbenchError
from .qtypes import QuantType, as_number_array, elem_type_of, quant_type
from .records import Finding

#: Domains whose QuantizeLinear/DequantizeLinear have the ONNX semantics (ONNX Runtime's
#: contrib versions carry INT4/INT16 in older releases).
QDQ_DOMAINS = ("", "ai.onnx", "com.microsoft")
#: ONNX Runtime's QOperator format and integer ops: a different representation, not read here.
QOPERATOR_OPS = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger",
                 "DynamicQuantizeLinear", "QLinearAdd", "QLinearMul", "QLinearSigmoid",
                 "QLinearLeakyRelu", "QLinearConcat", "QLinearGlobalAveragePool",
                 "QLinearAveragePool", "QLinearSoftmax", "QLinearReduceMean", "QGemm",
                 "QAttention", "DynamicQuantizeMatMul", "MatMulNBits", "MatMulIntegerToFloat")


@dataclass(frozen=True)
class QParams:
    """Scale (float32), zero point (int64 / float64 codes, shaped like the scale), axis,
    block size and element type of one Q or DQ node."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None
    block_size: int | None
    qtype: QuantType

    def same_as(self, other: "QParams") -> bool:
        return (self.qtype == other.qtype and self.axis == other.axis
                and self.block_size == other.block_size
                and np.array_equal(self.scale, other.scale)
                and np.array_equal(self.zero_point, other.zero_point))


@dataclass
class Pair:
    """A QuantizeLinear and the DequantizeLinear node(s) reading its output."""

    q: onnx.NodeProto
    dqs: list
    params: QParams


@dataclass
class StoredDQ:
    """A DequantizeLinear of a stored (constant) quantized tensor."""

    dq: onnx.NodeProto
    params: QParams


@dataclass
class Structure:
    pairs: list
    stored: list
    kept: list
    findings: list


def is_q(node) -> bool:
    return node.op_type == "QuantizeLinear" and node.domain in QDQ_DOMAINS


def is_dq(node) -> bool:
    return node.op_type == "DequantizeLinear" and node.domain in QDQ_DOMAINS


def is_qdq_node(node) -> bool:
    return is_q(node) or is_dq(node)


def _attr(node, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def read_params(node, info, pair_type: QuantType | None = None) -> QParams | None:
    """The quantization parameters of a Q or DQ node, or None when its scale or zero point
    is computed in the graph rather than stored.

    ``pair_type``: for a DQ reading a Q's output, the Q's element type (used when the DQ
    has no zero point and shape inference gave no type).
    """
    consts = info.constants
    where = f"{node.op_type} '{node.name}'"
    s_name = node.input[1] if len(node.input) > 1 else ""
    z_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if s_name not in consts or (z_name is not None and z_name not in consts):
        return None
    scale = np.asarray(consts[s_name]).astype(np.float32)
    zp = np.asarray(consts[z_name]) if z_name is not None else None
    types = info.tensor_types
    if is_dq(node):
        x = node.input[0]
        elem = types.get(x) or (types.get(z_name) if z_name else None)
        if not elem and x in consts:
            elem = elem_type_of(consts[x])
        if not elem and pair_type is not None:
            elem = pair_type.elem_type
    else:
        elem = (types.get(z_name) or elem_type_of(zp)) if z_name else None
        elem = elem or _attr(node, "output_dtype", 0) or onnx.TensorProto.UINT8
    if not elem:
        raise WorkbenchError(f"{where}: cannot tell the quantized element type of '{node.input[0]}'.")
    qt = quant_type(elem, where)
    axis = int(_attr(node, "axis", 1))
    block = int(_attr(node, "block_size", 0)) or None
    if scale.size == 1 and block is None:
        axis, scale = None, scale.reshape(())
    if zp is None:
        zero = np.zeros(scale.shape, np.float64 if qt.is_float else np.int64)
    else:
        zero = as_number_array(zp, qt)
        if zero.size == 1 and scale.ndim == 0:
            zero = zero.reshape(())
        if zero.shape != scale.shape:
            raise WorkbenchError(f"{where}: zero point of shape {zero.shape} does not match the "
                                 f"scale of shape {scale.shape}.")
    return QParams(scale, zero, axis, block, qt)


def check_format(info) -> None:
    """WorkbenchError for models in ONNX Runtime's QOperator format (not Q/DQ)."""
    found = sorted({n.op_type for n in info.nodes if n.op_type in QOPERATOR_OPS})
    if found:
        raise WorkbenchError(
            f"'{info.name}' uses integer operators ({', '.join(found)}): ONNX Runtime's QOperator "
            "format, which the workbench does not read. It reads Q/DQ models (QuantizeLinear/"
            "DequantizeLinear around float ops); re-quantize with quant_format=QuantFormat.QDQ, "
            "or give the FP32 model.")


def find_structure(info) -> Structure:
    """Pairs, stored quantized constants and kept Q/DQ nodes of ``info`` (a ModelInfo)."""
    check_format(info)
    by_name = info.node_by_name
    slots: dict = {}
    for n in info.nodes:
        for i, t in enumerate(n.input):
            if t:
                slots.setdefault(t, []).append((n.name, i))
    outputs = {o.name for o in info.graph.output}
    pairs, stored, kept, findings = [], [], [], []
    paired: set = set()
    for q in (n for n in info.nodes if is_q(n)):
        y = q.output[0]
        readers = [by_name[name] for name, _ in slots.get(y, ())]
        params = read_params(q, info)
        problem, dq_params = None, []
        if params is None:
            problem = "its scale or zero point is computed in the graph, not stored"
        elif y in outputs:
            problem = f"its quantized output '{y}' is a model output"
        elif not readers:
            problem = "nothing reads its output"
        elif any(not is_dq(r) for r in readers):
            other = next(r for r in readers if not is_dq(r))
            problem = f"its output is read by {other.op_type} '{other.name}', not by a DequantizeLinear"
        else:
            dq_params = [read_params(r, info, params.qtype) for r in readers]
            if any(p is None for p in dq_params):
                problem = "a DequantizeLinear reading it has a computed scale"
        if problem:
            kept += [q.name] + [r.name for r in readers if is_dq(r)]
            findings.append(Finding(
                "kept_qdq", "warning",
                f"QuantizeLinear '{q.name}' on '{q.input[0]}' stays in the recovered graph: {problem}.",
                tensor=q.input[0], node=q.name))
            continue
        for r, p in zip(readers, dq_params):
            if not p.same_as(params):
                findings.append(Finding(
                    "mismatched_pair", "warning",
                    f"DequantizeLinear '{r.name}' does not undo QuantizeLinear '{q.name}' on "
                    f"'{q.input[0]}' (different scale, zero point, axis or type): the model "
                    "requantizes there. Read with the QuantizeLinear's parameters; TensorRT "
                    "expects one scale per Q/DQ pair.", tensor=q.input[0], node=r.name))
        pairs.append(Pair(q, readers, params))
        paired.update(r.name for r in readers)
    consts = info.constants
    for d in (n for n in info.nodes if is_dq(n)):
        if d.name in paired or d.name in kept:
            continue
        params = read_params(d, info) if d.input[0] in consts else None
        if params is not None:
            stored.append(StoredDQ(d, params))
            continue
        kept.append(d.name)
        findings.append(Finding(
            "kept_qdq", "warning",
            f"DequantizeLinear '{d.name}' reads '{d.input[0]}', which is neither a stored constant "
            "nor a QuantizeLinear output (e.g. a quantized model input), or has a computed scale: "
            "it stays in the recovered graph.", tensor=d.input[0], node=d.name))
    for n in info.nodes:
        for a in n.attribute:
            bodies = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
            if any(is_qdq_node(sn) for body in bodies for sn in body.node):
                findings.append(Finding(
                    "subgraph_qdq", "warning",
                    f"{n.op_type} '{n.name}' has Q/DQ nodes inside its body; the workbench reads "
                    "Q/DQ of the main graph only, so they stay as they are.", node=n.name))
                break
    return Structure(pairs, stored, kept, findings)
