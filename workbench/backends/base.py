"""The runner protocol shared by the ONNX Runtime and TensorRT backends.

A backend is a loader plus a runner (STYLE.md point 2). The base class here owns what
every runner needs and what is easy to get wrong: checking a feed against the model's
inputs (names, rank, static dimensions, dtype) and timing repeated runs. Subclasses
implement four small hooks:

- ``_activate()``: create the session / engine context (called once, lazily);
- ``_input_specs()``: the model inputs as a list of :class:`TensorSpec`;
- ``_output_names()``: the names of the outputs ``infer`` returns;
- ``_infer(feed)``: run once on an already checked feed and return ``{name: ndarray}``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import WorkbenchError

try:  # workbench/model.py owns TensorSpec; keep working while it is being written
    from ..model import TensorSpec
except ModuleNotFoundError as _exc:  # pragma: no cover - depends on the repo state
    if _exc.name not in ("workbench.model",):
        raise

    @dataclass(frozen=True)
    class TensorSpec:  # type: ignore[no-redef]
        """A model input or output: name, numpy dtype and shape (ints, or str/None when dynamic)."""

        name: str
        dtype: np.dtype
        shape: tuple


BACKENDS = ("ort", "trt")

# ONNX TensorProto element type -> numpy dtype, for reading graph inputs without model.py.
_ONNX_TO_NUMPY = {
    1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
    7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64,
}


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


def _describe_names(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names) if names else "(none)"


def _is_static(dim: Any) -> bool:
    return isinstance(dim, (int, np.integer)) and not isinstance(dim, bool) and dim >= 0


def format_shape(shape: Sequence[Any]) -> str:
    """``(N, 3, 224, 224)``-style text where dynamic dimensions keep their symbolic name."""
    return "(" + ", ".join(str(d) if d is not None else "?" for d in shape) + ")"


def check_feed(feed: Mapping[str, Any], specs: Sequence[TensorSpec], *, where: str | None = None,
               cast_same_kind: bool = False) -> dict[str, np.ndarray]:
    """Check ``feed`` against the model inputs and return it as ``{name: ndarray}``.

    Args:
        feed: mapping input name -> array-like. Every model input must be present.
        specs: the model inputs (name, dtype, shape with ints for static dimensions and
            str/None/negative ints for dynamic ones).
        where: the file or script the feed came from; prefixed to every message.
        cast_same_kind: cast float64 -> float32, int32 -> int64 and the like (data loaders do,
            since .npy files and scripts often hold the wider type); other dtypes stay errors.

    Raises:
        WorkbenchError: naming the tensor and what was expected, for a missing or unknown
            input name, a wrong rank, a wrong static dimension or a wrong dtype. By default
            arrays are never cast silently: a float64 feed for a float32 input is a mistake
            worth seeing when you call a runner yourself.
    """
    try:
        return _check_feed(feed, specs, cast_same_kind)
    except WorkbenchError as exc:
        if where:
            raise WorkbenchError(f"{where}: {exc}") from None
        raise


def _check_feed(feed, specs, cast_same_kind: bool) -> dict[str, np.ndarray]:
    if not isinstance(feed, Mapping):
        raise WorkbenchError(
            f"The feed must be a dict {{input name: array}}, got {type(feed).__name__}; "
            f"the model has: {_describe_names([s.name for s in specs])}")
    known = [s.name for s in specs]
    for name in feed:
        if name not in known:
            raise WorkbenchError(f"requested input '{name}', the model has: {_describe_names(known)}")
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        if spec.name not in feed:
            raise WorkbenchError(
                f"missing input '{spec.name}' (expected dtype {np.dtype(spec.dtype).name}, shape "
                f"{format_shape(spec.shape)}); the feed has: {_describe_names(list(feed))}")
        arr = np.asarray(feed[spec.name])
        want_dtype = np.dtype(spec.dtype)
        if arr.dtype != want_dtype and cast_same_kind and arr.dtype.kind in "biuf" and \
                np.can_cast(arr.dtype, want_dtype, casting="same_kind"):
            arr = arr.astype(want_dtype)
        if arr.dtype != want_dtype:
            raise WorkbenchError(
                f"input '{spec.name}': expected dtype {want_dtype.name}, got {arr.dtype.name} "
                f"(convert it with .astype(np.{want_dtype.name}))")
        if arr.ndim != len(spec.shape):
            raise WorkbenchError(
                f"input '{spec.name}': expected rank {len(spec.shape)} with shape "
                f"{format_shape(spec.shape)}, got rank {arr.ndim} with shape {tuple(arr.shape)}")
        for axis, (want, got) in enumerate(zip(spec.shape, arr.shape)):
            if _is_static(want) and int(want) != got:
                raise WorkbenchError(
                    f"input '{spec.name}': dimension {axis} must be {want} (expected shape "
                    f"{format_shape(spec.shape)}), got shape {tuple(arr.shape)}")
        out[spec.name] = arr
    return out


def batch_size_of(feed: Mapping[str, np.ndarray]) -> int:
    """The first dimension of the first input with rank >= 1 (1 when all inputs are scalars)."""
    for arr in feed.values():
        if np.ndim(arr) >= 1:
            return int(np.shape(arr)[0])
    return 1


def onnx_input_specs(model) -> list[TensorSpec]:
    """The real inputs of an ONNX model (initializers listed as inputs are skipped).

    Args:
        model: path to an ``.onnx`` file or an ``onnx.ModelProto``. External weights are
            not loaded (only the graph signature is read).
    """
    import onnx

    if not isinstance(model, onnx.ModelProto):
        try:
            model = onnx.load(str(model), load_external_data=False)
        except FileNotFoundError:
            raise WorkbenchError(f"ONNX model not found: '{model}'") from None
        except Exception as exc:  # onnx raises DecodeError and friends for non-ONNX files
            raise WorkbenchError(f"'{model}' is not a readable ONNX model ({exc})") from None
    inits = {i.name for i in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dtype = np.dtype(_ONNX_TO_NUMPY.get(tt.elem_type, np.float32))
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                      for d in tt.shape.dim)
        specs.append(TensorSpec(vi.name, dtype, shape))
    return specs


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


def get_runner(model, backend: str = "ort", **kw) -> Runner:
    """Create a runner for ``model`` on the chosen backend.

    Args:
        model: for ``"ort"``: an ONNX path, serialized bytes or ``onnx.ModelProto``.
            For ``"trt"``: a serialized engine (``.engine`` / ``.plan`` path or bytes), or an
            ONNX path, which is then built in memory with ``kw`` passed to ``BuildConfig``.
        backend: ``"ort"`` (ONNX Runtime, CPU, always available) or ``"trt"`` (TensorRT
            through Polygraphy, needs the ``tensorrt`` package and an NVIDIA GPU).
        **kw: forwarded to :class:`~workbench.backends.ort.OrtRunner` or to the TensorRT
            runner / build config.

    Raises:
        WorkbenchError: for an unknown backend, or when TensorRT is chosen but missing.
    """
    if backend == "ort":
        from .ort import OrtRunner

        return OrtRunner(model, **kw)
    if backend == "trt":
        from .trt import runner_for

        return runner_for(model, **kw)
    raise WorkbenchError(f"Unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
