"""Run the FP32 model in ONNX Runtime and stream per-tensor statistics into histogram collectors.

Only the collectors' fixed-size state is kept between batches: memory stays flat however many
calibration samples there are (ONNX Runtime's own calibrators keep every activation).

Each histogram's bin width comes from the first calibration sample (slice 0 of the first batch
along axis 0), and later values extend the range with bins of that width, as TensorRT does from
its first batch. So the statistics, and every method's amax, are the same for any batch size
(they equal TensorRT's with calibration batch size 1); ModelOpt's entropy scales change with it.
"""
from __future__ import annotations

import copy

import time
from concurrent.futures import ThreadPoolExecutor
import warnings
from typing import Callable

import numpy as np

from ..backends.ort import OrtSessionLoader
from .collector import HistogramCollector
from ..data import CalibrationData
from ..errors import Cancelled, WorkbenchError
from ..graph.feeds import batch_size_of, per_sample_rows
from ..graph.model import ModelInfo
from .stats import Statistics


class NonFiniteActivationWarning(UserWarning):
    """A tensor produced NaN or Inf values during calibration."""


def tensors_to_observe(model: ModelInfo, tensors="default") -> list:
    """Resolve ``tensors`` to tensor names in graph order.

    Args:
        tensors: "default": the float activations read by nodes that the default precision plan
            runs in INT8 (Conv, ConvTranspose, Gemm, MatMul, residual Add, pooling), plus the
            model's float outputs; "quantizable": those read by every INT8-capable node
            (ModelOpt's op list, incl. Clip/Mul/BatchNormalization); "all": every float tensor;
            or an explicit list of names.
    """
    if tensors == "all":
        return model.float_tensors()
    if tensors in ("default", "quantizable"):
        targets = model.quantizable_nodes()
        if tensors == "default":
            int8 = model.facts.default_int8  # the default plan's INT8 nodes (one rule, in GraphFacts)
            targets = [t for t in targets if t.node in int8]
        names = [t for q in targets for t in q.activation_inputs]
        names += [s.name for s in model.outputs if s.dtype.kind == "f"]
        return list(dict.fromkeys(names))
    if isinstance(tensors, str):
        raise WorkbenchError(f"Unknown tensor selection '{tensors}'; use default, quantizable, all or a list.")
    known = set(model.float_tensors())
    unknown = [t for t in tensors if t not in known]
    if unknown:
        raise WorkbenchError(
            f"Cannot observe tensor(s) {', '.join(repr(t) for t in unknown[:5])}: not float activations "
            f"of '{model.name}' ({len(known)} float tensors exist)."
        )
    return list(dict.fromkeys(tensors))


class BoundRunner:
    """Runs a session into preallocated output buffers (ONNX Runtime IOBinding).

    Fetching dozens of large intermediate tensors the ordinary way makes ONNX Runtime allocate
    fresh arrays every call; the page faults alone cost several times the inference. Buffers
    are reallocated only when the input shapes change (e.g. the last, smaller batch).
    The returned arrays are overwritten by the next call.
    """

    def __init__(self, session, fetch: list):
        self.session = session
        self.fetch = fetch
        self.binding = session.io_binding()
        self._key = None
        self._buffers: dict = {}

    def run(self, feed: dict) -> dict:
        key = tuple((k, v.shape) for k, v in feed.items())
        if key != self._key:
            values = self.session.run(self.fetch, feed)
            # this run's own arrays become the buffers the next runs write into
            self._buffers = {n: np.ascontiguousarray(v) for n, v in zip(self.fetch, values)}
            self.binding.clear_binding_outputs()
            for n, buf in self._buffers.items():
                self.binding.bind_output(n, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)
            self._key = key
            return self._buffers
        for name, value in feed.items():
            self.binding.bind_cpu_input(name, np.ascontiguousarray(value))
        self.session.run_with_iobinding(self.binding)
        return self._buffers


def _is_cancelled(cancel) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return cancel.is_set()
    return bool(cancel())


