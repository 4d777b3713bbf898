"""The result of reading a Q/DQ model: the recovered FP32 graph, the quantized tensors, the
per-node plan the model implies and what TensorRT would make of it."""
from __future__ import annotations

import os
from functools import cached_property

import numpy as np

from ..errors import WorkbenchError
from ..graph.model import ModelInfo
from ..precision.plan import Precision, PrecisionPlan
from .parse import find_structure, is_qdq_node
from .recover import recover

#: Quantized types the plan expresses as INT8 (UINT8 becomes symmetric INT8 on re-export).
INT8_LIKE = ("INT8", "UINT8")
#: The default share of calibration values a model's scale may clip before ``inspect`` warns.
MAX_CLIPPED = 0.01


def is_qdq_model(model_info) -> bool:
    """Whether the model's main graph has QuantizeLinear/DequantizeLinear nodes."""
    return any(is_qdq_node(n) for n in model_info.graph.node)


def read_qdq_model(model) -> "QuantizedModel":
    """Read a Q/DQ model (a path, an ``onnx.ModelProto`` or a ModelInfo).

    WorkbenchError when the file is unreadable, has no Q/DQ nodes, or uses ONNX Runtime's
    QOperator format (QLinearConv ...).
    """
    if isinstance(model, ModelInfo):
        info = model
    elif isinstance(model, (str, os.PathLike)):
        info = ModelInfo.from_path(model)
    else:
        info = ModelInfo(model)
    if not is_qdq_model(info):
        raise WorkbenchError(f"'{info.name}' has no QuantizeLinear/DequantizeLinear nodes: it is not a "
                             "Q/DQ model. Open it as an FP32 model.")
    return QuantizedModel(info)


