"""One naming scheme for every exported file (CLI, Session and app use it).

A result has a *stem* (``out/model`` for ``-o out/model.onnx``); each kind of file adds its
suffix to it: ``model.onnx`` (Q/DQ for TensorRT), ``model.ort.onnx`` (ONNX Runtime twin),
``model.cpu_uint8.onnx``, ``model.plan.json``, ``model.calib.cache`` (+ ``.json`` provenance),
``model.ranges.json``, ``model.report.html``. Files that describe another file sit beside it:
``<file>.json`` (:func:`sidecar_path`: a cache's provenance, an engine's build record),
``<engine>.layers.json``, ``<stem>.curve.csv`` (autoprec's trade-off curve),
``<stem>.explorer.<metric>.json`` (Model Explorer overlays). Every name is made here, and
:func:`twin_stem` / :func:`stem_files` read them back: the files of one stem are one result, so a
writer that reuses a stem removes the older twins it does not replace.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ExportKind:
    """One kind of exported file: its name, file suffix and what it is for."""

    name: str
    suffix: str
    description: str


EXPORT_KINDS = {k.name: k for k in (
    ExportKind("qdq", ".onnx", "Q/DQ ONNX for TensorRT 10/11 (strongly typed build)"),
    ExportKind("ort", ".ort.onnx", "ONNX Runtime evaluation twin (FP16 emulated on CPU)"),
    ExportKind("cpu_uint8", ".cpu_uint8.onnx", "ONNX Runtime CPU deployment (uint8 activations)"),
    ExportKind("plan", ".plan.json", "precision plan (JSON)"),
    ExportKind("cache", ".calib.cache", "TensorRT <= 10 calibration cache (implicit INT8 only)"),
    ExportKind("ranges", ".ranges.json", "per-tensor ranges (JSON)"),
    ExportKind("report", ".report.html", "HTML report of the session"),
    ExportKind("explorer", ".explorer.precision.json",
               "Model Explorer overlays of the TensorRT file (precision, SQNR, sensitivity, amax)"),
)}

# The ONNX export kind of each export variant of workbench.export.build.
VARIANT_KIND = {"trt": "qdq", "ort": "ort", "cpu_uint8": "cpu_uint8"}


def stem_of(path) -> Path:
    """The stem of ``path``: every known suffix (``.ort.onnx``, ``.onnx``, ...) removed once."""
    path = Path(path)
    for kind in sorted(EXPORT_KINDS.values(), key=lambda k: -len(k.suffix)):
        if path.name.endswith(kind.suffix) and len(path.name) > len(kind.suffix):
            return path.with_name(path.name[: -len(kind.suffix)])
    return path


def export_path(stem, kind: str) -> Path:
    """The file of ``kind`` for result ``stem``."""
    stem = Path(stem)
    return stem.with_name(stem.name + EXPORT_KINDS[kind].suffix)


def sidecar_path(path: str | os.PathLike) -> Path:
    """The record that describes ``path``: ``model.calib.cache`` -> ``model.calib.cache.json``
    (provenance), ``model.engine`` -> ``model.engine.json`` (build record)."""
    return Path(f"{path}.json")


def layers_path(engine_path: str | os.PathLike) -> Path:
    """``model.engine`` -> ``model.engine.layers.json`` (the builder log's layer table)."""
    return Path(f"{engine_path}.layers.json")


def curve_path(stem) -> Path:
    """The trade-off curve of an automatic mixed-precision result: ``<stem>.curve.csv``."""
    stem = Path(stem)
    return stem.with_name(stem.name + ".curve.csv")


def overlay_path(stem, metric: str) -> Path:
    """A Model Explorer node-data overlay of result ``stem``: ``<stem>.explorer.<metric>.json``."""
    stem = Path(stem)
    return stem.with_name(f"{stem.name}.explorer.{metric}.json")


def recipe_path(stem) -> Path:
    """How result ``stem`` was made (inputs, settings, versions, file digests): ``<stem>.recipe.json``."""
    stem = Path(stem)
    return stem.with_name(stem.name + ".recipe.json")


# Names of a result's files besides the export kinds' suffixes (the cache's provenance, the
# recipe, autoprec's curve); Model Explorer overlays are ``.explorer.<metric>.json``.
_TWIN_SUFFIXES = sorted({k.suffix for k in EXPORT_KINDS.values()}
                        | {".calib.cache.json", ".recipe.json", ".curve.csv"}, key=len, reverse=True)
_OVERLAY = re.compile(r"^(?P<stem>.+)\.explorer\.[A-Za-z0-9_-]+\.json$")


def twin_stem(path) -> Path | None:
    """The stem whose result ``path`` is a file of (``out/m.ort.onnx`` -> ``out/m``,
    ``out/m.explorer.sqnr.json`` -> ``out/m``), or None when its name is none of a result's."""
    path = Path(path)
    name = path.name
    match = _OVERLAY.match(name)
    if match:
        return path.with_name(match["stem"])
    for suffix in _TWIN_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return path.with_name(name[: -len(suffix)])
    return None


def stem_files(stem) -> list:
    """The files of result ``stem`` that exist now (every name of this module whose
    :func:`twin_stem` is ``stem``; ``out/m.quant.onnx`` is not a file of ``out/m``)."""
    stem = Path(stem)
    folder, prefix = stem.parent, stem.name + "."
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(prefix)]
    except OSError:
        return []
    return sorted(folder / e.name for e in entries
                  if not e.is_dir(follow_symlinks=False) and twin_stem(folder / e.name) == stem)