def collect_statistics(
    model: ModelInfo,
    data: CalibrationData,
    *,
    tensors="default",
    batch_size: int = 8,
    num_bins: int = 2048,
    progress: bool | Callable[[int, int | None], None] = True,
    cancel=None,
    threads: int | None = None,
    extend: Statistics | None = None,
    whole=None,
) -> Statistics:
    """Stream the FP32 model over ``data`` and return per-tensor histogram statistics.

    The same pass records where each tensor with a batch axis peaks (``Statistics.peaks``:
    its max |x| and the index of the sample holding it, counted from 0 in ``data``'s order).

    Args:
        model: the model to calibrate.
        data: calibration batches (see :mod:`workbench.data`).
        tensors: which tensors to observe: "default", "quantizable", "all" or a list of names
            (see :func:`tensors_to_observe`).
        batch_size: samples per ONNX Runtime call (1 when the model's batch is static 1).
        num_bins: histogram bins per tensor on the first batch (2048 as TensorRT).
        progress: True for a tqdm bar, False for none, or a callback ``(samples_done, total)``.
        cancel: a ``threading.Event`` (or a callable returning True) that stops the run with
            :class:`Cancelled` between batches.
        threads: ONNX Runtime intra-op threads (None: its default, all cores).
        extend: continue these statistics (copies of their collectors) over ``data``: the result
            is what collecting their samples and then ``data``'s would give. ``whole`` is then the
            data both together are (its fingerprint and description label the result). The
            peaks stay those of ``extend`` (they index its own samples).
    """
    from ..validate import check_positive_int, check_type

    check_type(model, ModelInfo, "collect_statistics(model=...)", expected="a ModelInfo (ModelInfo.from_path(path))")
    check_type(data, CalibrationData, "collect_statistics(data=...)", expected="a CalibrationData (open_data(...))")
    if not isinstance(tensors, str) and not (isinstance(tensors, (list, tuple, set))
                                             and all(isinstance(t, str) for t in tensors)):
        raise WorkbenchError(f"collect_statistics(tensors=...) must be 'default', 'quantizable', 'all' or a list "
                             f"of tensor names, got {type(tensors).__name__} {tensors!r:.60}.")
    check_positive_int(num_bins, "collect_statistics(num_bins=...)")
    check_positive_int(threads, "collect_statistics(threads=...)", allow_none=True)
    names = tensors_to_observe(model, tensors)
    if not names:
        raise WorkbenchError(f"'{model.name}' has no float tensors to calibrate.")
    graph_inputs = {s.name for s in model.inputs}
    fetch = [n for n in names if n not in graph_inputs]
    session = OrtSessionLoader(model.model, threads=threads, extra_outputs=fetch, spinning=False,
                               optimization="disable" if model.has_qdq() else "all")()
    # an FP32 model: ONNX Runtime's fast path; a model with Q/DQ in it (--allow-existing-qdq): exact
    # semantics, or its fused integer kernels would change the statistics with the CPU
    collectors = {n: HistogramCollector(num_bins=num_bins, name=n) for n in names}
    if extend is not None:
        missing = [n for n in names if n not in extend.collectors]
        if missing or extend.model_fingerprint != model.fingerprint():
            raise WorkbenchError("collect_statistics(extend=...): those statistics are of another model or "
                                 f"other tensors ({', '.join(missing[:3]) or 'model fingerprint differs'}).")
        collectors = {n: copy.deepcopy(extend.collectors[n]) for n in names}
    # Two output buffer sets: while one batch is binned on a worker thread (numpy releases the
    # GIL in its loops), ONNX Runtime already computes the next batch into the other set.
    runners = [BoundRunner(session, fetch), BoundRunner(session, fetch)]
    in_graph_inputs = sorted(graph_inputs.intersection(collectors))

    # tensor -> (max |x|, index of the sample holding it): where each tensor peaks over this
    # collection's own samples (not an extension's), so a range search can add those samples
    # to its held-out ones without another FP32 pass (workbench.search.holdout.extreme_samples).
    peaks: dict = {}

    def note_peaks(name: str, row_absmax: np.ndarray, start: int) -> None:
        r = int(np.argmax(row_absmax))  # ties: the earliest sample, here and across batches
        if name not in peaks or row_absmax[r] > peaks[name][0]:
            peaks[name] = (float(row_absmax[r]), start + r)

    def accumulate(outputs: dict, feed: dict, first: bool, start: int) -> None:
        n = batch_size_of(feed) if feed else 0
        for source, names_ in ((outputs, fetch), (feed, in_graph_inputs)):
            for name in names_:
                value = source[name]
                batched = n > 0 and per_sample_rows(value, n) is not None
                record = batched and extend is None
                if first and n > 1 and batched:
                    # The first SAMPLE sets each histogram's bin width (TensorRT: the first batch),
                    # so the histograms, and every amax, do not depend on the batch size.
                    head = collectors[name].collect(value[:1], rows=1 if record else None)
                    rest = collectors[name].collect(value[1:], rows=n - 1 if record else None)
                    row_absmax = np.concatenate((head, rest)) if record else None
                else:
                    row_absmax = collectors[name].collect(value, rows=n if record else None)
                if row_absmax is not None:
                    note_peaks(name, row_absmax, start)

    total = data.num_samples()
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="Calibrating", unit="sample")
    callback = progress if callable(progress) else None
    done, started, pending = 0, time.perf_counter(), None
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            for i, feed in enumerate(data.iter_batches(batch_size)):
                if _is_cancelled(cancel):
                    raise Cancelled(f"Calibration cancelled after {done} samples.")
                try:
                    outputs = runners[i % 2].run(feed)
                except Exception as exc:
                    raise WorkbenchError(f"ONNX Runtime failed on a calibration batch: {exc}") from None
                if pending is not None:
                    pending.result()
                pending = pool.submit(accumulate, outputs, feed, i == 0 and extend is None, done)
                n = next(iter(feed.values())).shape[0] if feed else 0
                done += n
                if bar is not None:
                    bar.update(n)
                if callback is not None:
                    callback(done, total)
            if pending is not None:
                pending.result()
        finally:
            if bar is not None:
                bar.close()
    if done == 0:
        raise WorkbenchError(f"No calibration samples came from {data.describe()}.")

    labelled = whole if extend is not None and whole is not None else data
    stats = Statistics(
        collectors=collectors,
        model_fingerprint=model.fingerprint(),
        data_fingerprint=labelled.fingerprint(),
        num_samples=done + (extend.num_samples if extend is not None else 0),
        seconds=time.perf_counter() - started + (extend.seconds if extend is not None else 0.0),
        data_description=labelled.describe(),
        peaks=extend.peaks if extend is not None else {n: peaks[n] for n in names if n in peaks},
    )
    bad = stats.nonfinite_tensors()
    if bad:
        listed = ", ".join(f"'{n}' ({c.nan_count} NaN, {c.inf_count} Inf)" for n, c in list(bad.items())[:5])
        warnings.warn(
            f"{len(bad)} tensor(s) produced NaN/Inf during calibration: {listed}. Their ranges ignore "
            "those values; check the input data and the model.",
            NonFiniteActivationWarning,
            stacklevel=2,
        )
    return stats