class QuantizedModel:
    """A Q/DQ model read back.

    Attributes:
        source: the ModelInfo of the Q/DQ model.
        fp32: the ModelInfo of the recovered FP32 graph (Q/DQ removed, stored quantized
            constants dequantized, FP16 parts in FP32). Its ``path`` is the Q/DQ file, so
            nothing is ever written over it; node names are the Q/DQ model's.
        tensors: every :class:`QuantizedTensor`, in graph order of their Q/DQ.
        fp16_nodes: node -> "FLOAT16"/"BFLOAT16" for nodes that computed in half precision.
        restored: tensor -> name of a Relu put back where ONNX Runtime had removed one.
        kept_nodes: Q/DQ nodes that could not be removed (reported in ``findings``).
    """

    def __init__(self, source: ModelInfo):
        self.source = source
        rec = recover(source, find_structure(source))
        self.fp32 = ModelInfo(rec.model, source.path)
        self.tensors = rec.tensors
        self.fp16_nodes = rec.fp16_nodes
        self.restored = rec.restored
        self.kept_nodes = rec.kept_nodes
        self._recovery_findings = rec.findings

    @property
    def name(self) -> str:
        return self.source.name

    def by_kind(self, kind: str) -> dict:
        """Tensor -> QuantizedTensor of one kind ("activation", "weight", "bias", "constant");
        the first Q/DQ pair wins when a tensor has several."""
        out: dict = {}
        for t in self.tensors:
            if t.kind == kind:
                out.setdefault(t.tensor, t)
        return out

    @property
    def activations(self) -> dict:
        return self.by_kind("activation")

    @property
    def weights(self) -> dict:
        return self.by_kind("weight")

    def amax(self) -> dict:
        """Tensor -> the model's own amax of every per-tensor quantized activation
        (``scale x 127`` for symmetric INT8; see ``QuantizedTensor.amax_array``)."""
        return {n: t.amax for n, t in self.activations.items() if t.amax is not None}

    def weight_scales(self) -> dict:
        """Weight tensor -> the model's float32 scales, for the weights a TensorRT-ready export
        can keep unchanged: symmetric INT8, per tensor or along the exporter's channel axis,
        read directly by their Conv/ConvTranspose/Gemm/MatMul."""
        targets = {t.node: t for t in self.fp32.quantizable_nodes()}
        out = {}
        for name, t in self.weights.items():
            if t.dtype != "INT8" or not t.symmetric or t.block_size is not None:
                continue
            axes = {targets[n].weight_axis for n, i in t.consumers
                    if n in targets and targets[n].weight_input == name and i == 1}
            if len(axes) != 1 or len({n for n, _ in t.consumers}) != len(t.consumers):
                continue
            rank = self.fp32.constants[name].ndim
            axis = None if t.axis is None else (t.axis + rank if t.axis < 0 else t.axis)
            if axis is None or axis == next(iter(axes)):
                out[name] = np.asarray(t.scale, dtype=np.float32)
        return out

    def tensors_to_observe(self) -> list:
        """Tensors of :attr:`fp32` to collect statistics for: the default selection (inputs of
        the default plan's INT8 nodes, float outputs), every activation the model quantizes and
        the activation inputs of the nodes its plan runs in INT8."""
        from ..calib.collect import tensors_to_observe

        floats = set(self.fp32.float_tensors())
        names = list(tensors_to_observe(self.fp32, "default"))
        names += [t for t in self.activations if t in floats]
        targets = {t.node: t for t in self.fp32.quantizable_nodes()}
        names += [x for n in self.plan.int8_nodes() for x in targets[n].activation_inputs]
        return list(dict.fromkeys(names))

    def activation_inputs(self) -> dict:
        """Node -> the activation tensors it reads through the model's Q/DQ (graph order)."""
        out: dict = {}
        for t in self.tensors:
            if t.kind == "activation":
                for node, _ in sorted(t.consumers, key=lambda s: s[1]):
                    out.setdefault(node, [])
                    if t.tensor not in out[node]:
                        out[node].append(t.tensor)
        return out

    # ------------------------------------------------------------------ the implied plan
    @cached_property
    def plan(self) -> PrecisionPlan:
        """The per-node plan the model implies: INT8 where a node's activation inputs come
        through Q/DQ (INT8/UINT8), FP16 where its tensors are float16, FP32 elsewhere.
        Nodes quantized to a type the plan cannot express (FP8, INT4, INT16) are FP32 and
        reported in :attr:`findings`. Returns a fresh copy's source: use ``plan.copy()``."""
        plan = PrecisionPlan.default(self.fp32)
        targets = {t.node: t for t in self.fp32.quantizable_nodes()}
        by_slot = {s: t for t in self.tensors if t.kind == "activation" for s in t.consumers}
        nodes = self.fp32.node_by_name
        for name in plan.nodes:
            target = targets.get(name)
            quant = []
            if target is not None:
                quant = [by_slot[(name, i)] for i, x in enumerate(nodes[name].input)
                         if (name, i) in by_slot and x in target.activation_inputs]
            if quant and all(q.dtype in INT8_LIKE for q in quant):
                want, detail = Precision.INT8, "model: Q/DQ on " + ", ".join(q.tensor for q in quant)
            elif quant:
                types = sorted({q.dtype for q in quant})
                want, detail = Precision.FP32, f"model: {'/'.join(types)} Q/DQ (no such precision in a plan)"
            elif name in self.fp16_nodes and plan.can_run(name, Precision.FP16):
                want, detail = Precision.FP16, f"model: {self.fp16_nodes[name].lower()} tensors"
            elif name in self.fp16_nodes:
                want, detail = Precision.FP32, f"model: {self.fp16_nodes[name].lower()} tensors"
            else:
                want, detail = Precision.FP32, ("model: no Q/DQ on its inputs" if target else "")
            if want is not plan.precision(name) or detail:
                plan.set_node(name, want, reason="default", detail=detail)
        return plan

    # ------------------------------------------------------------------ what TensorRT makes of it
    @cached_property
    def findings(self) -> list:
        """Every :class:`Finding` of the recovery and of the TensorRT checks (errors first)."""
        from .checks import placement_findings, tensor_findings

        found = list(self._recovery_findings) + tensor_findings(self) + placement_findings(self)
        order = {"error": 0, "warning": 1, "info": 2}
        return sorted(found, key=lambda f: order.get(f.severity, 3))

    def clipping_findings(self, stats, max_clipped: float = MAX_CLIPPED) -> list:
        """Findings for model scales that clip more than ``max_clipped`` (a share, default
        0.01) of the calibration values in ``stats`` (statistics of :attr:`fp32`)."""
        from .checks import clipping_findings

        return clipping_findings(self, stats, max_clipped)

    @property
    def recovered_note(self) -> str:
        """One sentence saying what the FP32 reference is."""
        stored = [t for t in self.tensors if t.kind in ("weight", "bias", "constant") and not t.exact_fp32]
        how = ("its weights are the model's dequantized INT8/INT4/FP8 values (the original FP32 "
               "weights are not in the file)" if stored else "its weights are the model's float weights")
        return (f"FP32 reference recovered from the Q/DQ model '{self.name}': Q/DQ pairs removed, "
                f"{how}.")

    def table(self, stats=None, method: str | None = None):
        """A DataFrame, one row per quantized tensor: tensor, kind, consumers, dtype, scale,
        amax (= scale x qmax), zero_point, axis. With ``stats`` (statistics of :attr:`fp32`):
        observed max |x|, the share the model's amax clips (%) and the amax ``method``
        (default: the workbench's default) would choose."""
        import pandas as pd

        from ..calib.algorithms import clipped_fraction
        from ..calib.ranges import DEFAULT_METHOD, compute_ranges

        method = method or DEFAULT_METHOD
        ranges = compute_ranges(stats, method) if stats is not None else None
        rows = []
        for t in self.tensors:
            amax = t.amax
            if t.dtype == "INT32":  # a bias grid (input scale x weight scale): no threshold
                shown = ""
            elif amax is not None:
                shown = amax
            else:
                shown = f"{t.amax_array.size} values {t.amax_array.min():.6g}..{t.amax_array.max():.6g}"
            row = {"tensor": t.tensor, "kind": t.kind, "consumers": ", ".join(t.consumer_nodes)
                   + (" (model output)" if t.graph_output else ""),
                   "dtype": t.dtype, "scale": t.scale_text(), "amax": shown,
                   "zero_point": t.zero_point_text(), "axis": "" if t.axis is None else t.axis}
            if ranges is not None:
                c = stats.collectors.get(t.tensor) if t.kind == "activation" else None
                r = ranges.get(t.tensor) if c is not None else None
                row["max_abs"] = float(c.absmax) if c is not None and c.finite_count else None
                row["clipped_pct"] = (100 * clipped_fraction(c.hist, c.bin_width, amax)
                                      if c is not None and c.bin_width and amax is not None else None)
                row[f"amax_{method}"] = r.amax if r is not None else None
            rows.append(row)
        return pd.DataFrame(rows)

    def summary(self) -> dict:
        """Counts for a one-line description (JSON-friendly)."""
        counts: dict = {}
        for t in self.tensors:
            counts.setdefault(t.kind, {}).setdefault(t.dtype, 0)
            counts[t.kind][t.dtype] += 1
        sev: dict = {}
        for f in self.findings:
            sev[f.severity] = sev.get(f.severity, 0) + 1
        return {"model": str(self.source.path) if self.source.path else self.name,
                "quantized_tensors": counts, "plan": self.plan.summary(),
                "fp16_nodes": len(self.fp16_nodes), "restored_relus": len(self.restored),
                "kept_qdq_nodes": len(self.kept_nodes), "findings": sev}
