"""Calibration and evaluation data: image folders, .npy/.npz folders, Polygraphy-style loader scripts.

Images are prepared for the model by one object, :class:`InputPreparation`
(:mod:`workbench.data.prepare`): per input its layout, channel order, size, resize policy and
normalisation, each with where it came from (the user, a preset, the model, a guess).

Every source yields batches ``{input_name: ndarray}`` in a deterministic order (one shape per
batch), checked against the model's inputs (names, dtypes, ranks, static dims) with errors that
name the file and the tensor, and against plain mistakes that would otherwise give silent
garbage: all-NaN inputs, a zero std, 16-bit images, batch sizes that cannot fit in memory (see
:mod:`workbench.data.base`).

Layer 3, data: owns sources, input checks (``validate`` at the top level checks argument values).
May import: graph, outputs and the top-level helpers.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import WorkbenchError
from ..graph.model import ModelInfo
from .arrays import ARRAY_EXTENSIONS, ArrayFolderData
from .base import (CalibrationData, DataWarning, activation_bytes_per_sample, available_memory,
                   check_positive_int, list_files)
from .folder import ImageFolderData
from .images import IMAGE_EXTENSIONS, PRESETS, ImagePreprocess, preset
from .prepare import RESIZE_POLICIES, InputFields, InputPreparation
from .scripts import ScriptData, call_user_function, load_function, parse_script_spec

__all__ = ["ARRAY_EXTENSIONS", "IMAGE_EXTENSIONS", "PRESETS", "ArrayFolderData", "CalibrationData",
           "DataWarning", "ImageFolderData", "ImagePreprocess", "InputFields", "InputPreparation",
           "RESIZE_POLICIES", "ScriptData", "activation_bytes_per_sample",
           "available_memory", "call_user_function", "check_positive_int", "load_function", "open_data",
           "parse_script_spec", "preset"]


def open_data(source=None, model: ModelInfo | None = None, *, preparation=None,
              preprocess: ImagePreprocess | None = None, loader_script: str | None = None,
              limit: int | None = None, allow_nonfinite: bool = False, origin: str = "setting") -> CalibrationData:
    """Open calibration/evaluation data for ``model``.

    Args:
        source: a folder of images or of .npy/.npz files (None when ``loader_script`` is given).
        model: the ModelInfo the data feeds.
        preparation: how images become the model's input (images only): an
            :class:`InputPreparation`, or a dict of its fields (``preset``, ``size``, ``resize``,
            ``layout``, ``channel_order``, ``scale``, ``mean``, ``std``, ...) resolved against the
            model; None: all from the model, guesses said so in ``data.preparation.describe()``.
            The image source's ``preparation`` is the resolved object.
        preprocess: a legacy :class:`ImagePreprocess` (used when ``preparation`` is None).
        origin: how the user's fields are named in ``describe()`` ("flag" for the CLI).
        loader_script: ``"file.py[:func]"``, a Polygraphy-style data loader.
        limit: the most samples to use (None for all); a positive whole number.
        allow_nonfinite: accept samples whose float inputs are all NaN/Inf (default False: refused).
    """
    if model is None:
        raise WorkbenchError("open_data needs the model the data is for.")
    from ..validate import check_path, check_type

    check_type(model, ModelInfo, "open_data(model=...)", expected="a ModelInfo (ModelInfo.from_path(path))")
    if source is not None:
        check_path(source, "open_data(source=...), the data folder")
    if loader_script is not None:
        check_path(loader_script, "open_data(loader_script=...)")
    if (source is None) == (loader_script is None):
        raise WorkbenchError("Give exactly one data source: a folder (--data) or a loader script "
                             "(--data-loader-script).")
    if loader_script is not None:
        return ScriptData(loader_script, model, limit, allow_nonfinite)
    folder = Path(source)
    files = list_files(folder, IMAGE_EXTENSIONS + ARRAY_EXTENSIONS, "image or .npy/.npz")
    n_img = sum(f.suffix.lower() in IMAGE_EXTENSIONS for f in files)
    if n_img and n_img != len(files):
        raise WorkbenchError(
            f"Data folder '{folder}' mixes images and .npy/.npz files; keep one kind per folder."
        )
    if n_img:
        return ImageFolderData(folder, model, preprocess, limit, allow_nonfinite, preparation=preparation,
                               origin=origin)
    return ArrayFolderData(folder, model, limit, allow_nonfinite)
