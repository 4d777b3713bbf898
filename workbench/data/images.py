"""Image folders: decoding, preprocessing presets, and the checks that keep photos honest.

* 8-bit images go through Pillow as before (bit-identical results).
* 16-bit images (PNG ``I;16``, or 32-bit integer images holding 0..65535) are resized in float
  and scaled by 255/65535, so the presets' 0..255 assumptions hold; other high-range images
  are refused naming the file.
* Preprocessing settings are checked before anything runs: std must be non-zero and finite,
  mean/std must have one value or one per channel.
* An image whose resized size would need too much memory (e.g. 1x6000 pixels resized to a short
  side of 256) is refused with the size it would have and a hint.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import WorkbenchError
from ..graph.model import ModelInfo, TensorSpec
from .base import CalibrationData, format_bytes, hash_files, list_files

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: The most pixels an image may have after resizing (before the crop): 64 Mpx is ~190 MB in RGB.
MAX_RESIZED_PIXELS = 64_000_000
_HIGH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


@dataclass(frozen=True)
class ImagePreprocess:
    """How a photo becomes a model input: ``x = (pixel * scale - mean) / std`` per channel.

    Args:
        resize: resize so the short side has this many pixels (bilinear); None keeps the size,
            unless ``crop`` is None, then images are resized straight to the model's input size.
        crop: centre crop to this size (an int for square, or (height, width)); None takes the
            model's static input size when it has one.
        color: "RGB" or "BGR" channel order.
        scale: multiplier applied to 0..255 pixels first (1/255 for 0..1 inputs); 16-bit images
            are brought to 0..255 first.
        mean, std: per-channel (one value per channel) or single values, in the scaled units;
            std must not be 0.
        layout: "NCHW" or "NHWC"; None infers it from the model input (channels of size 3 or 1).
    """

    resize: int | None = 256
    crop: int | tuple | None = 224
    color: str = "RGB"
    scale: float = 1.0 / 255.0
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)
    layout: str | None = None

    def __post_init__(self):
        def positive(v, what):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0):
                raise WorkbenchError(f"Preprocessing {what} must be a positive whole number of pixels, got {v!r}.")

        positive(self.resize, "resize (--resize)")
        crop = self.crop
        for c in ((crop,) if not isinstance(crop, (tuple, list)) else crop):
            positive(c, "crop (--crop)")
        if isinstance(crop, (tuple, list)) and len(crop) != 2:
            raise WorkbenchError(f"Preprocessing crop must be one size or (height, width), got {crop!r}.")
        if str(self.color).upper() not in ("RGB", "BGR"):
            raise WorkbenchError(f"Preprocessing color must be RGB or BGR, got {self.color!r}.")
        if self.layout is not None and self.layout not in ("NCHW", "NHWC"):
            raise WorkbenchError(f"Preprocessing layout must be NCHW or NHWC, got {self.layout!r}.")
        if not _finite(self.scale) or float(self.scale) == 0:
            raise WorkbenchError(f"Preprocessing scale (--scale) must be a finite non-zero number, got {self.scale!r}.")
        for key in ("mean", "std"):
            values = self._values(key)
            if not values or not all(_finite(v) for v in values):
                raise WorkbenchError(f"Preprocessing {key} (--{key}) must be finite numbers, got {getattr(self, key)!r}.")
        if any(float(v) == 0 for v in self._values("std")):
            raise WorkbenchError(f"Preprocessing std (--std) must not be 0 (every pixel would become "
                                 f"NaN or Inf), got {self.std!r}.")

    def _values(self, key: str) -> tuple:
        v = getattr(self, key)
        return tuple(v) if isinstance(v, (tuple, list, np.ndarray)) else (v,)

    def channel_values(self, key: str, channels: int) -> np.ndarray:
        """``mean`` or ``std`` for ``channels`` channels (one value is repeated; else one per channel)."""
        values = self._values(key)
        if len(values) == 1 or (channels == 1 and len(set(values)) == 1):
            values = values[:1] * channels  # one value, or a preset's equal values for a grey model
        if len(values) != channels:
            raise WorkbenchError(
                f"Preprocessing {key} (--{key}) has {len(values)} values {list(values)}, but the model "
                f"input has {channels} channel(s): give one value or {channels}.")
        return np.asarray(values, np.float32)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ImagePreprocess":
        if not isinstance(d, dict):
            raise WorkbenchError(f"Preprocessing settings must be a dict, got {type(d).__name__}.")
        d = dict(d)
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise WorkbenchError(f"Unknown preprocessing setting(s) {unknown}; known: "
                                 f"{', '.join(cls.__dataclass_fields__)}.")
        for key in ("mean", "std", "crop"):
            if isinstance(d.get(key), list):
                d[key] = tuple(d[key])
        return cls(**d)


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


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
                 limit: int | None = None, allow_nonfinite: bool = False):
        super().__init__(model, limit, allow_nonfinite)
        self.folder = Path(folder)
        self.spec = _image_input(model)
        self.preprocess = preprocess or PRESETS["imagenet"]
        self.layout = self.preprocess.layout or self._infer_layout()
        self.mean = self.preprocess.channel_values("mean", self.channels)
        self.std = self.preprocess.channel_values("std", self.channels)
        self.files = list_files(self.folder, IMAGE_EXTENSIONS, "image")[: limit or None]
        self.size = self._target_size()

    def input_paths(self) -> list:
        return [("the data folder", self.folder)]

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

    def _resized_size(self, path: Path, w: int, h: int) -> tuple | None:
        """The size before the crop, or None to resize straight to the model size; refuses sizes
        that would need too much memory (naming the file)."""
        p = self.preprocess
        if not p.resize:
            return None if p.crop is None else (w, h)
        s = p.resize / min(w, h)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        if size[0] * size[1] > MAX_RESIZED_PIXELS:
            raise WorkbenchError(
                f"Image '{path}' is {w}x{h} pixels: resizing its short side to {p.resize} makes it "
                f"{size[0]}x{size[1]} ({format_bytes(size[0] * size[1] * 3)}) before the "
                f"{self.size[1]}x{self.size[0]} crop. Is it really a photo? Remove it, crop it first, "
                "or use --resize 0 to resize straight to the model's input size.")
        return size

    def load_image(self, path: Path) -> np.ndarray:
        """Decode and preprocess one image into a [C,H,W] or [H,W,C] float32 array."""
        from PIL import Image, UnidentifiedImageError

        p = self.preprocess
        try:
            with Image.open(path) as img:
                high = img.mode in _HIGH_MODES
                if high:
                    img = self._high_to_float(img, path)
                else:
                    img = img.convert("L" if self.channels == 1 else "RGB")
                w, h = img.size
                size = self._resized_size(path, w, h)
                if size is None:
                    img = img.resize((self.size[1], self.size[0]), Image.BILINEAR)
                elif size != (w, h):
                    img = img.resize(size, Image.BILINEAR)
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
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise WorkbenchError(f"Cannot read image '{path}': {exc}.") from None
        if high:
            arr = arr * np.float32(255.0 / 65535.0)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.shape[2] != self.channels:  # a 16-bit grey image for an RGB model
            arr = np.repeat(arr, self.channels, axis=2)
        if p.color.upper() == "BGR":
            arr = arr[:, :, ::-1]
        arr = (arr * np.float32(p.scale) - self.mean) / self.std
        if self.layout == "NCHW":
            arr = arr.transpose(2, 0, 1)
        return np.ascontiguousarray(arr, dtype=self.spec.dtype)

    @staticmethod
    def _high_to_float(img, path: Path):
        """A 16-bit (or 32-bit integer) grey image as a float image of its raw 0..65535 values."""
        if img.mode == "I":
            lo, hi = img.getextrema()
            if lo < 0 or hi > 65535:
                raise WorkbenchError(
                    f"Image '{path}' is a 32-bit integer image with values {lo}..{hi}; only 8-bit and "
                    "16-bit images are supported: convert it, or use a .npy folder with the exact inputs.")
        return img.convert("F") if img.mode == "I" else img.convert("I").convert("F")

    def _iter_samples(self):
        for f in self.files:
            yield str(f), {self.spec.name: self.load_image(f)}

    def fingerprint(self) -> str:
        return hash_files(self.files, {"kind": self.kind, "pre": self.preprocess.to_dict(),
                                       "layout": self.layout, "size": self.size})

    def describe(self) -> str:
        return f"{len(self.files)} images from '{self.folder}' ({self.layout}, {self.size[0]}x{self.size[1]})"
