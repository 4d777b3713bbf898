"""A folder of images, prepared for the model by an :class:`~workbench.data.prepare.InputPreparation`.

* 8-bit images go through Pillow (``L`` for one-channel inputs, else ``RGB``).
* 16-bit images (PNG ``I;16``, or 32-bit integer images holding 0..65535) are resized in float
  and scaled by 255/65535, so the 0..255 conventions hold; other high-range images are refused.
* Images of different prepared shapes (a dynamic-H/W model fed pages of several sizes) are
  ordered by shape (shapes in the order they first appear, files in path order within one), so
  every batch has one shape and the order does not depend on the batch size. ``files`` is that
  order (align labels with it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import WorkbenchError
from ..graph.model import ModelInfo
from .base import CalibrationData, hash_files, list_files
from .images import IMAGE_EXTENSIONS, ImagePreprocess
from .pixels import normalise, resize_image, target_hw, to_display
from .prepare import InputPreparation

_HIGH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageFolderData(CalibrationData):
    """Images in a folder (recursively), prepared by ``preparation``.

    Args:
        folder: the image folder.
        model: the ModelInfo the images feed (one image input).
        preprocess: a legacy :class:`ImagePreprocess` (used as the request when ``preparation``
            is None).
        limit: the most images to use; allow_nonfinite: see :class:`CalibrationData`.
        preparation: an InputPreparation, or a request dict of its fields (see
            :meth:`InputPreparation.resolve`); None: everything from the model (guesses said so).
        origin: how the user's fields are named in :meth:`describe` ("flag", "setting").
    """

    kind = "images"

    def __init__(self, folder, model: ModelInfo, preprocess: ImagePreprocess | None = None,
                 limit: int | None = None, allow_nonfinite: bool = False, *, preparation=None,
                 origin: str = "setting"):
        super().__init__(model, limit, allow_nonfinite)
        self.folder = Path(folder)
        self.preparation = InputPreparation.resolve(model, preparation if preparation is not None else preprocess,
                                                    origin=origin)
        self.fields = self.preparation.image_input
        self.spec = model.input_spec(self.fields.name)
        if len(model.inputs) != 1:
            have = ", ".join(s.describe() for s in model.inputs)
            raise WorkbenchError("An image folder can only feed a model with one image input; this model has: "
                                 f"{have}. Use a folder of .npz files or --data-loader-script instead.")
        self.files = list_files(self.folder, IMAGE_EXTENSIONS, "image")[: limit or None]
        self._ordered = all(self.fields.size)

    # kept for callers of the former ImageFolderData
    @property
    def layout(self) -> str:
        return self.fields.layout

    @property
    def size(self) -> tuple:
        return self.fields.size

    @property
    def channels(self) -> int:
        return self.fields.channels

    def input_paths(self) -> list:
        return [("the data folder", self.folder)]

    def __len__(self) -> int:
        return len(self.files)

    def prepared_hw(self, path: Path) -> tuple:
        """The (H, W) ``path`` will have once prepared (reads the image header only)."""
        from PIL import Image, UnidentifiedImageError

        if all(self.fields.size):
            return tuple(self.fields.size)
        try:
            with Image.open(path) as img:
                w, h = img.size
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise WorkbenchError(f"Cannot read image '{path}': {exc}.") from None
        return target_hw(self.fields, w, h)

    def _order_by_shape(self) -> None:
        if self._ordered:
            return
        shapes = {f: self.prepared_hw(f) for f in self.files}
        first = list(dict.fromkeys(shapes.values()))
        self.files = sorted(self.files, key=lambda f: first.index(shapes[f]))  # stable: path order within
        self._ordered = True

    def shapes(self) -> dict:
        """{(H, W): number of images} of the prepared images."""
        self._order_by_shape()
        out: dict = {}
        for f in self.files:
            hw = self.prepared_hw(f)
            out[hw] = out.get(hw, 0) + 1
        return out

    def load_image(self, path: Path) -> np.ndarray:
        """Decode and prepare one image: a [C,H,W] or [H,W,C] array of the model's dtype."""
        from PIL import Image, UnidentifiedImageError

        f = self.fields
        try:
            with Image.open(path) as img:
                high = img.mode in _HIGH_MODES
                img = self._high_to_float(img, path) if high else img.convert("L" if f.channels == 1 else "RGB")
                img = resize_image(f, img, path, pad_scale=65535.0 / 255.0 if high else 1.0)
                arr = np.asarray(img, dtype=np.float32)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise WorkbenchError(f"Cannot read image '{path}': {exc}.") from None
        if high:
            arr = arr * np.float32(255.0 / 65535.0)
        return normalise(f, arr, self.spec.dtype)

    def preview(self, index: int = 0) -> dict:
        """One prepared image for a preview: ``{"file", "input" (the array fed, no batch axis),
        "image" (uint8 [H, W, 3] RGB), "shape" (with the batch axis), "min", "max"}``."""
        self._order_by_shape()
        if not self.files:
            raise WorkbenchError(f"No images in '{self.folder}'.")
        path = self.files[min(max(0, index), len(self.files) - 1)]
        x = self.load_image(path)
        return {"file": str(path), "input": x, "image": to_display(self.fields, x), "shape": (1, *x.shape),
                "min": float(np.min(x)), "max": float(np.max(x))}

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
        self._order_by_shape()
        for f in self.files:
            yield str(f), {self.spec.name: self.load_image(f)}

    def fingerprint(self) -> str:
        self._order_by_shape()
        return hash_files(self.files, {"kind": self.kind, "prep": self.fields.values()})

    def describe(self) -> str:
        h, w = (s or "own" for s in self.fields.size)
        return f"{len(self.files)} images from '{self.folder}' ({self.fields.layout}, {h}x{w}, {self.fields.resize})"


__all__ = ["ImageFolderData"]
