"""Image preprocessing presets and the legacy :class:`ImagePreprocess` (one square crop).

The preparation of images is :mod:`workbench.data.prepare` (an ``InputPreparation`` per model);
an ``ImagePreprocess`` is read as a request of its fields, with the same pixels as before. The
folder source itself is :class:`workbench.data.folder.ImageFolderData`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import WorkbenchError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


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

