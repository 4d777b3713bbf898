"""What a model says about its image inputs: layout, size, stride, and its own preparation.

Read from, in this order of trust:

* the ONNX file's ``metadata_props``: ``workbench.preparation`` (a JSON dict of preparation
  fields, see :mod:`workbench.data.prepare`), the Windows ML image keys
  (``Image.BitmapPixelFormat`` Rgb8/Bgr8/Gray8, ``Image.NominalPixelRange``
  NominalRange_0_255/Normalized_0_1/Normalized_1_1) and ``stride`` (Ultralytics exports);
* a recipe file beside the model, ``<model stem>.preparation.json`` (the same dict, e.g.
  ``InputPreparation.to_dict()`` saved as JSON);
* the graph: the input's static dims and dtype, and the stride a dynamic H/W must be a multiple
  of (the largest product of downsampling strides on any path from the input, with upsampling
  by a constant factor dividing it back).
"""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import WorkbenchError
from ..graph.model import ModelInfo, TensorSpec

METADATA_KEY = "workbench.preparation"
RECIPE_SUFFIX = ".preparation.json"
#: Stride assumed when the graph cannot be read for one (the usual multiple of detectors).
DEFAULT_STRIDE = 32

_WINML_RANGE = {"NominalRange_0_255": (1.0, (0.0,), (1.0,)), "Normalized_0_1": (1 / 255, (0.0,), (1.0,)),
                "Normalized_1_1": (1 / 127.5, (1.0,), (1.0,))}
_WINML_ORDER = {"Rgb8": "RGB", "Bgr8": "BGR", "Rgba8": "RGB", "Bgra8": "BGR", "Gray8": "RGB"}


def image_inputs(model: ModelInfo) -> list:
    """The rank-4 inputs of ``model`` (float or uint8) that images can feed."""
    return [s for s in model.inputs if len(s.shape) == 4 and s.dtype.kind in "fu"]


def static(d) -> bool:
    return isinstance(d, int) and d > 0


def layout_from_dims(spec: TensorSpec) -> str | None:
    """"NCHW" or "NHWC" when the dims say it (a channel dim of 1, 3 or 4 on one side only)."""
    _, a, _, c = spec.shape
    chan = (1, 3, 4)
    if static(a) and a in chan and not (static(c) and c in chan):
        return "NCHW"
    if static(c) and c in chan and not (static(a) and a in chan):
        return "NHWC"
    return None


def metadata_fields(model: ModelInfo) -> dict:
    """Preparation fields the ONNX file's metadata_props give (see the module docstring)."""
    props = {p.key: p.value for p in model.model.metadata_props}
    out: dict = {}
    if "stride" in props:
        try:
            out["stride"] = int(json.loads(props["stride"]) if props["stride"].strip()[:1] != "[" else
                                max(json.loads(props["stride"])))
        except (ValueError, TypeError):
            pass
    pixel_range = _WINML_RANGE.get(props.get("Image.NominalPixelRange", ""))
    if pixel_range:
        out["scale"], out["mean"], out["std"] = pixel_range
    if props.get("Image.BitmapPixelFormat") in _WINML_ORDER:
        out["channel_order"] = _WINML_ORDER[props["Image.BitmapPixelFormat"]]
    if METADATA_KEY in props:
        out.update(_json_dict(props[METADATA_KEY], f"metadata '{METADATA_KEY}' of the model"))
    return out


def recipe_path(model: ModelInfo) -> Path | None:
    """``<model stem>.preparation.json`` beside the model file, or None."""
    if model.path is None:
        return None
    return model.path.with_name(model.path.stem + RECIPE_SUFFIX)


def recipe_fields(model: ModelInfo) -> tuple:
    """(fields, path) of the recipe file beside the model, or ({}, None) when there is none."""
    path = recipe_path(model)
    if path is None or not path.is_file():
        return {}, None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkbenchError(f"Cannot read the preparation recipe '{path}': {exc.strerror or exc}.") from None
    return _json_dict(text, f"preparation recipe '{path}'"), path


def _json_dict(text: str, where: str) -> dict:
    try:
        d = json.loads(text)
    except ValueError as exc:
        raise WorkbenchError(f"The {where} is not valid JSON: {exc}.") from None
    if not isinstance(d, dict):
        raise WorkbenchError(f"The {where} must be a JSON object of preparation fields, got {type(d).__name__}.")
    if isinstance(d.get("inputs"), dict):  # a full InputPreparation.to_dict(): the first input's fields
        first = next(iter(d["inputs"].values()), {})
        d = {k: v for k, v in first.items() if k not in ("name", "sources")}
    return d


def _ints(node, name: str) -> list:
    for a in node.attribute:
        if a.name == name:
            return list(a.ints) if a.ints else [a.i]
    return []


def graph_stride(model: ModelInfo, input_name: str) -> tuple:
    """The multiple a dynamic H/W of ``input_name`` should be: the largest cumulative
    downsampling stride on any path from the input (Conv/pool strides, SpaceToDepth), with
    upsampling by a constant factor (Resize/Upsample scales, ConvTranspose strides, DepthToSpace)
    dividing it back; an upsampling whose factor is not constant keeps the stride (a larger
    multiple is still a valid one). Returns ``(stride, upsamples)``: ``upsamples`` says whether the
    grid is upsampled again (then a size off the stride breaks the shapes where the paths meet);
    ``(None, False)`` when the graph cannot be read for it."""
    consts = model.constants
    stride = {input_name: Fraction(1)}
    best, upsamples = Fraction(1), False
    try:
        for node in model.graph.node:
            ins = [stride[i] for i in node.input if i in stride]
            if not ins:
                continue
            s = max(ins)
            op = node.op_type
            if op in ("Conv", "MaxPool", "AveragePool", "LpPool", "ConvInteger", "QLinearConv"):
                s *= max(_ints(node, "strides") or [1])
            elif op == "SpaceToDepth":
                s *= max(_ints(node, "blocksize") or [1])
            elif op == "ConvTranspose":
                s /= max(_ints(node, "strides") or [1])
                upsamples = True
            elif op == "DepthToSpace":
                s /= max(_ints(node, "blocksize") or [1])
                upsamples = True
            elif op in ("Resize", "Upsample"):
                upsamples = True
                scales = node.input[2] if op == "Resize" and len(node.input) > 2 else \
                    (node.input[1] if op == "Upsample" and len(node.input) > 1 else "")
                value = consts.get(scales) if scales else None
                if value is not None and np.size(value) >= 4:
                    factor = float(np.max(np.asarray(value, np.float64).ravel()[2:]))
                    if factor > 0:
                        s /= Fraction(factor).limit_denominator(64)
            elif op in ("GlobalAveragePool", "GlobalMaxPool", "Flatten", "Reshape", "Gemm", "MatMul"):
                continue  # the spatial grid ends here
            best = max(best, s)
            for out in node.output:
                stride[out] = s
    except (ValueError, ZeroDivisionError, KeyError, TypeError):
        return None, False
    return max(1, int(np.ceil(float(best)))), upsamples


__all__ = ["DEFAULT_STRIDE", "METADATA_KEY", "RECIPE_SUFFIX", "graph_stride", "image_inputs", "layout_from_dims",
           "metadata_fields", "recipe_fields", "recipe_path", "static"]
