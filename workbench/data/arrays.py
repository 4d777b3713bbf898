"""Folders of ``.npy`` files (single-input models) and ``.npz`` files keyed by input name."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import WorkbenchError
from ..graph.model import ModelInfo
from .base import CalibrationData, hash_files, list_files

ARRAY_EXTENSIONS = (".npy", ".npz")


def _read_error(path: Path, exc: Exception) -> WorkbenchError:
    text = str(exc).rstrip(".")
    if "allow_pickle" in text or "Object arrays" in text or "Python objects" in text:
        return WorkbenchError(f"Array file '{path}' holds Python objects (dtype=object), not numbers; "
                              "save numeric arrays (e.g. np.save(path, x.astype(np.float32))).")
    return WorkbenchError(f"Cannot read array file '{path}' (corrupt or not a NumPy file?): "
                          f"{type(exc).__name__}: {text}.")


class ArrayFolderData(CalibrationData):
    """``.npy`` files (single-input models) and ``.npz`` files keyed by input name.

    An array whose rank equals the input's rank is a batch (its first axis is split into samples);
    one rank lower is a single sample. Object arrays and corrupt files are refused naming the file.
    """

    kind = "arrays"

    def __init__(self, folder, model: ModelInfo, limit: int | None = None, allow_nonfinite: bool = False):
        super().__init__(model, limit, allow_nonfinite)
        self.folder = Path(folder)
        self.files = list_files(self.folder, ARRAY_EXTENSIONS, ".npy/.npz")
        self._count = None

    def input_paths(self) -> list:
        return [("the data folder", self.folder)]

    def _load(self, path: Path) -> dict:
        try:
            if path.suffix.lower() == ".npy":
                if len(self.model.inputs) != 1:
                    names = ", ".join(f"'{s.name}'" for s in self.model.inputs)
                    raise WorkbenchError(
                        f"'{path}' is a .npy file but the model has several inputs ({names}); "
                        "use .npz files keyed by input name."
                    )
                arrays = {self.model.inputs[0].name: np.load(path, allow_pickle=False)}
            else:
                with np.load(path, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
        except WorkbenchError:
            raise
        except Exception as exc:
            raise _read_error(path, exc) from None
        for name, arr in arrays.items():
            if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
                raise WorkbenchError(f"'{path}': input '{name}' has dtype "
                                     f"{getattr(arr, 'dtype', type(arr).__name__)}; expected numbers.")
        return arrays

    def _samples_in(self, path: Path, arrays: dict) -> list:
        specs = {s.name: s for s in self.model.inputs}
        counts = set()
        batched = {}
        for name, arr in arrays.items():
            spec = specs.get(name)
            if spec is None:
                have = ", ".join(f"'{s}'" for s in specs)
                raise WorkbenchError(f"'{path}': unknown input '{name}'; the model has: {have}.")
            if arr.ndim == len(spec.shape) - 1:
                arr = arr[None]
            elif arr.ndim != len(spec.shape):
                raise WorkbenchError(
                    f"'{path}': input '{name}' has shape {list(arr.shape)}; the model expects "
                    f"{list(spec.shape)} (one sample without the batch axis, or a batch)."
                )
            batched[name] = arr
            counts.add(arr.shape[0])
        if len(counts) > 1:
            raise WorkbenchError(f"'{path}': inputs have different batch sizes {sorted(counts)}.")
        n = counts.pop() if counts else 0
        return [{k: v[i] for k, v in batched.items()} for i in range(n)]

    def _samples_in_file(self, f: Path) -> int:
        if f.suffix.lower() == ".npy":
            try:
                arr = np.load(f, mmap_mode="r", allow_pickle=False)
            except Exception as exc:
                raise _read_error(f, exc) from None
            if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
                raise WorkbenchError(f"'{f}': dtype {getattr(arr, 'dtype', '?')}; expected numbers.")
            return arr.shape[0] if arr.ndim == len(self.model.inputs[0].shape) and arr.ndim else 1
        return len(self._samples_in(f, self._load(f)))

    def _used_files(self) -> list:
        """The files that hold the first ``limit`` samples (all files without a limit)."""
        if self.limit is None:
            return self.files
        used, n = [], 0
        for f in self.files:
            if n >= self.limit:
                break
            used.append(f)
            n += self._samples_in_file(f)
        return used

    def _iter_samples(self):
        emitted = 0
        for f in self._used_files():
            for i, sample in enumerate(self._samples_in(f, self._load(f))):
                if self.limit is not None and emitted >= self.limit:
                    return
                yield f"{f}[{i}]", sample
                emitted += 1

    def __len__(self) -> int:
        if self._count is None:
            self._count = sum(self._samples_in_file(f) for f in self._used_files())
        return min(self._count, self.limit) if self.limit else self._count

    def fingerprint(self) -> str:
        # only the files the limit reaches: a 64-sample run over a folder of 1024 reads 64
        return hash_files(self._used_files(), {"kind": self.kind, "limit": self.limit})

    def describe(self) -> str:
        return f"{len(self.files)} array files from '{self.folder}'"
