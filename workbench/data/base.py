"""The base of every data source, and the checks every source shares.

Checks that protect the user from silent garbage or an out-of-memory crash:

* sample limits and batch sizes must be positive integers;
* a sample whose float input has no finite value at all (all NaN / Inf) is refused, naming the
  file, unless ``allow_nonfinite=True``; partly non-finite inputs give one :class:`DataWarning`;
* before the first batch is stacked, its memory (inputs plus, for large batches, the model's
  activations from ONNX shape inference) is compared with the memory available, and a batch
  size that cannot fit is refused with the largest one that would.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import WorkbenchError
from ..graph.feeds import check_feed
from ..graph.model import ModelInfo
from ..validate import check_positive_int

#: Share of the available memory a batch may take (inputs plus activations).
MEMORY_SHARE = 0.8


class DataWarning(UserWarning):
    """Something about the data is suspicious but not wrong (partly NaN inputs, an unbounded loader)."""


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def activation_bytes_per_sample(model: ModelInfo) -> int:
    """Bytes of the float activations of one sample, from ONNX shape inference (a lower bound:
    tensors whose per-sample shape is not static are not counted)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model.model)
    except Exception:
        return 0
    total = 0
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        tt = vi.type.tensor_type
        if tt.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if len(dims) < 2 or not all(d and d > 0 for d in dims[1:]):
            continue
        size = {onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.DOUBLE: 8}.get(tt.elem_type, 4)
        total += int(np.prod(dims[1:], dtype=np.int64)) * size
    return total


