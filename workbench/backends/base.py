"""The runner protocol shared by the ONNX Runtime and TensorRT backends.

A backend is a loader plus a runner (STYLE.md point 2). The base class here owns what
every runner needs and what is easy to get wrong: checking a feed against the model's
inputs (names, rank, static dimensions, dtype) and timing repeated runs. Subclasses
implement four small hooks:

- ``_activate()``: create the session / engine context (called once, lazily);
- ``_input_specs()``: the model inputs as a list of :class:`TensorSpec`;
- ``_output_names()``: the names of the outputs ``infer`` returns;
- ``_infer(feed)``: run once on an already checked feed and return ``{name: ndarray}``.

Which backends exist (and ``get_runner``) is in :mod:`workbench.backends.registry`; the feed
checks live in :mod:`workbench.graph.feeds` (re-exported here).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import WorkbenchError
from ..graph.feeds import TensorSpec, batch_size_of, check_feed, format_shape, onnx_input_specs

__all__ = ["LatencyStats", "Runner", "TensorSpec", "batch_size_of", "check_feed", "format_shape",
           "onnx_input_specs"]


@dataclass
class LatencyStats:
    """Latency of repeated ``infer`` calls on one feed, measured after warm-up.

    Attributes:
        median_ms / p90_ms / mean_ms / min_ms: wall time of one ``infer`` call in milliseconds
            (including host<->device copies for TensorRT).
        runs: number of timed runs.
        batch_size: size of the first dimension of the feed (1 for scalars).
        backend: ``"ort"`` or ``"trt"``.
        note: what the number means, e.g. that ONNX Runtime CPU latency is no proxy for
            TensorRT GPU speed.
    """

    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    runs: int
    batch_size: int
    backend: str
    note: str = ""

    @classmethod
    def from_times(cls, seconds: Sequence[float], *, batch_size: int, backend: str,
                   note: str = "") -> "LatencyStats":
        """Summarise per-run durations given in seconds."""
        if not len(seconds):
            raise WorkbenchError("Latency needs at least one timed run (repeat must be >= 1).")
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        return cls(median_ms=float(np.median(ms)), p90_ms=float(np.percentile(ms, 90)),
                   mean_ms=float(ms.mean()), min_ms=float(ms.min()), runs=int(ms.size),
                   batch_size=int(batch_size), backend=backend, note=note)

    @property
    def per_sample_ms(self) -> float:
        """Median latency divided by the batch size."""
        return self.median_ms / max(self.batch_size, 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Runner:
    """Base class of every backend runner: input checks and timing live here.

    Use as a context manager or call :meth:`close` to release the session / engine.
    """

    #: ``"ort"`` or ``"trt"``; copied into :class:`LatencyStats`.
    backend: str = "base"
    #: Explains what the latency numbers of this backend mean.
    latency_note: str = ""

    def __init__(self) -> None:
        self._active = False
        self._specs: list[TensorSpec] | None = None
        self._outputs: list[str] | None = None

    # -- hooks for subclasses -------------------------------------------------------
    def _activate(self) -> None:
        raise NotImplementedError

    def _deactivate(self) -> None:
        """Release resources (optional)."""

    def _input_specs(self) -> list[TensorSpec]:
        raise NotImplementedError

    def _output_names(self) -> list[str]:
        raise NotImplementedError

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _check_feed_extra(self, feed: dict[str, np.ndarray]) -> None:
        """Backend-specific checks after the generic ones (e.g. TensorRT profile ranges)."""

    # -- public API -----------------------------------------------------------------
    def activate(self) -> "Runner":
        if not self._active:
            self._activate()
            self._active = True
        return self

    def close(self) -> None:
        if self._active:
            self._active = False
            self._deactivate()

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def input_specs(self) -> list[TensorSpec]:
        """The model inputs (name, numpy dtype, shape with str/None for dynamic dims)."""
        if self._specs is None:
            self.activate()
            self._specs = list(self._input_specs())
        return self._specs

    @property
    def output_names(self) -> list[str]:
        """Names of the tensors returned by :meth:`infer`, in order."""
        if self._outputs is None:
            self.activate()
            self._outputs = list(self._output_names())
        return self._outputs

    def check_feed(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Validate ``feed`` (see :func:`check_feed`) and return it as numpy arrays."""
        checked = check_feed(feed, self.input_specs)
        self._check_feed_extra(checked)
        return checked

    def infer(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run the model once on ``feed`` ({input name: array}) and return {output name: array}."""
        checked = self.check_feed(feed)
        return self._infer(checked)

    def measure_latency(self, feed: Mapping[str, Any], warmup: int = 5, repeat: int = 30) -> LatencyStats:
        """Median / p90 latency of ``infer`` on ``feed``.

        Args:
            feed: one batch, checked like :meth:`infer`; its first dimension is the batch size.
            warmup: untimed runs first (lazy allocations, autotuning, caches). Default 5.
            repeat: timed runs. Default 30.
        """
        if warmup < 0 or repeat < 1:
            raise WorkbenchError(f"warmup must be >= 0 and repeat >= 1, got warmup={warmup}, repeat={repeat}")
        checked = self.check_feed(feed)  # check once, outside the timed loop
        for _ in range(warmup):
            self._infer(checked)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            self._infer(checked)
            times.append(time.perf_counter() - start)
        return LatencyStats.from_times(times, batch_size=batch_size_of(checked),
                                       backend=self.backend, note=self.latency_note)
