"""TensorRT calibration cache (TensorRT 10 and earlier): write and read, bit-exact.

Format (what TensorRT's calibrators write and read)::

    TRT-8600-EntropyCalibration2
    input: 3c010a14
    conv1/output:0: 3d418306

The first line is ``TRT-<version>-<algorithm>``. Every other line is ``<tensor name>: <8 hex
digits>``, the IEEE-754 float32 bit pattern of the scale (``amax / 127``), most significant
byte first (``3f800000`` is 1.0). Tensor names may contain ':', so a line is split on its
LAST colon. Nothing else may appear in the file (TensorRT rejects unknown lines): whether a
cache is stale is recorded by the caller in a sidecar file, and :func:`compare_cache` reports
tensors missing from or unknown to the network.
"""
from __future__ import annotations

import json
import math
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from .._io import atomic_write_text
from ..errors import WorkbenchError
from ..outputs.names import sidecar_path

DEFAULT_ALGORITHM = "EntropyCalibration2"
DEFAULT_VERSION = 8600
# Algorithm names TensorRT writes; others are accepted when reading but flagged by is_known.
KNOWN_ALGORITHMS = ("EntropyCalibration2", "EntropyCalibration", "MinMaxCalibration", "LegacyCalibration")
_HEADER = re.compile(r"TRT-(\d+)-([A-Za-z0-9_]+)")
_HEX = re.compile(r"[0-9a-fA-F]{8}")


def scale_to_hex(scale: float) -> str:
    """8 lowercase hex digits of ``scale`` rounded to float32, big-endian (1.0 -> ``3f800000``).

    Raises WorkbenchError for a scale that is not finite or not > 0 after rounding to float32.
    """
    s = float(scale)
    packed = struct.pack(">f", s) if math.isfinite(s) and abs(s) < 3.4e38 else None
    if packed is None or struct.unpack(">f", packed)[0] <= 0.0:
        raise WorkbenchError(f"a calibration scale must be a positive finite float32, got {scale!r}")
    return packed.hex()


def hex_to_scale(h: str) -> float:
    """The float32 value (as a Python float, exact) of 8 big-endian hex digits."""
    text = h.strip()
    if not _HEX.fullmatch(text):
        raise WorkbenchError(f"expected 8 hex digits for a calibration scale, got {h!r}")
    return struct.unpack(">f", bytes.fromhex(text))[0]


@dataclass
class CalibrationCache:
    """A parsed cache: ``version`` (e.g. 8600), ``algorithm`` (e.g. "EntropyCalibration2"),
    ``scales`` (tensor name -> float32-exact scale, in file order)."""

    version: int
    algorithm: str
    scales: dict[str, float] = field(default_factory=dict)

    def amax(self) -> dict[str, float]:
        """Tensor name -> amax (scale * 127)."""
        return {name: s * 127.0 for name, s in self.scales.items()}

    @property
    def is_known_algorithm(self) -> bool:
        """True for an algorithm name TensorRT itself writes."""
        return self.algorithm in KNOWN_ALGORITHMS


@dataclass
class CacheComparison:
    """Tensors of a cache versus the tensors a network needs (``missing``: needed but absent;
    ``extra``: in the cache but unknown to the network, usually a sign of another model)."""

    missing: list[str]
    extra: list[str]

    @property
    def matches(self) -> bool:
        """True when the cache has exactly the expected tensors."""
        return not self.missing and not self.extra

    def describe(self, limit: int = 5) -> str:
        """One line for the user, naming up to ``limit`` tensors of each kind."""
        if self.matches:
            return "calibration cache matches the network's tensors"

        def names(xs: list[str]) -> str:
            shown = ", ".join(f"'{x}'" for x in xs[:limit])
            return shown + (f" and {len(xs) - limit} more" if len(xs) > limit else "")

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} tensor(s) missing from the cache: {names(self.missing)}")
        if self.extra:
            parts.append(f"{len(self.extra)} tensor(s) not in the network: {names(self.extra)}")
        return "; ".join(parts)


def format_calibration_cache(
    scales: Mapping[str, float], algorithm: str = DEFAULT_ALGORITHM, version: int = DEFAULT_VERSION
) -> str:
    """The cache text for ``scales`` (tensor name -> scale = amax / 127), lines in dict order.

    Args:
        scales: tensor name -> scale; names must be non-empty and on one line.
        algorithm: the header's algorithm name (default "EntropyCalibration2"; use
            "MinMaxCalibration" for min-max ranges).
        version: the header's TensorRT version number (default 8600 = TensorRT 8.6).
    """
    if not re.fullmatch(r"[A-Za-z0-9_]+", str(algorithm)):
        raise WorkbenchError(
            f"calibration cache algorithm must be a word like 'EntropyCalibration2', got {algorithm!r}"
        )
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise WorkbenchError(
            f"calibration cache version must be a non-negative integer like 8600, got {version!r}"
        )
    lines = [f"TRT-{version}-{algorithm}"]
    for name, scale in scales.items():
        if not isinstance(name, str) or not name or "\n" in name or "\r" in name:
            raise WorkbenchError(f"tensor name {name!r} cannot be written to a calibration cache")
        try:
            lines.append(f"{name}: {scale_to_hex(scale)}")
        except WorkbenchError as exc:
            raise WorkbenchError(f"tensor '{name}': {exc}") from None
    return "\n".join(lines) + "\n"


