"""Input shapes and optimization profiles for TensorRT builds (pure Python, no TensorRT).

``parse_shapes`` reads trtexec (``input:1x3x224x224``) and Polygraphy (``input:[1,3,224,224]``)
styles; ``resolve_profile`` turns the model's input signature plus the user's shapes into a
checked (min, opt, max) per input.
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np

from ..errors import WorkbenchError
from ..graph.feeds import TensorSpec, format_shape, onnx_input_specs

Shape = tuple[int, ...]


def _split_items(text: str) -> list[str]:
    """Split on commas/spaces that are not inside brackets."""
    items, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if depth == 0 and (ch == "," or ch.isspace()):
            if cur:
                items.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        items.append(cur)
    return items


def parse_shapes(text: str | Sequence[str] | None) -> dict[str, Shape]:
    """Parse input shapes in trtexec or Polygraphy style.

    Accepts ``"input:1x3x224x224,mask:1x16"`` (trtexec), ``"input:[1,3,224,224]"``
    (Polygraphy) or a list of such items. Names may contain ':' (the last colon separates
    the shape). Returns ``{name: (1, 3, 224, 224)}``; ``None`` or ``""`` gives ``{}``.

    Raises:
        WorkbenchError: naming the item and the expected format.
    """
    if not text:
        return {}
    items = [i for t in ([text] if isinstance(text, str) else text) for i in _split_items(t)]
    shapes: dict[str, Shape] = {}
    for item in items:
        name, sep, dims = item.rpartition(":")
        dims = dims.strip()
        if dims.startswith("[") and dims.endswith("]"):
            parts = [p.strip() for p in dims[1:-1].split(",") if p.strip()]
        else:
            parts = dims.lower().split("x") if dims else []
        if not sep or not name or not parts or not all(re.fullmatch(r"[1-9]\d*", p) for p in parts):
            raise WorkbenchError(
                f"Cannot read the shape '{item}': expected NAME:DIMS like input:1x3x224x224 "
                f"(trtexec style) or input:[1,3,224,224] (Polygraphy style), dimensions as "
                f"positive integers, several inputs separated by commas")
        if name in shapes:
            raise WorkbenchError(f"Input '{name}' is given twice in '{text}'")
        shapes[name] = tuple(int(p) for p in parts)
    return shapes


def format_shapes(shapes: Mapping[str, Sequence[int]], style: str = "trtexec") -> str:
    """Inverse of :func:`parse_shapes`: ``"input:1x3x224x224"`` or ``"input:[1,3,224,224]"``."""
    if style == "trtexec":
        return ",".join(f"{n}:{'x'.join(str(d) for d in s)}" for n, s in shapes.items())
    return " ".join(f"{n}:[{','.join(str(d) for d in s)}]" for n, s in shapes.items())


def _specs(model_or_specs) -> list[TensorSpec]:
    if isinstance(model_or_specs, (list, tuple)) and all(hasattr(s, "shape") for s in model_or_specs):
        return list(model_or_specs)
    return onnx_input_specs(model_or_specs)


def profile_from_model(model_or_specs, batch: int = 1, *, max_batch: int | None = None
                       ) -> dict[str, tuple[Shape, Shape, Shape]]:
    """Optimization profile (min, opt, max) per input derived from the model's shapes.

    Static dimensions are used as they are. A dynamic first dimension is the batch:
    min 1, opt ``batch``, max ``max(batch, max_batch)``. Other dynamic dimensions cannot be
    guessed (an image size of 1 would build a useless engine), so they raise.

    Args:
        model_or_specs: ONNX path / ModelProto, or a list of TensorSpec.
        batch: batch size to optimise for (default 1).
        max_batch: largest batch the engine must accept (default ``batch``).
    """
    if batch < 1 or (max_batch is not None and max_batch < 1):
        raise WorkbenchError(f"batch sizes must be >= 1, got batch={batch}, max_batch={max_batch}")
    top = max(batch, max_batch or batch)
    profile = {}
    for spec in _specs(model_or_specs):
        dims = []  # (min, opt, max) per axis
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, (int, np.integer)) and dim >= 0:
                dims.append((int(dim), int(dim), int(dim)))
            elif axis == 0:
                dims.append((1, batch, top))
            else:
                example = format_shapes({spec.name: [
                    d if isinstance(d, int) and d >= 0 else (batch if i == 0 else 224)
                    for i, d in enumerate(spec.shape)]})
                raise WorkbenchError(
                    f"Input '{spec.name}' {format_shape(spec.shape)}: dimension {axis} ('{dim}') is "
                    f"dynamic and cannot be derived; give the shapes, e.g. --shapes {example}")
        profile[spec.name] = tuple(tuple(d[i] for d in dims) for i in range(3))
    return profile


def resolve_profile(model_or_specs, config) -> dict[str, tuple[Shape, Shape, Shape]]:
    """Min/opt/max per input: the model-derived profile overridden by the user's shapes.

    Args:
        model_or_specs: ONNX path / ModelProto, or a list of TensorSpec.
        config: a :class:`~workbench.backends.trt_config.BuildConfig` (its ``shapes``,
            ``min_shapes``, ``opt_shapes``, ``max_shapes``, ``batch`` and ``max_batch``).

    Checks that every named input exists, ranks and static dimensions agree, and
    min <= opt <= max per dimension."""
    specs = _specs(model_or_specs)
    names = [s.name for s in specs]
    by_name = {s.name: s for s in specs}
    user = {"shapes": config.shapes, "min": config.min_shapes, "opt": config.opt_shapes,
            "max": config.max_shapes}
    for kind, shapes in user.items():
        for name, shape in shapes.items():
            if name not in by_name:
                raise WorkbenchError(f"--{kind}-shapes: requested input '{name}', the model has: "
                                     + ", ".join(f"'{n}'" for n in names))
            spec = by_name[name]
            if len(shape) != len(spec.shape):
                raise WorkbenchError(f"input '{name}': expected rank {len(spec.shape)} "
                                     f"{format_shape(spec.shape)}, got {format_shape(shape)}")
            for axis, (want, got) in enumerate(zip(spec.shape, shape)):
                if isinstance(want, int) and want >= 0 and want != got:
                    raise WorkbenchError(f"input '{name}': dimension {axis} is fixed to {want} in the "
                                         f"model {format_shape(spec.shape)}, got {got}")
    given = set().union(*[set(s) for s in user.values()])
    derived = profile_from_model([s for s in specs if s.name not in given], config.batch,
                                 max_batch=config.max_batch)
    profile = {}
    for name in names:
        if name in derived:
            profile[name] = derived[name]
            continue
        opt = config.opt_shapes.get(name) or config.shapes.get(name) \
            or config.max_shapes.get(name) or config.min_shapes.get(name)
        lo = config.min_shapes.get(name, opt)
        hi = config.max_shapes.get(name, opt)
        if not (len(lo) == len(opt) == len(hi)) or any(
                not (a <= b <= c) for a, b, c in zip(lo, opt, hi)):
            raise WorkbenchError(f"input '{name}': need min <= opt <= max in every dimension, got "
                                 f"min {format_shape(lo)}, opt {format_shape(opt)}, max {format_shape(hi)}")
        profile[name] = (tuple(lo), tuple(opt), tuple(hi))
    return profile
