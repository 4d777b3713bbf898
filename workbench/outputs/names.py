"""One naming scheme for every exported file (CLI, Session and app use it).

A result has a *stem* (``out/model`` for ``-o out/model.onnx``); each kind of file adds its
suffix to it: ``model.onnx`` (Q/DQ for TensorRT), ``model.ort.onnx`` (ONNX Runtime twin),
``model.cpu_uint8.onnx``, ``model.plan.json``, ``model.calib.cache`` (+ ``.json`` provenance),
``model.ranges.json``, ``model.report.html``.
"""
from __future__ import annotations

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
