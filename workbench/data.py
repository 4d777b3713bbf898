"""Calibration and evaluation data: image folders, .npy/.npz folders, Polygraphy-style loader scripts.

Every source yields batches ``{input_name: ndarray}`` in a deterministic order, checked against the
model's inputs (names, dtypes, ranks, static dims) with errors that name the file and the tensor.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .backends.base import check_feed
from .errors import WorkbenchError
from .model import ModelInfo, TensorSpec

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
ARRAY_EXTENSIONS = (".npy", ".npz")


@dataclass(frozen=True)
class ImagePreprocess:
    """How a photo becomes a model input: ``x = (pixel * scale - mean) / std`` per channel.

    Args:
        resize: resize so the short side has this many pixels (bilinear); None keeps the size,
            unless ``crop`` is None, then images are resized straight to the model's input size.
        crop: centre crop to this size (an int for square, or (height, width)); None takes the
            model's static input size when it has one.
        color: "RGB" or "BGR" channel order.
        scale: multiplier applied to 0..255 pixels first (1/255 for 0..1 inputs).
        mean, std: per-channel (3 values) or single values, in the scaled units.
        layout: "NCHW" or "NHWC"; None infers it from the model input (channels of size 3 or 1).
    """

    resize: int | None = 256
    crop: int | tuple | None = 224
    color: str = "RGB"
    scale: float = 1.0 / 255.0
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)
    layout: str | None = None

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ImagePreprocess":
        d = dict(d)
        for key in ("mean", "std", "crop"):
            if isinstance(d.get(key), list):
                d[key] = tuple(d[key])
        return cls(**d)


#: Named preprocessing recipes (``--preset``). "efficientnet-lite" is the sample model's.
PRESETS = {
    "efficientnet-lite": ImagePreprocess(256, 224, "RGB", 1.0, (127.0,) * 3, (128.0,) * 3),
    "imagenet": ImagePreprocess(256, 224, "RGB", 1.0 / 255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "caffe": ImagePreprocess(256, 224, "BGR", 1.0, (103.939, 116.779, 123.68), (1.0,) * 3),
    "unit": ImagePreprocess(None, None, "RGB", 1.0 / 255.0, (0.0,) * 3, (1.0,) * 3),
    "symmetric": ImagePreprocess(None, None, "RGB", 1.0 / 127.5, (1.0,) * 3, (1.0,) * 3),
}


def preset(name: str) -> ImagePreprocess:
    """Look up a preprocessing preset by name (WorkbenchError listing the known ones)."""
    if name not in PRESETS:
        raise WorkbenchError(f"Unknown preprocessing preset '{name}'; known presets: {', '.join(PRESETS)}.")
    return PRESETS[name]


class CalibrationData:
    """Base of every data source. Subclasses implement ``_iter_samples`` or ``iter_batches``.

    Attributes:
        model: the ModelInfo whose inputs the batches feed.
        limit: the most samples to yield (None for all).
    """

    kind = "data"

    def __init__(self, model: ModelInfo, limit: int | None = None):
        if limit is not None and limit <= 0:
            raise WorkbenchError(f"The sample limit must be positive, got {limit}.")
        self.model = model
        self.limit = limit

    def __len__(self) -> int:
        raise TypeError("this data source does not know its length in advance")

    def num_samples(self) -> int | None:
        """The number of samples it will yield, or None if unknown before iterating."""
        try:
            return len(self)
        except TypeError:
            return None

    def batch_size_for(self, batch_size: int) -> int:
        """The batch size the model accepts: 1 when its batch dimension is static 1."""
        dims = [s.shape[0] for s in self.model.inputs if s.shape]
        if any(d == 1 for d in dims):
            return 1
        static = [d for d in dims if isinstance(d, int) and d > 0]
        return static[0] if static else max(1, int(batch_size))

    def iter_batches(self, batch_size: int = 8) -> Iterator[dict]:
        """Yield checked batches of up to ``batch_size`` samples stacked on axis 0."""
        bs = self.batch_size_for(batch_size)
        pending: list = []
        for where, sample in self._iter_samples():
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

    def _iter_samples(self) -> Iterator[tuple]:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A hash of the data and of every setting that changes the arrays fed to the model."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.kind


def _files(folder: Path, extensions: tuple, what: str) -> list:
    if not folder.exists():
        raise WorkbenchError(f"Data folder '{folder}' does not exist.")
    if not folder.is_dir():
        raise WorkbenchError(f"Data path '{folder}' is not a folder.")
    try:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
    except OSError as exc:
        raise WorkbenchError(f"Cannot read data folder '{folder}': {exc}.") from None
    if not files:
        raise WorkbenchError(
            f"Data folder '{folder}' has no {what} files (looked for {', '.join(extensions)})."
        )
    return files


def _hash_files(files: list, extra: dict) -> str:
    h = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode())
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _image_input(model: ModelInfo) -> TensorSpec:
    float_rank4 = [s for s in model.inputs if len(s.shape) == 4 and s.dtype.kind == "f"]
    if len(model.inputs) != 1 or not float_rank4:
        have = ", ".join(s.describe() for s in model.inputs)
        raise WorkbenchError(
            "An image folder can only feed a model with one float image input [N,C,H,W] or [N,H,W,C]; "
            f"this model has: {have}. Use a folder of .npz files or --data-loader-script instead."
        )
    return float_rank4[0]


class ImageFolderData(CalibrationData):
    """Photos in a folder (recursively, sorted by path), preprocessed by an ``ImagePreprocess``."""

    kind = "images"

    def __init__(self, folder, model: ModelInfo, preprocess: ImagePreprocess | None = None,
                 limit: int | None = None):
        super().__init__(model, limit)
        self.folder = Path(folder)
        self.spec = _image_input(model)
        self.preprocess = preprocess or PRESETS["imagenet"]
        self.layout = self.preprocess.layout or self._infer_layout()
        self.files = _files(self.folder, IMAGE_EXTENSIONS, "image")[: limit or None]
        self.size = self._target_size()

    def _infer_layout(self) -> str:
        _, a, _, c = self.spec.shape
        if a in (1, 3) and c not in (1, 3):
            return "NCHW"
        if c in (1, 3) and a not in (1, 3):
            return "NHWC"
        return "NCHW"

    def _target_size(self) -> tuple:
        dims = self.spec.shape[2:] if self.layout == "NCHW" else self.spec.shape[1:3]
        static = tuple(dims) if all(isinstance(d, int) and d > 0 for d in dims) else None
        crop = self.preprocess.crop
        if crop is not None:
            size = (crop, crop) if isinstance(crop, int) else tuple(crop)
            if static and size != static:
                raise WorkbenchError(
                    f"Preprocessing crops images to {size[0]}x{size[1]} but model input "
                    f"'{self.spec.name}' expects {static[0]}x{static[1]}; set the crop to match."
                )
            return size
        if static is None:
            raise WorkbenchError(
                f"Model input '{self.spec.name}' has no static height/width {list(self.spec.shape)}: "
                "give a crop size (e.g. --crop 224)."
            )
        return static

    @property
    def channels(self) -> int:
        c = self.spec.shape[1] if self.layout == "NCHW" else self.spec.shape[3]
        return c if isinstance(c, int) and c > 0 else 3

    def __len__(self) -> int:
        return len(self.files)

    def load_image(self, path: Path) -> np.ndarray:
        """Decode and preprocess one image into a [C,H,W] or [H,W,C] float32 array."""
        from PIL import Image, UnidentifiedImageError

        p = self.preprocess
        try:
            with Image.open(path) as img:
                img = img.convert("L" if self.channels == 1 else "RGB")
                if p.resize:
                    w, h = img.size
                    s = p.resize / min(w, h)
                    img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
                elif p.crop is None:
                    img = img.resize((self.size[1], self.size[0]), Image.BILINEAR)
                w, h = img.size
                th, tw = self.size
                if h < th or w < tw:
                    raise WorkbenchError(
                        f"Image '{path}' is {w}x{h} after resizing, smaller than the {tw}x{th} crop; "
                        "increase --resize."
                    )
                left, top = (w - tw) // 2, (h - th) // 2
                img = img.crop((left, top, left + tw, top + th))
                arr = np.asarray(img, dtype=np.float32)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise WorkbenchError(f"Cannot read image '{path}': {exc}.") from None
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if p.color.upper() == "BGR":
            arr = arr[:, :, ::-1]
        n = arr.shape[2]
        mean = np.broadcast_to(np.asarray(p.mean, np.float32), (3,))[:n]
        std = np.broadcast_to(np.asarray(p.std, np.float32), (3,))[:n]
        arr = (arr * np.float32(p.scale) - mean) / std
        if self.layout == "NCHW":
            arr = arr.transpose(2, 0, 1)
        return np.ascontiguousarray(arr, dtype=self.spec.dtype)

    def _iter_samples(self):
        for f in self.files:
            yield str(f), {self.spec.name: self.load_image(f)}

    def fingerprint(self) -> str:
        return _hash_files(self.files, {"kind": self.kind, "pre": self.preprocess.to_dict(),
                                        "layout": self.layout, "size": self.size})

    def describe(self) -> str:
        return f"{len(self.files)} images from '{self.folder}' ({self.layout}, {self.size[0]}x{self.size[1]})"


class ArrayFolderData(CalibrationData):
    """``.npy`` files (single-input models) and ``.npz`` files keyed by input name.

    An array whose rank equals the input's rank is a batch (its first axis is split into samples);
    one rank lower is a single sample.
    """

    kind = "arrays"

    def __init__(self, folder, model: ModelInfo, limit: int | None = None):
        super().__init__(model, limit)
        self.folder = Path(folder)
        self.files = _files(self.folder, ARRAY_EXTENSIONS, ".npy/.npz")
        self._count = None

    def _load(self, path: Path) -> dict:
        try:
            if path.suffix.lower() == ".npy":
                if len(self.model.inputs) != 1:
                    names = ", ".join(f"'{s.name}'" for s in self.model.inputs)
                    raise WorkbenchError(
                        f"'{path}' is a .npy file but the model has several inputs ({names}); "
                        "use .npz files keyed by input name."
                    )
                return {self.model.inputs[0].name: np.load(path, allow_pickle=False)}
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except WorkbenchError:
            raise
        except Exception as exc:
            raise WorkbenchError(f"Cannot read array file '{path}': {exc}.") from None

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
            arr = np.load(f, mmap_mode="r", allow_pickle=False)
            return arr.shape[0] if arr.ndim == len(self.model.inputs[0].shape) else 1
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
        return _hash_files(self._used_files(), {"kind": self.kind, "limit": self.limit})

    def describe(self) -> str:
        return f"{len(self.files)} array files from '{self.folder}'"


def parse_script_spec(spec: str, default: str = "load_data") -> tuple:
    """Split ``"file.py:func"`` into (Path, func); the function defaults to ``default``."""
    path, func = spec, default
    head, sep, tail = spec.rpartition(":")
    if sep and head and tail.isidentifier():
        path, func = head, tail
    return Path(path), func


def load_function(spec: str, *, default: str = "load_data", what: str = "script") -> Callable:
    """Import ``FILE.py[:FUNC]`` and return FUNC, with errors naming the file and the function."""
    path, name = parse_script_spec(spec, default)
    if not path.is_file():
        raise WorkbenchError(f"{what} '{path}' does not exist.")
    mod_name = f"_workbench_script_{abs(hash(str(path.resolve())))}"
    try:
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    except Exception as exc:
        raise WorkbenchError(f"{what} '{path}' raised while loading: {type(exc).__name__}: {exc}") from None
    func = getattr(module, name, None)
    if not callable(func):
        raise WorkbenchError(f"{what} '{path}' has no function '{name}' (use FILE.py:FUNC to name another).")
    return func


class ScriptData(CalibrationData):
    """A Polygraphy-style data loader script: ``FUNC()`` returns an iterable of feed dicts.

    Each yielded dict is one batch as the user made it (its first axis counts samples); batches
    are not re-batched, since sequence models often yield differently shaped batches.
    """

    kind = "script"

    def __init__(self, spec: str, model: ModelInfo, limit: int | None = None):
        super().__init__(model, limit)
        self.path, self.func_name = parse_script_spec(spec)
        if not self.path.is_file():
            raise WorkbenchError(f"Data loader script '{self.path}' does not exist.")
        self._func = None

    def _load_func(self) -> Callable:
        if self._func is None:
            self._func = load_function(f"{self.path}:{self.func_name}", what="Data loader script")
        return self._func

    def iter_batches(self, batch_size: int = 8) -> Iterator[dict]:
        where = f"data loader '{self.path}:{self.func_name}'"
        try:
            items: Iterable = self._load_func()()
            iterator = iter(items)
        except WorkbenchError:
            raise
        except Exception as exc:
            raise WorkbenchError(f"{where} raised: {type(exc).__name__}: {exc}") from None
        emitted, index = 0, 0
        while self.limit is None or emitted < self.limit:
            try:
                feed = next(iterator)
            except StopIteration:
                break
            except Exception as exc:
                raise WorkbenchError(f"{where} raised at item {index}: {type(exc).__name__}: {exc}") from None
            feed = check_feed(feed, self.model.inputs, where=f"{where}, item {index}", cast_same_kind=True)
            n = next(iter(feed.values())).shape[0] if feed and next(iter(feed.values())).ndim else 1
            if self.limit is not None and emitted + n > self.limit:
                keep = self.limit - emitted
                feed = {k: v[:keep] for k, v in feed.items()}
                n = keep
            emitted += n
            index += 1
            yield feed
        if index == 0:
            raise WorkbenchError(f"{where} yielded no data.")

    def fingerprint(self) -> str:
        # The script's output can depend on anything; its source and arguments are the best proxy.
        return _hash_files([self.path], {"kind": self.kind, "func": self.func_name, "limit": self.limit})

    def describe(self) -> str:
        return f"batches from {self.path}:{self.func_name}"


def open_data(source=None, model: ModelInfo | None = None, *, preprocess: ImagePreprocess | None = None,
              loader_script: str | None = None, limit: int | None = None) -> CalibrationData:
    """Open calibration/evaluation data for ``model``.

    Args:
        source: a folder of images or of .npy/.npz files (None when ``loader_script`` is given).
        model: the ModelInfo the data feeds.
        preprocess: image preprocessing (images only; default the "imagenet" preset).
        loader_script: ``"file.py[:func]"``, a Polygraphy-style data loader.
        limit: the most samples to use (None for all).
    """
    if model is None:
        raise WorkbenchError("open_data needs the model the data is for.")
    if (source is None) == (loader_script is None):
        raise WorkbenchError("Give exactly one data source: a folder (--data) or a loader script "
                             "(--data-loader-script).")
    if loader_script is not None:
        return ScriptData(loader_script, model, limit)
    folder = Path(source)
    files = _files(folder, IMAGE_EXTENSIONS + ARRAY_EXTENSIONS, "image or .npy/.npz")
    n_img = sum(f.suffix.lower() in IMAGE_EXTENSIONS for f in files)
    if n_img and n_img != len(files):
        raise WorkbenchError(
            f"Data folder '{folder}' mixes images and .npy/.npz files; keep one kind per folder."
        )
    if n_img:
        return ImageFolderData(folder, model, preprocess, limit)
    return ArrayFolderData(folder, model, limit)
