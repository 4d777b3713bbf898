"""Pixels: one decoded image through an input's preparation (size, resize policy, normalisation,
layout, dtype), and back to a viewable picture for previews. See :mod:`workbench.data.prepare`."""
from __future__ import annotations

import math

import numpy as np

from ..errors import WorkbenchError
from .base import format_bytes
from .fields import CROP_FRACTION, InputFields

#: The most pixels an image may have after resizing (before the crop): 64 Mpx is ~190 MB in RGB.
MAX_RESIZED_PIXELS = 64_000_000


def _to_stride(n: float, stride: int, how: str) -> int:
    q = n / stride
    k = math.floor(q) if how == "down" else math.ceil(q) if how == "up" else math.floor(q + 0.5)
    return max(1, k) * stride


def target_hw(f: InputFields, w: int, h: int) -> tuple:
    """The prepared (H, W) of an image of ``w x h`` pixels: the fixed size, or for a dynamic axis
    the image's own (scaled to the fixed other axis) rounded to the stride for the policy."""
    th, tw = f.size
    if th and tw:
        return th, tw
    s = th / h if th else tw / w if tw else 1.0
    how = {"crop": "down", "letterbox": "up", "none": "exact"}.get(f.resize, "nearest")
    own_h, own_w = h * s, w * s
    return (th or _to_stride(own_h, f.stride, how), tw or _to_stride(own_w, f.stride, how))


def _guard(path, w, h, size, what):
    if size[0] * size[1] > MAX_RESIZED_PIXELS:
        raise WorkbenchError(
            f"Image '{path}' is {w}x{h} pixels: {what} makes it {size[0]}x{size[1]} "
            f"({format_bytes(size[0] * size[1] * 3)}). Is it really a photo? Remove it, crop it first, "
            "give a smaller --short-side, or use --resize stretch to resize straight to the input size.")


def resize_image(f: InputFields, img, path, pad_scale: float = 1.0):
    """``img`` (PIL) resized to the prepared size by ``f.resize`` (see the module docstring of
    :mod:`workbench.data.prepare`); ``pad_scale`` converts the 0..255 pad value to the image's range."""
    from PIL import Image

    w, h = img.size
    th, tw = target_hw(f, w, h)
    fixed = all(f.size)
    if f.resize == "stretch":
        _guard(path, w, h, (tw, th), "stretching it")
        return img.resize((tw, th), Image.BILINEAR) if (tw, th) != (w, h) else img
    if f.resize == "none":
        if (w, h) != (tw, th):
            raise WorkbenchError(f"Image '{path}' is {w}x{h} (W x H) but input '{f.name}' needs {tw}x{th} "
                                 "and the resize policy is 'none'; choose stretch, crop or letterbox (--resize).")
        return img
    if f.resize == "letterbox":
        s = min(th / h, tw / w) if fixed else (th / h if f.size[0] else tw / w if f.size[1] else 1.0)
        nw, nh = min(tw, max(1, round(w * s))), min(th, max(1, round(h * s)))
        _guard(path, w, h, (nw, nh), "letterboxing it")
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), Image.BILINEAR)
        fill = f.pad_value * pad_scale
        fill = fill if img.mode == "F" else int(round(min(255.0, max(0.0, fill))))
        canvas = Image.new(img.mode, (tw, th), fill if img.mode in ("F", "L", "I") else (fill,) * len(img.mode))
        canvas.paste(img, ((tw - nw) // 2, (th - nh) // 2))
        return canvas
    # crop: shorter side to short_side (fixed size only), then the centre
    short = f.short_side if f.short_side is not None else round(max(th, tw) / CROP_FRACTION)
    if fixed and short:
        s = short / min(w, h)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        _guard(path, w, h, size, f"resizing its short side to {short}")
        if size != (w, h):
            img = img.resize(size, Image.BILINEAR)
    elif not fixed and (f.size[0] or f.size[1]):
        s = (f.size[0] / h) if f.size[0] else f.size[1] / w
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
    w, h = img.size
    if h < th or w < tw:
        raise WorkbenchError(f"Image '{path}' is {w}x{h} after resizing, smaller than the {tw}x{th} crop; "
                             "increase --short-side or use --resize letterbox.")
    left, top = (w - tw) // 2, (h - th) // 2
    return img.crop((left, top, left + tw, top + th))


def normalise(f: InputFields, arr: np.ndarray, dtype) -> np.ndarray:
    """HWC pixels (0..255, RGB or grey) -> the model's input layout, order, normalisation, dtype."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] != f.channels:  # a grey image for an RGB model
        arr = np.repeat(arr[:, :, :1], f.channels, axis=2)
    if f.channel_order == "BGR" and f.channels > 1:
        arr = arr[:, :, ::-1]
    arr = (arr * np.float32(f.scale) - f.channel_values("mean")) / f.channel_values("std")
    if f.layout == "NCHW":
        arr = arr.transpose(2, 0, 1)
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        arr = np.clip(np.rint(arr), info.min, info.max)
    return np.ascontiguousarray(arr, dtype=dtype)


def to_display(f: InputFields, sample: np.ndarray) -> np.ndarray:
    """A prepared sample (no batch axis) back to viewable uint8 pixels [H, W, 3] (RGB order)."""
    arr = np.asarray(sample, np.float32)
    if f.layout == "NCHW":
        arr = arr.transpose(1, 2, 0)
    arr = (arr * f.channel_values("std") + f.channel_values("mean")) / np.float32(f.scale)
    if f.channel_order == "BGR" and f.channels > 1:
        arr = arr[:, :, ::-1]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.clip(np.rint(arr[:, :, :3]), 0, 255).astype(np.uint8)


__all__ = ["MAX_RESIZED_PIXELS", "normalise", "resize_image", "target_hw", "to_display"]
