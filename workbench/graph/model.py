"""Loading an ONNX model and describing what the workbench can quantize in it.

``ModelInfo`` is the read-only view every other layer works from: inputs and outputs, the
constant tensors (initializers *and* Constant-node outputs), float activations, and the nodes
TensorRT can run in INT8 (``QuantTarget``).
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import WorkbenchError

from .ops import FLOAT_TYPES, INT8_OPS, POOL_OPS, QDQ_OPS, WEIGHTED_OPS  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: ``shape`` entries are ints (static), strings (named dynamic) or None."""

    name: str
    dtype: np.dtype
    shape: tuple

    def describe(self) -> str:
        dims = "x".join(str(d) if d is not None else "?" for d in self.shape)
        return f"{self.name} {self.dtype} [{dims}]"


@dataclass(frozen=True)
class QuantTarget:
    """A node TensorRT can run in INT8 and the tensors its Q/DQ pairs go on.

    ``activation_inputs`` are the float, non-constant inputs; ``weight_input`` the constant
    weight of Conv/ConvTranspose/Gemm/MatMul (None otherwise) and ``weight_axis`` its
    output-channel axis (Conv 0, ConvTranspose 1, Gemm 0 with transB=1 else 1, MatMul last).
    """

    node: str
    op_type: str
    activation_inputs: tuple
    weight_input: str | None
    weight_axis: int | None


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Read an ONNX file (with external data next to it) or raise WorkbenchError naming the file."""
    from ..validate import check_path

    path = Path(check_path(path, "The model path"))
    if not path.exists():
        raise WorkbenchError(f"Model file '{path}' does not exist.")
    if not path.is_file():
        raise WorkbenchError(f"Model path '{path}' is not a file (expected an .onnx file).")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError, missing external data, ...
        raise WorkbenchError(
            f"'{path}' is not a readable ONNX model ({type(exc).__name__}: {exc})."
        ) from None
    if not model.graph.node:
        raise WorkbenchError(f"'{path}' holds no graph nodes: is it really an ONNX model?")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        raise WorkbenchError(f"'{path}' fails the ONNX checker: {first}") from None
    from .support import check_supported

    check_supported(model, path)
    return model


def _np_dtype(elem_type: int) -> np.dtype:
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:
        return np.dtype("O")


def _spec(vi: onnx.ValueInfoProto) -> TensorSpec:
    tt = vi.type.tensor_type
    dims = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return TensorSpec(vi.name, _np_dtype(tt.elem_type), tuple(dims))


def _constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        if attr.name == "value_float":
            return np.array(attr.f, dtype=np.float32)
        if attr.name == "value_floats":
            return np.array(list(attr.floats), dtype=np.float32)
        if attr.name == "value_int":
            return np.array(attr.i, dtype=np.int64)
        if attr.name == "value_ints":
            return np.array(list(attr.ints), dtype=np.int64)
    return None


def name_nodes(model: onnx.ModelProto) -> None:
    """Give every node a unique, non-empty name (in place): ``<op>_<index>`` for unnamed ones."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        while name in seen:
            name = f"{name}_{i}"
        node.name = name
        seen.add(name)