def parse_calibration_cache(text: str, source: str = "<string>") -> CalibrationCache:
    """Parse cache text; ``source`` names the file in error messages.

    Blank lines are skipped and line endings may be \\n or \\r\\n. A bad header, a line
    without ':' or 8 hex digits, an empty name or a repeated name raises WorkbenchError
    naming ``source`` and the line number.
    """
    lines = text.splitlines()
    if not lines or not _HEADER.fullmatch(lines[0].strip()):
        first = lines[0][:60] if lines else ""
        raise WorkbenchError(
            f"{source}, line 1: expected a header like 'TRT-8600-EntropyCalibration2', got {first!r}"
        )
    m = _HEADER.fullmatch(lines[0].strip())
    cache = CalibrationCache(version=int(m.group(1)), algorithm=m.group(2))
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(":")
        if not sep or not name or not _HEX.fullmatch(value.strip()):
            raise WorkbenchError(
                f"{source}, line {number}: expected '<tensor name>: <8 hex digits>', got {line[:80]!r}"
            )
        if name in cache.scales:
            raise WorkbenchError(f"{source}, line {number}: tensor '{name}' appears twice")
        cache.scales[name] = hex_to_scale(value)
    return cache




def write_calibration_cache(
    path: str | os.PathLike,
    scales: Mapping[str, float],
    algorithm: str = DEFAULT_ALGORITHM,
    version: int = DEFAULT_VERSION,
    provenance: Mapping | None = None,
) -> Path:
    """Write a cache atomically (see :func:`format_calibration_cache`); returns the path.

    ``provenance`` (e.g. ``model_fingerprint``, ``data_fingerprint``, ``method``) is written to
    :func:`sidecar_path` so that :func:`check_calibration_cache` can tell a stale cache; the cache
    itself stays in TensorRT's format.
    """
    out = atomic_write_text(path, format_calibration_cache(scales, algorithm, version))
    if provenance is not None:
        atomic_write_text(sidecar_path(path), json.dumps(dict(provenance), indent=1, default=str))
    return out


def check_calibration_cache(path: str | os.PathLike, model_info, *,
                            data_fingerprint: str | None = None) -> CalibrationCache:
    """Read a cache and refuse it (StaleError) when it belongs to another network or data set.

    With a provenance sidecar, its model (and, when given, data) fingerprint must match. Without
    one (a cache TensorRT or another tool wrote), every cached tensor must exist in the model.
    """
    from ..errors import StaleError

    cache = read_calibration_cache(path)
    side = sidecar_path(path)
    if side.exists():
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise WorkbenchError(f"cannot read the provenance of '{path}' ('{side}'): {exc}") from None
        if meta.get("model_fingerprint") not in (None, model_info.fingerprint()):
            raise StaleError(f"calibration cache '{path}' was made for another model (or an earlier "
                             f"version of '{model_info.name}'); recalibrate.")
        if data_fingerprint and meta.get("data_fingerprint") not in (None, data_fingerprint):
            raise StaleError(f"calibration cache '{path}' was made from other calibration data or "
                             "preprocessing; recalibrate.")
    known = set(model_info.float_tensors())
    extra = [n for n in cache.scales if n not in known]
    if extra:
        raise StaleError(f"calibration cache '{path}' names {len(extra)} tensor(s) that '{model_info.name}' "
                         f"does not have (e.g. {', '.join(repr(n) for n in extra[:3])}): it belongs to "
                         "another network; recalibrate.")
    return cache


def read_calibration_cache(path: str | os.PathLike) -> CalibrationCache:
    """Read and parse a cache file (WorkbenchError naming the file when missing or malformed)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise WorkbenchError(f"calibration cache '{p}' does not exist") from None
    except OSError as exc:
        raise WorkbenchError(f"cannot read calibration cache '{p}': {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise WorkbenchError(f"'{p}' is not a TensorRT calibration cache (not text)") from None
    return parse_calibration_cache(text, source=str(p))


def compare_cache(cache: CalibrationCache, expected_tensor_names: Iterable[str]) -> CacheComparison:
    """Which expected tensors the cache lacks and which cached tensors are not expected.

    Both lists keep the order of their source (expected names, cache file).
    """
    expected = list(dict.fromkeys(expected_tensor_names))
    wanted = set(expected)
    return CacheComparison(
        missing=[n for n in expected if n not in cache.scales],
        extra=[n for n in cache.scales if n not in wanted],
    )
