"""Evaluation: quantized model vs FP32 on held-out data (output metrics, per-layer error, latency).

The :class:`Evaluator` loads the evaluation batches and runs the FP32 model once; every later
evaluation of a quantized variant reuses those reference outputs.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np

from ..backends.ort import OrtRunner
from ..data import CalibrationData
from ..errors import WorkbenchError
from .metrics import compare_outputs, cosine, is_classifier_output, sqnr_db
from .rows import concat_rows, one_shape
from ..graph.model import ModelInfo
from ..graph.semantics import DEPLOYED, EXACT, deployed_path, describe


@dataclass
class EvalResult:
    """What one evaluation measured.

    Attributes:
        outputs: DataFrame, one row per model output: cosine, sqnr_db, max_abs_error,
            mean_abs_error, top1_agreement / top1_in_ref_top5 (classifier outputs), metric.
        per_layer: DataFrame (node, op_type, precision, tensor, sqnr_db, cosine) or None.
        latency: {batch size: LatencyStats} of the quantized model, or {}.
        seconds: wall time of the evaluation.
        label: free text (e.g. the variant evaluated).
        semantics: how the accuracy run executed (``workbench.graph.semantics.describe``).
        path: the file evaluated, when it was given as a path (None for in-memory models).
    """

    outputs: object
    per_layer: object = None
    latency: dict = field(default_factory=dict)
    metric: float | None = None
    seconds: float = 0.0
    label: str = ""
    semantics: str = describe(EXACT)
    path: str | None = None

    def summary(self) -> dict:
        """Metrics of the first output (plus the user metric and batch-1 latency) as a flat dict."""
        first = self.outputs.iloc[0].to_dict()
        out = {k: v for k, v in first.items() if k != "output"}
        if self.metric is not None:
            out["metric"] = self.metric
        for bs, lat in self.latency.items():
            out[f"latency_ms_b{bs}"] = lat.median_ms
        return out


def first_samples(batches, limit: int | None) -> tuple:
    """The leading batches holding at most ``limit`` samples (the last one cut): (batches, count)."""
    kept, n = [], 0
    for feed in batches:
        k = next(iter(feed.values())).shape[0]
        if limit is not None and n + k > limit:
            feed = {name: v[: limit - n] for name, v in feed.items()}
            k = limit - n
        if k > 0:
            kept.append(feed)
            n += k
        if limit is not None and n >= limit:
            break
    return kept, n


def _concat(chunks: list) -> dict:
    return {name: concat_rows([c[name] for c in chunks]) for name in chunks[0]}


class Evaluator:
    """Compares quantized variants of ``model`` with its FP32 outputs on ``data``.

    Args:
        model: the FP32 model.
        data: evaluation data (held out from calibration).
        max_samples: use at most this many samples (None: all of ``data``).
        batch_size: samples per inference call.
        layer_samples: samples used for the per-layer error (keeping FP32 activations of all
            quantized layers for a few samples only bounds memory). Default 4.
        threads: ONNX Runtime intra-op threads (None: all cores).
        metric_fn: optional ``f(outputs: dict[name, ndarray], labels) -> float``, higher is
            better (e.g. accuracy against ``labels``); reported as ``metric``.
        labels: passed to ``metric_fn`` unchanged.
    """

    def __init__(self, model: ModelInfo, data: CalibrationData, *, max_samples: int | None = None,
                 batch_size: int = 8, layer_samples: int = 4, threads: int | None = None,
                 metric_fn: Callable | None = None, labels=None):
        from ..validate import check_positive_int, check_type

        check_type(model, ModelInfo, "Evaluator(model=...)", expected="a ModelInfo (ModelInfo.from_path(path))")
        check_type(data, CalibrationData, "Evaluator(data=...)", expected="a CalibrationData (open_data(...))")
        check_positive_int(max_samples, "Evaluator(max_samples=...)", allow_none=True)
        check_positive_int(batch_size, "Evaluator(batch_size=...)")
        if metric_fn is not None and not callable(metric_fn):
            raise WorkbenchError(f"Evaluator(metric_fn=...) must be a function f(outputs, labels) -> float, "
                                 f"got {type(metric_fn).__name__}.")
        self.model = model
        self.threads = threads
        self.metric_fn = metric_fn
        self.labels = labels
        self.batches, n = first_samples(data.iter_batches(batch_size), max_samples)
        if not self.batches:
            raise WorkbenchError(f"No evaluation samples came from {data.describe()}.")
        self.num_samples = n
        self.output_names = [o.name for o in model.outputs]
        self.reference = self.run(model.model)
        self.layer_samples = max(1, min(layer_samples, n))
        self._layer_feed = _concat(one_shape(first_samples(self.batches, self.layer_samples)[0]))
        self._layer_ref: dict = {}
        self._fp32_latency: dict = {}

    # -- running -----------------------------------------------------------------------------
    def runner(self, model_proto, output_names=None, optimization: str = EXACT) -> OrtRunner:
        """An ONNX Runtime runner for ``model_proto``. ``optimization`` defaults to exact ONNX
        semantics (graph optimizations off), the semantics of every accuracy figure."""
        return OrtRunner(model_proto, output_names=output_names, threads=self.threads,
                         optimization=optimization, shared_arena=True).activate()

    def run(self, model_proto, output_names=None, optimization: str = EXACT) -> dict:
        """Run ``model_proto`` over every evaluation batch; returns {output name: all rows}.

        ``optimization`` defaults to exact ONNX semantics ("disable"), which is what TensorRT
        computes and what does not depend on the CPU; "all" is ONNX Runtime's CPU deployment.
        """
        runner = self.runner(model_proto, output_names, optimization)
        try:
            return _concat([runner.infer(feed) for feed in self.batches])
        finally:
            runner.close()

    def reference_activations(self, tensors: list) -> dict:
        """FP32 values of ``tensors`` on the per-layer samples (computed once, then cached)."""
        missing = [t for t in tensors if t not in self._layer_ref]
        if missing:
            runner = self.runner(self.model.model, missing)
            try:
                self._layer_ref.update(runner.infer(self._layer_feed))
            finally:
                runner.close()
        return {t: self._layer_ref[t] for t in tensors}

    # -- metrics -----------------------------------------------------------------------------
    def user_metric(self, outputs: dict, num_samples: int | None = None) -> float:
        """``metric_fn(outputs, labels)`` on the first ``num_samples`` samples (default all);
        ``labels`` are cut to the same samples when they can be sliced."""
        labels = self.labels
        if num_samples is not None and num_samples < self.num_samples and hasattr(labels, "__getitem__"):
            labels = labels[:num_samples]
        fn = self.metric_fn
        code = getattr(getattr(fn, "__wrapped__", fn), "__code__", None)  # a script's function: its file
        who = f"The metric function '{getattr(fn, '__name__', fn)}'" + (f" ('{code.co_filename}')" if code else "")
        try:
            value = fn(outputs, labels)
        except Exception as exc:
            raise WorkbenchError(f"{who} raised {type(exc).__name__}: {exc}") from None
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
        if not ok and isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf":
            value, ok = value.item(), True
        if not ok:
            raise WorkbenchError(f"{who} returned {type(value).__name__} {value!r:.60}; it must return one "
                                 "number (a float, higher is better), e.g. the top-1 accuracy.")
        if not np.isfinite(value):
            raise WorkbenchError(f"{who} returned {value} on {num_samples or self.num_samples} samples; it must "
                                 "return a finite number (check for a division by zero or empty labels).")
        return float(value)

    def compare(self, outputs: dict):
        """Output metrics table for ``outputs`` against the FP32 reference."""
        import pandas as pd

        rows = []
        for name in self.output_names:
            row = {"output": name}
            row.update(compare_outputs(self.reference[name], outputs[name]))
            rows.append(row)
        return pd.DataFrame(rows)

    def fp32_latency(self, batch_sizes=(1, 8), repeat: int = 20) -> dict:
        """Latency of the FP32 model (measured once per batch size, then cached)."""
        todo = [b for b in batch_sizes if b not in self._fp32_latency]
        if todo:
            self._fp32_latency.update(self.measure_latency(self.model.model, todo, repeat))
        return {b: self._fp32_latency[b] for b in batch_sizes}

    def latency_feed(self, batch_size: int) -> dict:
        """A feed of ``batch_size`` rows made by repeating the evaluation samples."""
        full = _concat(one_shape(self.batches))  # samples of the first shape (images of one size)
        reps = math.ceil(batch_size / len(next(iter(full.values()))))
        return {k: np.concatenate([v] * reps)[:batch_size] for k, v in full.items()}

    def measure_latency(self, model_proto, batch_sizes=(1, 8), repeat: int = 20) -> dict:
        """{batch size: LatencyStats} of ``model_proto`` on ONNX Runtime CPU, as deployed
        (all graph optimizations: latency is the one figure taken from the optimized path)."""
        with deployed_path():  # latency: the one figure taken from the optimized path
            runner = self.runner(model_proto, optimization=DEPLOYED)
        try:
            return {b: runner.measure_latency(self.latency_feed(b), warmup=3, repeat=repeat) for b in batch_sizes}
        finally:
            runner.close()

    def evaluate_model(self, model_proto, *, layers: list | None = None, latency: bool = False,
                       batch_sizes=(1, 8), label: str = "", optimization: str = EXACT, reuse=None) -> EvalResult:
        """Evaluate an already-built model (ModelProto or path).

        Args:
            layers: [(node, op_type, precision, tensor)] whose tensors get a per-layer error row.
            latency: also measure ONNX Runtime CPU latency at ``batch_sizes`` (always with all
                ONNX Runtime optimizations: that is what a CPU user gets).
            optimization: ONNX Runtime graph optimization for the accuracy run. Default
                "disable": the Q/DQ graph then computes exactly its ONNX semantics (integer
                values times scales, as TensorRT does), while ONNX Runtime's QDQ fusions on
                x86 (u8s8 kernels, requantization) shift the logits of the sample model by up
                to 3 % and run no faster here. Use "all" to judge an ONNX Runtime deployment.
            reuse: a :class:`~workbench.evaluate.reuse.ReuseCache` holding the last evaluated
                model's values: only what changed since then is computed (the same figures).
        """
        import pandas as pd

        started = time.perf_counter()
        # a file is run whole, and so is a model ONNX Runtime optimizes (its fusions cross any cut)
        reuse = reuse if hasattr(model_proto, "graph") and optimization == EXACT else None
        tensors = list(dict.fromkeys(t for *_, t in layers)) if layers else []
        # in the TensorRT file an FP16 node writes ``<y>_fp16`` (float16) when nothing in FP32 reads y
        where = _tensor_names(model_proto, tensors)
        got, reused = None, {}
        if reuse is not None:
            outputs, got, reused = reuse.run(self, model_proto, where, optimization)
        else:
            outputs = self.run(model_proto, optimization=optimization)
        table = self.compare(outputs)
        metric = None
        if self.metric_fn is not None:
            metric = self.user_metric(outputs)
            table["metric"] = [metric] + [math.nan] * (len(table) - 1)
        per_layer = None
        if layers:
            if got is None:
                runner = self.runner(model_proto, list(dict.fromkeys(where.values())), optimization)
                try:
                    out = runner.infer(self._layer_feed)
                finally:
                    runner.close()
                got = {t: np.asarray(out[where[t]], dtype=np.float32) for t in tensors}
            ref = self.reference_activations([t for t in tensors if t not in reused])
            rows = [dict(reused[t], node=node, op_type=op, precision=prec) if t in reused else
                    {"node": node, "op_type": op, "precision": prec, "tensor": t,
                     "sqnr_db": sqnr_db(ref[t], got[t]), "cosine": cosine(ref[t], got[t])}
                    for node, op, prec, t in layers]
            if reuse is not None:
                reuse.keep_rows(rows)
            per_layer = pd.DataFrame(rows)
        lat = self.measure_latency(model_proto, batch_sizes) if latency else {}
        path = None if hasattr(model_proto, "graph") else str(model_proto)
        return EvalResult(table, per_layer, lat, metric, time.perf_counter() - started, label,
                          describe(optimization), path)

    def evaluate(self, plan, ranges, *, variant: str = "ort", per_layer: bool = True,
                 latency: bool = False, batch_sizes=(1, 8), model: ModelInfo | None = None,
                 reuse=None) -> EvalResult:
        """Build the quantized model for ``plan`` and ``ranges`` in memory and evaluate it.
        ``reuse``: see :meth:`evaluate_model`.

        ``variant`` is an export variant (default "ort": Q/DQ with FP16 emulated for ONNX
        Runtime CPU; "cpu_uint8" for the CPU deployment model). ``model``: the FP32 graph to
        quantize when it is not this evaluator's (e.g. the accuracy steps' improved graph of
        the same model); it is still compared with this evaluator's FP32 reference.
        """
        from ..export import build_quantized

        proto = build_quantized(model if model is not None else self.model, ranges, plan, variant=variant)
        layers = self.layers_for(plan) if per_layer else None
        # The CPU deployment model is judged as ONNX Runtime runs it (fused uint8 kernels).
        if variant == "cpu_uint8":
            with deployed_path():
                return self.evaluate_model(proto, layers=layers, latency=latency, batch_sizes=batch_sizes,
                                           label=variant, optimization=DEPLOYED, reuse=reuse)
        return self.evaluate_model(proto, layers=layers, latency=latency, batch_sizes=batch_sizes,
                                   label=variant, optimization=EXACT, reuse=reuse)

    def context(self) -> dict:
        """What a reader needs to weigh the figures: ``samples`` (how many; a top-1 share moves in
        steps of 1/samples) and ``reference_rms`` of the first output (an SQNR or error of an output
        whose RMS is near zero says little)."""
        ref = np.asarray(self.reference[self.output_names[0]], dtype=np.float64)
        return {"samples": int(self.num_samples), "reference_rms": float(np.sqrt(np.mean(ref * ref))) if ref.size else 0.0}

    def layers_for(self, plan) -> list:
        """(node, op_type, precision, output tensor) of every node the plan does not keep in FP32."""
        rows = []
        for node in self.model.graph.node:
            prec = str(plan.precision(node.name))
            if prec != "fp32" and node.output and node.output[0] in self._float_outputs:
                rows.append((node.name, node.op_type, prec, node.output[0]))
        return rows

    @cached_property
    def _float_outputs(self) -> set:
        return set(self.model.float_tensors())


def _tensor_names(model_proto, tensors: list) -> dict:
    """tensor -> the name it has in ``model_proto`` (itself, or the exporter's ``<t>_fp16`` when an
    FP16 node's output is only read in float16 in the TensorRT file)."""
    if not hasattr(model_proto, "graph"):
        return {t: t for t in tensors}
    names = {o for n in model_proto.graph.node for o in n.output} | {i.name for i in model_proto.graph.input}
    return {t: t if t in names or f"{t}_fp16" not in names else f"{t}_fp16" for t in tensors}
