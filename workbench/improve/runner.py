"""Running a model with exact ONNX semantics, and the output check the steps are judged by.

Every session here has ONNX Runtime's graph optimizations off (ORT_DISABLE_ALL): with them on,
ORT fuses Q/DQ into u8s8 kernels that saturate on CPUs without VNNI (DESIGN.md), which TensorRT
does not do. Sessions use at most two threads (the steps run many small passes).
"""
from __future__ import annotations

import math

import numpy as np
import onnx

from .graphops import with_outputs


class ExactRunner:
    """An ONNX Runtime session of ``model`` with optimizations off that can fetch ``extra`` tensors.

    Args:
        model: the ONNX model (FP32 or Q/DQ).
        extra: intermediate tensors to expose as outputs (default none).
        threads: intra-op threads (default 2).
    """

    def __init__(self, model: onnx.ModelProto, extra=(), threads: int = 2):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        m = with_outputs(model, extra) if extra else model
        self.session = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in model.graph.output]

    def run(self, batch: dict, names=None, extra_feeds: dict | None = None) -> dict:
        """Name -> array of ``names`` (default: the model's outputs) for one batch."""
        names = list(names or self.outputs)
        feeds = {k: v for k, v in batch.items() if k in self.inputs}
        feeds.update(extra_feeds or {})
        return dict(zip(names, self.session.run(names, feeds)))

    def run_all(self, batches, names=None, extra_feeds: dict | None = None) -> list:
        return [self.run(b, names, extra_feeds) for b in batches]


def sqnr(ref: np.ndarray, test: np.ndarray) -> float:
    """10*log10(sum(ref^2) / sum((ref-test)^2)) in dB (inf when equal)."""
    r = np.asarray(ref, dtype=np.float64).ravel()
    t = np.asarray(test, dtype=np.float64).ravel()
    noise = float(np.sum((r - t) ** 2))
    if noise == 0.0:
        return math.inf
    signal = float(np.sum(r ** 2))
    return 10.0 * math.log10(signal / noise) if signal > 0 else -math.inf


def output_sqnr(ref_runs: list, test_runs: list) -> float:
    """Mean over the model outputs of each output's SQNR over all batches (dB)."""
    values = []
    for name in ref_runs[0]:
        r = np.concatenate([np.ravel(x[name]) for x in ref_runs])
        t = np.concatenate([np.ravel(x[name]).astype(np.float64) for x in test_runs])
        values.append(min(sqnr(r, t), 200.0))
    return float(np.mean(values))


def split_holdout(batches: list, holdout: list | None, fraction: float = 0.25):
    """(calibration, hold-out) batches: ``holdout`` when given, else the last ``fraction`` of
    ``batches`` (at least one). Returns (batches, None) when there is too little data to split."""
    if holdout:
        return list(batches), list(holdout)
    if len(batches) < 2:
        return list(batches), None
    k = max(1, int(round(len(batches) * fraction)))
    return list(batches[:-k]), list(batches[-k:])


def channel_reduce(x: np.ndarray, axis: int, how: str = "absmax") -> np.ndarray:
    """Per-channel max|x| ("absmax") or sum ("sum") of ``x`` along ``axis``, as float64."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis % x.ndim, 0).reshape(x.shape[axis], -1)
    return np.abs(x).max(axis=1) if how == "absmax" else x.sum(axis=1)
