"""The fields of one input's preparation (:class:`InputFields`), the request a user gives
(checked by :func:`check_request`), and what presets set. See :mod:`workbench.data.prepare`."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields as dc_fields

import numpy as np

from ..errors import WorkbenchError
from ..graph.feeds import format_shape
from .images import PRESETS, ImagePreprocess

RESIZE_POLICIES = ("stretch", "crop", "letterbox", "none")
#: Share of the short side kept by the ``crop`` policy when no short side is given (224 / 256).
CROP_FRACTION = 0.875
#: Fields a request may set (plus ``preset``), with the CLI flag named in messages.
FLAGS = {"layout": "--layout", "channel_order": "--channel-order", "size": "--size", "resize": "--resize",
         "short_side": "--short-side", "pad_value": "--pad-value", "stride": "--stride", "scale": "--scale",
         "mean": "--mean", "std": "--std", "dtype": "dtype", "preset": "--preset"}
GUESS = "guess"
_IMAGENET = PRESETS["imagenet"]


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _values(v) -> tuple:
    return tuple(float(x) for x in v) if isinstance(v, (tuple, list, np.ndarray)) else (float(v),)


def check_request(request) -> dict:
    """A request (dict of :data:`FLAGS` keys) checked and normalised; refuses unknown keys and
    values that cannot work (std 0, size 0, an unknown policy or preset) naming the flag."""
    if request is None:
        return {}
    if isinstance(request, ImagePreprocess):
        return request_from_preprocess(request)
    if not isinstance(request, dict):
        raise WorkbenchError(f"The input preparation must be a dict or an InputPreparation, got "
                             f"{type(request).__name__}.")
    if isinstance(request.get("inputs"), dict):
        raise WorkbenchError("A saved InputPreparation.to_dict() is read with InputPreparation.from_dict, "
                             "not as a request of fields.")
    unknown = sorted(set(request) - set(FLAGS))
    if unknown:
        raise WorkbenchError(f"Unknown input preparation setting(s) {unknown}; known: {', '.join(FLAGS)}.")
    out = {k: v for k, v in request.items() if v is not None}

    def bad(key, want):
        raise WorkbenchError(f"Preparation {key} ({FLAGS[key]}) must be {want}, got {request[key]!r}.")

    for key, choices in (("layout", ("NCHW", "NHWC")), ("channel_order", ("RGB", "BGR")),
                         ("resize", RESIZE_POLICIES)):
        if key in out:
            out[key] = str(out[key]).upper() if key != "resize" else str(out[key]).lower()
            if out[key] not in choices:
                bad(key, " or ".join(choices))
    if "preset" in out and out["preset"] not in PRESETS:
        raise WorkbenchError(f"Unknown preprocessing preset '{out['preset']}'; known presets: {', '.join(PRESETS)}.")
    if "size" in out:
        size = out["size"]
        size = (size, size) if not isinstance(size, (tuple, list)) else tuple(size)
        if len(size) != 2 or not all(s is None or (isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                                                    and s >= 0) for s in size):
            bad("size", "one size or (height, width) in whole pixels (0 or None: each image's own)")
        out["size"] = tuple(int(s) if s else None for s in size)
    for key, low in (("short_side", 0), ("stride", 1)):
        if key in out and (isinstance(out[key], bool) or not isinstance(out[key], (int, np.integer))
                           or out[key] < low):
            bad(key, f"a whole number >= {low}")
    for key in ("pad_value", "scale"):
        if key in out and not _finite(out[key]):
            bad(key, "a finite number")
    if "scale" in out and float(out["scale"]) == 0:
        bad("scale", "non-zero")
    for key in ("mean", "std"):
        if key in out:
            try:
                out[key] = _values(out[key])
            except (TypeError, ValueError):
                bad(key, "numbers")
            if not out[key] or not all(_finite(v) for v in out[key]):
                bad(key, "finite numbers")
    if "std" in out and any(v == 0 for v in out["std"]):
        raise WorkbenchError(f"Preparation std (--std) must not be 0 (every pixel would become NaN or Inf), "
                             f"got {request['std']!r}.")
    return out


def request_from_preprocess(pre: ImagePreprocess) -> dict:
    """The request of a (legacy) :class:`ImagePreprocess`: same pixels as before."""
    out = {"channel_order": pre.color.upper(), "scale": float(pre.scale), "mean": _values(pre.mean),
           "std": _values(pre.std)}
    if pre.layout:
        out["layout"] = pre.layout
    if pre.crop is not None:
        out["size"] = (pre.crop, pre.crop) if not isinstance(pre.crop, (tuple, list)) else tuple(pre.crop)
        out["resize"], out["short_side"] = "crop", int(pre.resize or 0)
    else:
        out["resize"] = "crop" if pre.resize else "stretch"
        if pre.resize:
            out["short_side"] = int(pre.resize)
    return out


def preset_fields(name: str) -> dict:
    """The fields a preset sets: channel order, normalisation and resize policy (not the size,
    which is the model's)."""
    p = PRESETS[name]
    out = {"channel_order": p.color.upper(), "scale": float(p.scale), "mean": _values(p.mean),
           "std": _values(p.std), "resize": "crop" if p.resize else "stretch"}
    if p.resize and p.crop and abs(p.crop / p.resize - CROP_FRACTION) > 1e-6:
        out["short_side"] = int(p.resize)
    return out


@dataclass
class InputFields:
    """The preparation of one model input (see the module docstring); ``sources`` says where
    each field came from."""

    name: str
    layout: str
    channels: int
    channel_order: str
    size: tuple
    resize: str
    short_side: int | None
    pad_value: float
    stride: int
    scale: float
    mean: tuple
    std: tuple
    dtype: str
    preset: str | None = None
    sources: dict = field(default_factory=dict)

    def values(self) -> dict:
        """The fields without ``name`` and ``sources`` (JSON-friendly)."""
        return {f.name: (list(getattr(self, f.name)) if isinstance(getattr(self, f.name), tuple)
                         else getattr(self, f.name))
                for f in dc_fields(self) if f.name not in ("name", "sources")}

    def channel_values(self, key: str) -> np.ndarray:
        """``mean`` or ``std`` for the input's channels (one value repeats)."""
        values = tuple(getattr(self, key))
        if len(values) == 1 or (self.channels == 1 and len(set(values)) == 1):
            values = values[:1] * self.channels
        if len(values) != self.channels:
            raise WorkbenchError(
                f"Preprocessing {key} (--{key}) has {len(values)} values {list(values)}, but the model "
                f"input has {self.channels} channel(s): give one value or {self.channels}.")
        return np.asarray(values, np.float32)

    def shape(self, h="H", w="W") -> tuple:
        """The prepared batch shape ``[N, ...]`` for an image of ``h x w``."""
        return ("N", self.channels, h, w) if self.layout == "NCHW" else ("N", h, w, self.channels)

    def guessed(self) -> list:
        return [k for k, v in self.sources.items() if v == GUESS]

    def describe_lines(self, model_shape=None) -> list:
        h, w = (s if s else f"own/{self.stride}" for s in self.size)
        norm = (f"x = (pixel * {self.scale:.6g} - {_fmt(self.mean)}) / {_fmt(self.std)}")
        resize = self.resize
        if resize == "crop":
            resize += (f" (short side {self.short_side}, centre crop)" if self.short_side
                       else " (centre crop, no resize)" if self.short_side == 0 else
                       f" (short side {round(max(s or 0 for s in self.size) / CROP_FRACTION) or 'own'}, centre crop)")
        elif resize == "letterbox":
            resize += f" (pad value {self.pad_value:g})"
        src = self.sources
        rows = [("layout", self.layout, src.get("layout")), ("channel order", self.channel_order,
                                                              src.get("channel_order")),
                ("size (H x W)", f"{h} x {w}", src.get("size")), ("resize", resize, src.get("resize")),
                ("normalisation", norm, _joined(src, ("scale", "mean", "std"))),
                ("dtype", self.dtype, src.get("dtype"))]
        if None in self.size:
            rows.insert(3, ("stride", str(self.stride), src.get("stride")))
        head = f"input '{self.name}'"
        if model_shape is not None:
            head += (f": model takes {format_shape(model_shape)}, images become "
                     f"{format_shape(self.shape(*self.size_or_hw()))}")
        return [head] + [f"  {k:<14} {v:<34} from {s}" for k, v, s in rows]

    def size_or_hw(self) -> tuple:
        return tuple(s if s else n for s, n in zip(self.size, ("H", "W")))


def _fmt(values: tuple) -> str:
    v = tuple(values)
    return f"{v[0]:g}" if len(set(v)) == 1 else "(" + ", ".join(f"{x:g}" for x in v) + ")"


def _joined(src: dict, keys: tuple) -> str:
    got = list(dict.fromkeys(src.get(k) for k in keys))
    return got[0] if len(got) == 1 else ", ".join(f"{k}: {src.get(k)}" for k in keys)


__all__ = ["CROP_FRACTION", "FLAGS", "GUESS", "RESIZE_POLICIES", "InputFields", "check_request", "preset_fields",
           "request_from_preprocess"]
