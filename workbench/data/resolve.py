"""Resolving one input's preparation from the user's request and what the model says.

Each field comes from the first source that has it: the user's request (``origin``), the
request's preset, the model's metadata, the recipe file beside the model, then the graph (static
dims, dtype, layout, stride), documented defaults, and last a guess (said so in ``sources``).
What the model cannot take is refused here, before any image is read.
"""
from __future__ import annotations

from ..errors import WorkbenchError
from ..graph.feeds import format_shape
from ..graph.model import ModelInfo, TensorSpec
from . import hints
from .fields import _IMAGENET, GUESS, InputFields, _values, check_request, preset_fields


def _layers(model: ModelInfo, req: dict, origin: str) -> list:
    """(label, fields) from the most to the least trusted."""
    layers = [(origin, {k: v for k, v in req.items() if k != "preset"})]
    if req.get("preset"):
        layers.append((f"preset '{req['preset']}'", preset_fields(req["preset"])))
    meta = check_request(hints.metadata_fields(model))
    recipe, path = hints.recipe_fields(model)
    recipe = check_request(recipe)
    for label, fields in (("model metadata", meta), (f"recipe '{path.name}'" if path else "", recipe)):
        if fields:
            layers.append((label, {k: v for k, v in fields.items() if k != "preset"}))
            if fields.get("preset"):
                layers.append((f"preset '{fields['preset']}' ({label})", preset_fields(fields["preset"])))
    return layers


def _refuse(spec: TensorSpec, f: InputFields, why: str, fix: str) -> WorkbenchError:
    return WorkbenchError(
        f"Input '{spec.name}': {why}. The model takes {format_shape(spec.shape)}; the preparation makes "
        f"{format_shape(f.shape(*f.size_or_hw()))} ({f.layout}, size from {f.sources.get('size')}, layout from "
        f"{f.sources.get('layout')}). {fix}")


def resolve_input(model: ModelInfo, spec: TensorSpec, req: dict, origin: str) -> InputFields:
    """The :class:`InputFields` of ``spec`` (see the module docstring)."""
    layers = _layers(model, req, origin)
    sources: dict = {}

    def pick(key, fallback=None, label=None):
        for name, fields in layers:
            if key in fields:
                sources[key] = name
                return fields[key]
        sources[key] = label
        return fallback

    preset = req.get("preset") or next((f.get("preset") for _, f in layers[1:] if f.get("preset")), None)
    dtype = str(spec.dtype)
    if "dtype" in req and str(req["dtype"]) != dtype:
        raise WorkbenchError(f"Input '{spec.name}' is {dtype} ({format_shape(spec.shape)}); the preparation asks "
                             f"for {req['dtype']}. Leave dtype to the model.")
    sources["dtype"] = "model"
    dims_layout = hints.layout_from_dims(spec)
    layout = pick("layout", dims_layout or "NCHW", "model (dims)" if dims_layout else GUESS)
    ci, hw = (1, (2, 3)) if layout == "NCHW" else (3, (1, 2))
    c = spec.shape[ci]
    channels = c if hints.static(c) else 3
    model_hw = tuple(spec.shape[i] if hints.static(spec.shape[i]) else None for i in hw)
    size = pick("size", model_hw, "model (static dims)" if all(model_hw) else
                "model (dynamic H/W: each image's own size, rounded to the stride)")
    size = tuple(s or m for s, m in zip(size, model_hw))
    stride, upsamples = hints.graph_stride(model, spec.name)
    stride = pick("stride", stride or hints.DEFAULT_STRIDE, "model graph" if stride else GUESS)
    classifier = len(model.outputs) == 1 and len(model.outputs[0].shape) == 2
    if all(size):
        resize = pick("resize", "crop" if classifier else "letterbox", GUESS)
    else:
        resize = pick("resize", "stretch", "default (dynamic H/W)")
    short_side = pick("short_side", None, "default")
    pad_value = float(pick("pad_value", 0.0, "default"))
    raw = spec.dtype.kind == "u"
    norm_default = "model (integer input takes raw pixels)" if raw else GUESS
    order = pick("channel_order", "RGB", "model (1 channel)" if channels == 1 else GUESS)
    scale = float(pick("scale", 1.0 if raw else float(_IMAGENET.scale), norm_default))
    mean = _values(pick("mean", (0.0,) if raw else _IMAGENET.mean, norm_default))
    std = _values(pick("std", (1.0,) if raw else _IMAGENET.std, norm_default))
    f = InputFields(spec.name, layout, channels, order, size, resize, short_side, pad_value, int(stride), scale,
                    mean, std, dtype, preset, sources)
    if hints.static(c) and c not in (1, 3, 4):
        other = (1, 2) if layout == "NCHW" else (2, 3)  # where H, W sit when the channels are elsewhere
        f.channels, f.size = 3, tuple(spec.shape[i] for i in other)
        raise _refuse(spec, f, f"its {layout} channel axis has {c} entries, not 1 or 3 (an image's channels)",
                      f"Set the layout to {'NHWC' if layout == 'NCHW' else 'NCHW'} (--layout).")
    for axis, (want, got) in enumerate(zip(model_hw, size)):
        if want is not None and got != want:
            raise _refuse(spec, f, f"the model expects {model_hw[0]}x{model_hw[1]} (H x W) but the preparation "
                          f"gives {size[0] or 'own'}x{size[1] or 'own'}",
                          f"Set the size to {model_hw[0]} {model_hw[1]} (--size), or leave it to the model.")
    if upsamples and stride > 1:
        off = [s for s, m in zip(size, model_hw) if s and m is None and s % stride]
        if off:
            raise _refuse(spec, f, f"a size of {off[0]} is not a multiple of the model's stride {stride} (its "
                          "feature maps are upsampled and joined, so the shapes would not meet)",
                          f"Use multiples of {stride}, or leave the size to each image (rounded to {stride}).")
    f.channel_values("mean")
    f.channel_values("std")
    return f


__all__ = ["resolve_input"]