class ModelInfo:
    """Read-only description of an ONNX model for calibration, planning and export.

    Args:
        model: the loaded ``onnx.ModelProto`` (nodes get names assigned in place when unnamed).
        path: the file it came from, if any (used for fingerprints and messages).
    """

    def __init__(self, model: onnx.ModelProto, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else None
        self._raw_fingerprint = hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()
        name_nodes(model)
        self.model = model

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> "ModelInfo":
        """Load and check ``path`` (see :func:`load_model`)."""
        return cls(load_model(path), path)

    @property
    def graph(self) -> onnx.GraphProto:
        return self.model.graph

    @property
    def name(self) -> str:
        return self.path.name if self.path else (self.graph.name or "model")

    @property
    def opset(self) -> int:
        for imp in self.model.opset_import:
            if imp.domain in ("", "ai.onnx"):
                return int(imp.version)
        return 0

    @property
    def nodes(self) -> list:
        return list(self.graph.node)

    @cached_property
    def node_by_name(self) -> dict:
        return {n.name: n for n in self.graph.node}

    @cached_property
    def constants(self) -> dict:
        """Tensor name -> ndarray for initializers and Constant-node outputs."""
        values = {init.name: numpy_helper.to_array(init) for init in self.graph.initializer}
        for node in self.graph.node:
            if node.op_type == "Constant" and node.output:
                value = _constant_value(node)
                if value is not None:
                    values[node.output[0]] = value
        return values

    @cached_property
    def inputs(self) -> list:
        inits = {i.name for i in self.graph.initializer}
        return [_spec(vi) for vi in self.graph.input if vi.name not in inits]

    @cached_property
    def outputs(self) -> list:
        return [_spec(vi) for vi in self.graph.output]

    @cached_property
    def op_counts(self) -> dict:
        return dict(Counter(n.op_type for n in self.graph.node).most_common())

    @cached_property
    def tensor_types(self) -> dict:
        """Tensor name -> ONNX elem_type for every tensor whose type is known (after shape inference)."""
        types = {}
        try:
            inferred = onnx.shape_inference.infer_shapes(self.model, strict_mode=False)
            vis = list(inferred.graph.value_info)
        except Exception:  # inference is best effort; graph I/O types still come from the model
            vis = list(self.graph.value_info)
        for vi in list(self.graph.input) + list(self.graph.output) + vis:
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
                types[vi.name] = vi.type.tensor_type.elem_type
        for init in self.graph.initializer:
            types[init.name] = init.data_type
        return types

    @cached_property
    def consumers(self) -> dict:
        """Tensor name -> list of node names that read it."""
        out: dict[str, list] = {}
        for node in self.graph.node:
            for t in node.input:
                if t:
                    out.setdefault(t, []).append(node.name)
        return out

    @cached_property
    def producers(self) -> dict:
        """Tensor name -> the node name that writes it."""
        return {t: node.name for node in self.graph.node for t in node.output if t}

    def is_float(self, tensor: str) -> bool:
        return self.tensor_types.get(tensor) in FLOAT_TYPES

    def float_tensors(self) -> list:
        """Names of all float activations (graph inputs and node outputs, not constants), in graph order."""
        names = [s.name for s in self.inputs if s.name in self.tensor_types and self.is_float(s.name)]
        for node in self.graph.node:
            if node.op_type == "Constant":
                continue
            names += [t for t in node.output if t and self.is_float(t) and t not in self.constants]
        return list(dict.fromkeys(names))

    def quantizable_nodes(self) -> list:
        """Every node of :data:`INT8_OPS` with at least one float activation input, in graph order."""
        targets = []
        for node in self.graph.node:
            if node.op_type not in INT8_OPS:
                continue
            acts = tuple(t for t in node.input if t and t not in self.constants and self.is_float(t))
            if node.op_type in ("Clip", "BatchNormalization"):
                acts = acts[:1]  # only the data input; min/max/scale/bias are parameters
            if not acts:
                continue
            weight, axis = self._weight_of(node)
            targets.append(QuantTarget(node.name, node.op_type, acts, weight, axis))
        return targets

    def _weight_of(self, node: onnx.NodeProto):
        if node.op_type not in WEIGHTED_OPS or len(node.input) < 2:
            return None, None
        w = node.input[1]
        if w not in self.constants:
            return None, None
        rank = self.constants[w].ndim
        if node.op_type == "Conv":
            return w, 0
        if node.op_type == "ConvTranspose":
            return w, 1
        if node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            return w, 0 if trans_b else 1
        return w, rank - 1  # MatMul: [.., K, N], output features on the last axis

    def has_qdq(self) -> list:
        """Names of nodes that are already quantization ops (empty list when none)."""
        return [n.name for n in self.graph.node if n.op_type in QDQ_OPS]

    @cached_property
    def facts(self):
        """The shared read-only :class:`workbench.graph.GraphFacts` of this model."""
        from .facts import GraphFacts

        return GraphFacts(self)

    def fingerprint(self) -> str:
        """sha256 of the model as loaded (before node naming): changes whenever the graph or weights change."""
        return self._raw_fingerprint

    def input_spec(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        have = ", ".join(f"'{s.name}'" for s in self.inputs)
        raise WorkbenchError(f"Requested input '{name}', the model has: {have}.")

    def summary(self) -> dict:
        """A JSON-friendly overview: inputs, outputs, opset, node counts, quantizable nodes."""
        q = self.quantizable_nodes()
        return {
            "model": str(self.path) if self.path else self.name,
            "opset": self.opset,
            "inputs": [s.describe() for s in self.inputs],
            "outputs": [s.describe() for s in self.outputs],
            "nodes": len(self.graph.node),
            "op_counts": self.op_counts,
            "quantizable_nodes": len(q),
            "quantizable_by_op": dict(Counter(t.op_type for t in q)),
            "existing_qdq_nodes": len(self.has_qdq()),
        }
