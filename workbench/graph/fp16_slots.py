"""Which inputs and outputs of a node become float16 when the node runs in FP16.

The rule comes from the node's ONNX schema, so it holds for every op without a table:
a slot is converted when its type parameter (e.g. ``T``) is shared by an input and an
output and allows ``tensor(float16)``, and the model's tensor there is float32. Inputs with
their own type (Resize ``scales`` is always float32, BatchNormalization mean/var use a
separate ``T2``, integer shapes and indices) stay as they are, so the FP16 graph stays valid.
"""
from __future__ import annotations

from functools import lru_cache

import onnx

_FLOAT = onnx.TensorProto.FLOAT
#: Nodes that are never converted: control flow (subgraphs), quantization ops, constants.
_NEVER = frozenset({"If", "Loop", "Scan", "Constant", "Cast", "CastLike", "QuantizeLinear",
                    "DequantizeLinear", "DynamicQuantizeLinear"})


@lru_cache(maxsize=4096)
def _schema_slots(op_type: str, domain: str, opset: int):
    """(input type strings, last input variadic?, output type strings, last output variadic?,
    fp16-capable type params) for ``op_type`` at ``opset``, or None when unknown."""
    try:
        schema = onnx.defs.get_schema(op_type, opset, domain)
    except Exception:  # custom domain or unknown op: never converted
        return None
    variadic = onnx.defs.OpSchema.FormalParameterOption.Variadic
    params = frozenset(tc.type_param_str for tc in schema.type_constraints
                       if "tensor(float16)" in tc.allowed_type_strs)
    ins = tuple(p.type_str for p in schema.inputs)
    outs = tuple(p.type_str for p in schema.outputs)
    in_var = bool(schema.inputs) and schema.inputs[-1].option == variadic
    out_var = bool(schema.outputs) and schema.outputs[-1].option == variadic
    return ins, in_var, outs, out_var, params


def _formal(types: tuple, variadic: bool, index: int) -> str | None:
    if index < len(types):
        return types[index]
    return types[-1] if variadic and types else None


def fp16_slots(node: onnx.NodeProto, opset: int, model_info) -> tuple[tuple, tuple]:
    """Indices of ``node``'s inputs and outputs that become float16 when it runs in FP16.

    Args:
        node: the ONNX node.
        opset: the model's default-domain opset (the schema version to read).
        model_info: a ModelInfo, for tensor types (``tensor_types``) and ``constants``.

    Returns ``((input indices), (output indices))``; both empty when the node cannot run
    in FP16 (then the plan refuses FP16 for it).
    """
    if node.op_type in _NEVER or node.domain not in ("", "ai.onnx"):
        return (), ()
    info = _schema_slots(node.op_type, "", opset)
    if info is None:
        return (), ()
    in_types, in_var, out_types, out_var, params = info
    types = model_info.tensor_types
    constants = model_info.constants

    def is_f32(name: str) -> bool | None:
        if name in constants:
            return constants[name].dtype == "float32"
        t = types.get(name)
        return None if t is None else t == _FLOAT

    # A type parameter is "float32 here" when a tensor bound to it is known to be float32.
    bound: dict[str, bool] = {}
    for i, name in enumerate(node.input):
        p = _formal(in_types, in_var, i)
        if name and p in params:
            f = is_f32(name)
            if f is not None:
                bound[p] = bound.get(p, True) and f
    for j, name in enumerate(node.output):
        p = _formal(out_types, out_var, j)
        if name and p in params and p not in bound:
            f = is_f32(name)
            if f is not None:
                bound[p] = f
    in_params = {_formal(in_types, in_var, i) for i, n in enumerate(node.input) if n}
    outs = tuple(j for j, name in enumerate(node.output)
                 if name and bound.get(_formal(out_types, out_var, j)) and
                 _formal(out_types, out_var, j) in in_params)
    if not outs:
        return (), ()
    out_params = {_formal(out_types, out_var, j) for j in outs}
    ins = tuple(i for i, name in enumerate(node.input)
                if name and _formal(in_types, in_var, i) in out_params)
    if not ins:
        return (), ()
    return ins, outs
