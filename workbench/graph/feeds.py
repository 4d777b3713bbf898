"""Checking a feed (input name -> array) against a model's inputs.

No backend imports: the data loaders (``workbench.data``) and every runner use
:func:`check_feed`, and importing this module loads neither ONNX Runtime nor TensorRT.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import WorkbenchError
from .model import TensorSpec

__all__ = ["TensorSpec", "check_feed", "batch_size_of", "format_shape", "onnx_input_specs", "per_sample_rows"]

# ONNX TensorProto element type -> numpy dtype, for reading graph inputs without model.py.
_ONNX_TO_NUMPY = {
    1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
    7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64,
}


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


def per_sample_rows(value, n: int):
    """``value`` as ``n`` rows, one per sample, when its leading axis is the batch axis (length
    ``n``); None for a tensor without one (a shape, or a constant-like tensor computed from
    initializers: the same for every sample, whatever the batch size).

    Every path that reads observed tensors sample by sample uses this instead of assuming that
    axis 0 holds the samples.
    """
    arr = np.asarray(value)
    if arr.ndim == 0 or arr.shape[0] != n:
        return None
    return arr.reshape(n, -1)


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
