"""Input preparation as one object: how an image becomes each model input, and why.

An :class:`InputPreparation` holds, per image input of the model, an :class:`InputFields`:
layout (NCHW/NHWC), channel order (RGB/BGR), target size (H, W; ``None`` on an axis keeps each
image's own size rounded to the model's stride), resize policy, scale, mean/std and dtype, each
with where it came from (``sources``): the user (a flag or setting), a preset, the model's
metadata or recipe file (:mod:`workbench.data.hints`), the model's graph, a documented default,
or a guess. :meth:`InputPreparation.describe` says all of it and warns when something was
guessed; the CLI prints it, the app shows it, the saved project stores the request it came from.

Resize policies (pixels of the target size ``H x W``):

* ``stretch``: resize to H x W (the aspect ratio may change);
* ``crop``: resize the shorter side to ``short_side`` (default ``max(H, W) / 0.875``, 256 for
  224; 0: no resize), then take the centre H x W;
* ``letterbox``: resize keeping the aspect ratio to fit in H x W, centred on a ``pad_value``
  canvas (pixel units 0..255, before normalisation);
* ``none``: the image must already have the size.

For a dynamic axis the size is the image's own (scaled to a fixed other axis, if any), rounded to
a multiple of the stride: to the nearest for stretch, down for crop, up (padding) for letterbox.

``x = (pixel * scale - mean) / std`` per channel, then the layout and the model's dtype. A size,
layout or channel count the model cannot take is refused by :meth:`InputPreparation.resolve`,
before any image is read, with the model's shape and the prepared shape side by side.
"""
from __future__ import annotations

from dataclasses import fields as dc_fields

from ..errors import WorkbenchError
from ..graph.model import ModelInfo
from . import hints
from .fields import (CROP_FRACTION, FLAGS, GUESS, RESIZE_POLICIES, InputFields, check_request as check_fields,
                     preset_fields, request_from_preprocess)
from .images import ImagePreprocess
from .resolve import resolve_input