class CalibrationData:
    """Base of every data source. Subclasses implement ``_iter_samples`` or ``iter_batches``.

    Attributes:
        model: the ModelInfo whose inputs the batches feed.
        limit: the most samples to yield (None for all).
        allow_nonfinite: accept samples whose float inputs are all NaN/Inf (default False).
    """

    kind = "data"

    def __init__(self, model: ModelInfo, limit: int | None = None, allow_nonfinite: bool = False):
        self.model = model
        self.limit = check_positive_int(limit, "The sample limit (--samples)", allow_none=True)
        self.allow_nonfinite = bool(allow_nonfinite)
        self._warned_nonfinite = False
        self._activation_bytes = None

    def __len__(self) -> int:
        raise TypeError("this data source does not know its length in advance")

    def num_samples(self) -> int | None:
        """The number of samples it will yield, or None if unknown before iterating."""
        try:
            return len(self)
        except TypeError:
            return None

    def input_paths(self) -> list:
        """``(label, path)`` of what this source reads, for the output guard (none by default)."""
        return []

    def batch_size_for(self, batch_size: int) -> int:
        """The batch size the model accepts: 1 when its batch dimension is static 1."""
        batch_size = check_positive_int(batch_size, "The batch size (--batch-size)")
        dims = [s.shape[0] for s in self.model.inputs if s.shape]
        if any(d == 1 for d in dims):
            return 1
        static = [d for d in dims if isinstance(d, int) and d > 0]
        return static[0] if static else batch_size

    def iter_batches(self, batch_size: int = 8) -> Iterator[dict]:
        """Yield checked batches of up to ``batch_size`` samples stacked on axis 0. Samples of
        another shape start a new batch (a dynamic-H/W model fed images of several sizes), so
        the sample order never depends on the batch size."""
        bs = self.batch_size_for(batch_size)
        pending: list = []
        for where, sample in self._iter_samples():
            self.check_values(sample, where)
            if pending and _shapes(sample) != _shapes(pending[0][1]):
                yield self._stack(pending)
                pending = []
            if not pending:
                self._check_memory(sample, bs, where)
            pending.append((where, sample))
            if len(pending) == bs:
                yield self._stack(pending)
                pending = []
        if pending:
            yield self._stack(pending)

    def _stack(self, samples: list) -> dict:
        where = samples[0][0] if len(samples) == 1 else f"{samples[0][0]} .. {samples[-1][0]}"
        feed = {name: np.stack([s[name] for _, s in samples]) for name in samples[0][1]}
        return check_feed(feed, self.model.inputs, where=where, cast_same_kind=True)

    def check_values(self, arrays: dict, where: str, batched: bool = False) -> None:
        """Refuse a sample (or each sample of a batch) whose float input has no finite value."""
        for name, arr in arrays.items():
            arr = np.asarray(arr)
            if arr.dtype.kind not in "fc" or arr.size == 0:
                continue
            finite = np.isfinite(arr)
            if finite.all():
                continue
            rows = finite.reshape(arr.shape[0], -1).any(axis=1) if batched and arr.ndim else \
                np.array([finite.any()])
            if not rows.all() and not self.allow_nonfinite:
                row = f" (sample {int(np.argmin(rows))} of the batch)" if batched else ""
                what = "NaN" if np.isnan(arr).all() else "NaN/Inf"
                raise WorkbenchError(
                    f"{where}: input '{name}'{row} is all {what}, which calibrates nothing (every range "
                    "would fall back to 1.0). Fix the data, or pass --allow-nonfinite "
                    "(allow_nonfinite=True) if that is intended.")
            if not self._warned_nonfinite:
                self._warned_nonfinite = True
                bad = int(arr.size - finite.sum())
                warnings.warn(f"{where}: input '{name}' has {bad} NaN/Inf value(s) of {arr.size}; "
                              "they are fed to the model as they are.", DataWarning, stacklevel=3)

    def _check_memory(self, sample: dict, batch_size: int, where: str) -> None:
        """Refuse a batch size whose inputs and activations cannot fit in the memory available."""
        avail = available_memory()
        known = self.num_samples()
        asked, batch_size = batch_size, min(batch_size, known) if known else batch_size
        if not avail or batch_size <= 1:
            return
        per_sample = sum(int(np.prod(np.shape(a), dtype=np.int64)) * max(np.asarray(a).dtype.itemsize, 4)
                         for a in sample.values())
        if batch_size * per_sample * 64 > avail * MEMORY_SHARE and self._activation_bytes is None:
            # large enough to matter: count the activations too (shape inference, once)
            self._activation_bytes = activation_bytes_per_sample(self.model)
        per_sample += self._activation_bytes or 0
        need = batch_size * per_sample
        if need <= avail * MEMORY_SHARE:
            return
        fits = max(1, int(avail * MEMORY_SHARE // max(per_sample, 1)))
        hint = 1 << (fits.bit_length() - 1)
        what = f"Batch size {batch_size}" if asked == batch_size else \
            f"A batch of {batch_size} samples (--batch-size {asked})"
        raise WorkbenchError(
            f"{what} needs about {format_bytes(need)} (inputs"
            f"{' and activations' if self._activation_bytes else ''} of {format_bytes(per_sample)} per sample, "
            f"first sample {where}), more than the {format_bytes(avail)} of memory available. "
            f"Use --batch-size {hint} or less (batch_size={hint}).")

    def _iter_samples(self) -> Iterator[tuple]:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A hash of the data and of every setting that changes the arrays fed to the model."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.kind


def _shapes(sample: dict) -> tuple:
    return tuple((k, np.shape(v)) for k, v in sample.items())


def list_files(folder: Path, extensions: tuple, what: str) -> list:
    """Files of ``folder`` (recursively, sorted) with one of ``extensions``; hidden files and
    folders (``.ipynb_checkpoints``, ``._photo.jpg``, a writer's staging folder) are skipped."""
    if not folder.exists():
        raise WorkbenchError(f"Data folder '{folder}' does not exist.")
    if not folder.is_dir():
        raise WorkbenchError(f"Data path '{folder}' is not a folder.")
    try:
        files = sorted(p for p in folder.rglob("*")
                       if p.suffix.lower() in extensions and p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    except OSError as exc:
        raise WorkbenchError(f"Cannot read data folder '{folder}': {exc}.") from None
    if not files:
        raise WorkbenchError(
            f"Data folder '{folder}' has no {what} files (looked for {', '.join(extensions)})."
        )
    return files


def hash_files(files: list, extra: dict) -> str:
    """sha256 over ``extra`` (settings) and the names and bytes of ``files``."""
    h = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode())
    for f in files:
        h.update(f.name.encode())
        try:
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError as exc:
            raise WorkbenchError(f"Cannot read data file '{f}': {exc.strerror or exc}.") from None
    return h.hexdigest()