class InputPreparation:
    """How images become the model's inputs (see the module docstring).

    Build it with :meth:`resolve` (from the model plus a request of fields given by the user),
    or :meth:`from_dict` (a saved one). ``inputs`` maps input name -> :class:`InputFields`.
    """

    def __init__(self, inputs: dict, request: dict | None = None):
        self.inputs = dict(inputs)
        self._request = dict(request or {})
        self.model_shapes: dict = {}  # input name -> the model's shape, when resolved against a model

    # ------------------------------------------------------------------ building
    @classmethod
    def resolve(cls, model: ModelInfo, request=None, *, origin: str = "flag") -> "InputPreparation":
        """The preparation of ``model``'s image inputs: ``request`` (a dict of :data:`FLAGS`
        fields, an InputPreparation or a legacy ImagePreprocess; None: all from the model) wins,
        then its preset, the model's metadata and recipe, its graph, defaults, and guesses.
        ``origin`` names the user's fields in :meth:`describe` ("flag", "setting", ...)."""
        if isinstance(request, InputPreparation):
            return request.checked(model)
        req = check_request(request)
        specs = hints.image_inputs(model)
        if not specs:
            have = ", ".join(s.describe() for s in model.inputs)
            raise WorkbenchError("An image folder can only feed a model with one float image input [N,C,H,W] or "
                                 f"[N,H,W,C] (or a uint8 one); this model has: {have}. Use a folder of .npz files or "
                                 "--data-loader-script instead.")
        out = cls({s.name: resolve_input(model, s, req, origin) for s in specs}, req)
        out.model_shapes = {s.name: s.shape for s in specs}
        return out

    def checked(self, model: ModelInfo) -> "InputPreparation":
        """This preparation checked against ``model`` (refused as :meth:`resolve` refuses), its
        fields and their sources kept."""
        specs = {s.name: s for s in hints.image_inputs(model)}
        missing = sorted(set(self.inputs) - set(specs))
        if missing:
            raise WorkbenchError(f"The input preparation is for input(s) {missing}; the model's image inputs are "
                                 f"{sorted(specs) or 'none'}.")
        for name, f in self.inputs.items():
            values = {k: v for k, v in f.values().items() if k in FLAGS and k != "preset" and v is not None}
            resolve_input(model, specs[name], check_fields(values), "saved")
        self.model_shapes = {n: specs[n].shape for n in self.inputs}
        return self

    def request(self) -> dict:
        """The fields the user asked for (what a saved project stores)."""
        return dict(self._request)

    def to_dict(self) -> dict:
        """Every field of every input with its source (a recipe; :meth:`from_dict` reads it)."""
        return {"inputs": {n: {"name": n, **f.values(), "sources": dict(f.sources)} for n, f in self.inputs.items()},
                "request": {k: list(v) if isinstance(v, tuple) else v for k, v in self._request.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "InputPreparation":
        """The preparation of :meth:`to_dict` (fields and sources as saved)."""
        if not isinstance(d, dict) or not isinstance(d.get("inputs"), dict):
            raise WorkbenchError("A saved input preparation must be a dict with 'inputs' "
                                 "(InputPreparation.to_dict()).")
        inputs = {}
        names = {f.name for f in dc_fields(InputFields)}
        for name, f in d["inputs"].items():
            unknown = sorted(set(f) - names)
            if unknown:
                raise WorkbenchError(f"Saved preparation of input '{name}' has unknown field(s) {unknown}.")
            f = dict(f, name=name)
            for key in ("mean", "std", "size"):
                if isinstance(f.get(key), list):
                    f[key] = tuple(f[key])
            check_fields({k: f[k] for k in FLAGS if k in f and k != "preset"})
            try:
                inputs[name] = InputFields(**f)
            except TypeError as exc:
                raise WorkbenchError(f"Saved preparation of input '{name}' is incomplete: {exc}.") from None
        return cls(inputs, d.get("request") or {})

    # ------------------------------------------------------------------ views
    @property
    def image_input(self) -> InputFields:
        """The one image input (image folders feed models with one input)."""
        if len(self.inputs) != 1:
            raise WorkbenchError(f"An image folder feeds one image input; this model has {len(self.inputs)} "
                                 f"({', '.join(self.inputs)}). Use .npz files or --data-loader-script.")
        return next(iter(self.inputs.values()))

    def guessed(self) -> list:
        """``(input, field)`` of every field that was guessed."""
        return [(n, k) for n, f in self.inputs.items() for k in f.guessed()]

    def warning(self) -> str | None:
        """One sentence naming what was guessed and how to say it, or None."""
        guessed = self.guessed()
        if not guessed:
            return None
        keys = list(dict.fromkeys(k for _, k in guessed))
        flags = ", ".join(dict.fromkeys(FLAGS[k] for k in keys))
        return (f"input preparation guessed {', '.join(keys)} (the model does not say); if the model was "
                f"trained otherwise its accuracy figures mean little. Give {flags} or --preset "
                "(Session: set_data(preparation={...})).")

    def describe(self, model: ModelInfo | None = None) -> str:
        """Lines saying each field, where it came from, and a warning when something was guessed."""
        shapes = {s.name: s.shape for s in model.inputs} if model is not None else self.model_shapes
        lines = []
        for name, f in self.inputs.items():
            lines += f.describe_lines(shapes.get(name))
        note = self.warning()
        if note:
            lines.append("WARNING: " + note)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"InputPreparation({', '.join(self.inputs)})"


def check_request(request) -> dict:
    """A request checked and normalised (see :func:`workbench.data.fields.check_request`); an
    :class:`InputPreparation` or its saved ``to_dict()`` gives the request it was made from."""
    if isinstance(request, InputPreparation):
        return request.request()
    if isinstance(request, dict) and isinstance(request.get("inputs"), dict):
        return InputPreparation.from_dict(request).request()
    return check_fields(request)


def combine_request(preset: str | None = None, preprocess: dict | None = None, preparation=None):
    """One request from a session's settings: ``preparation`` (fields, or a saved
    ``to_dict()``) over ``preset`` over a legacy ``preprocess`` dict."""
    if isinstance(preparation, InputPreparation) or (isinstance(preparation, dict)
                                                      and isinstance(preparation.get("inputs"), dict)):
        return preparation if isinstance(preparation, InputPreparation) else InputPreparation.from_dict(preparation)
    request = request_from_preprocess(ImagePreprocess.from_dict(preprocess)) if preprocess else {}
    if preset:
        request["preset"] = preset
    return {**request, **check_request(preparation)}



__all__ = ["CROP_FRACTION", "FLAGS", "GUESS", "RESIZE_POLICIES", "InputFields", "InputPreparation", "check_request",
           "combine_request",
           "preset_fields", "request_from_preprocess"]
