"""Per-tensor ranges (amax and scale) from calibration statistics, and their file formats.

``ranges.json`` schema::

    {"method": "entropy", "percentile": 99.99, "num_samples": 64,
     "model_fingerprint": "...", "data_fingerprint": "...",
     "tensors": {name: {"amax": float, "scale": float, "amax_by_method": {method: float},
                        "min": float, "max": float, "clipped_fraction": float,
                        "nan_count": int, "inf_count": int, "zero_fraction": float,
                        "override": bool}}}
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace

from ._io import atomic_write_text
from .calib import algorithms
from .errors import WorkbenchError

METHODS = algorithms.METHODS
DEFAULT_METHOD = algorithms.DEFAULT_METHOD


@dataclass(frozen=True)
class TensorRange:
    """The calibrated range of one tensor. ``scale`` is ``amax / 127`` as TensorRT uses it."""

    name: str
    amax: float
    amax_by_method: dict
    min: float
    max: float
    clipped_fraction: float = 0.0
    nan_count: int = 0
    inf_count: int = 0
    zero_fraction: float = 0.0
    count: int = 0
    override: bool = False

    @property
    def scale(self) -> float:
        return self.amax / 127.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("name")
        d["scale"] = self.scale
        return d


def check_method(method: str) -> str:
    """Validate a calibration method name (WorkbenchError listing the valid ones)."""
    if method not in METHODS:
        raise WorkbenchError(f"Unknown calibration method '{method}'; choose one of: {', '.join(METHODS)}.")
    return method


@dataclass
class Ranges:
    """Ranges of every observed tensor with the chosen method (``tensors`` keeps graph order)."""

    method: str
    tensors: dict
    percentile: float = 99.99
    num_samples: int = 0
    model_fingerprint: str = ""
    data_fingerprint: str = ""

    def amax(self) -> dict:
        """Tensor name -> amax of the chosen method (or the manual override)."""
        return {n: r.amax for n, r in self.tensors.items()}

    def scales(self) -> dict:
        """Tensor name -> scale (amax / 127), as written to a calibration cache."""
        return {n: r.scale for n, r in self.tensors.items()}

    def __getitem__(self, name: str) -> TensorRange:
        try:
            return self.tensors[name]
        except KeyError:
            raise WorkbenchError(f"No range for tensor '{name}' (it was not observed during calibration).") from None

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def get(self, name: str, default=None):
        return self.tensors.get(name, default)

    def with_method(self, method: str) -> "Ranges":
        """The same statistics read with another method (manual overrides are kept)."""
        check_method(method)
        tensors = {n: r if r.override else replace(r, amax=r.amax_by_method[method])
                   for n, r in self.tensors.items()}
        return replace(self, method=method, tensors=tensors)

    def with_overrides(self, overrides: dict) -> "Ranges":
        """A copy where ``overrides`` (tensor -> amax) replace the calibrated amax."""
        if not overrides:
            return self
        tensors = dict(self.tensors)
        for name, amax in overrides.items():
            r = self[name]
            if not (isinstance(amax, (int, float)) and math.isfinite(amax) and amax > 0):
                raise WorkbenchError(f"Manual amax for '{name}' must be a positive finite number, got {amax!r}.")
            tensors[name] = replace(r, amax=float(amax), override=True)
        return replace(self, tensors=tensors)

    def to_json(self) -> str:
        return json.dumps({
            "method": self.method, "percentile": self.percentile, "num_samples": self.num_samples,
            "model_fingerprint": self.model_fingerprint, "data_fingerprint": self.data_fingerprint,
            "tensors": {n: r.to_dict() for n, r in self.tensors.items()},
        }, indent=1)

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> "Ranges":
        try:
            d = json.loads(text)
            tensors = {}
            for name, t in d["tensors"].items():
                t = dict(t)
                t.pop("scale", None)
                tensors[name] = TensorRange(name=name, **t)
            return cls(d["method"], tensors, d.get("percentile", 99.99), d.get("num_samples", 0),
                       d.get("model_fingerprint", ""), d.get("data_fingerprint", ""))
        except (KeyError, TypeError, ValueError) as exc:
            raise WorkbenchError(f"'{source}' is not a workbench ranges.json file ({exc}).") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Ranges":
        try:
            with open(path, encoding="utf-8") as fh:
                return cls.from_json(fh.read(), str(path))
        except OSError as exc:
            raise WorkbenchError(f"Cannot read ranges file '{path}': {exc}.") from None

    def to_dataframe(self):
        """One row per tensor: amax of each method, chosen amax and scale, min/max, clipping."""
        import pandas as pd

        rows = []
        for n, r in self.tensors.items():
            row = {"tensor": n, "amax": r.amax, "scale": r.scale, "min": r.min, "max": r.max,
                   "clipped_fraction": r.clipped_fraction, "zero_fraction": r.zero_fraction,
                   "nan_count": r.nan_count, "inf_count": r.inf_count, "override": r.override}
            row.update({f"amax_{m}": r.amax_by_method.get(m) for m in METHODS})
            rows.append(row)
        return pd.DataFrame(rows)

    def write_csv(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, self.to_dataframe().to_csv(index=False))


def compute_ranges(stats, method: str = DEFAULT_METHOD, percentile: float = 99.99) -> Ranges:
    """Amax of every method for every tensor in ``stats``; ``method`` picks the one used.

    Degenerate tensors (all zeros, NaN only, constant) get the defined fallback of
    :mod:`workbench.calib.algorithms` and a warning there, never a zero or NaN scale.
    """
    check_method(method)
    if not (0.0 < percentile <= 100.0):
        raise WorkbenchError(f"The percentile must be in (0, 100], got {percentile}.")
    tensors = {}
    for name, c in stats.collectors.items():
        # the collector owns the special cases (degenerate, constant) and names the tensor in warnings
        if c.name is None:
            c.name = name
        by_method = {m: float(v) for m, v in c.compute_all(percentile=percentile).items()}
        amax = by_method[method]
        total = max(int(c.count), 1)
        clipped = c.clipped_fraction(amax)
        tensors[name] = TensorRange(
            name=name, amax=amax, amax_by_method=by_method,
            min=float(c.min) if c.finite_count else 0.0, max=float(c.max) if c.finite_count else 0.0,
            clipped_fraction=float(clipped), nan_count=int(c.nan_count), inf_count=int(c.inf_count),
            zero_fraction=float(c.zero_count) / total, count=int(c.count),
        )
    return Ranges(method, tensors, percentile, stats.num_samples, stats.model_fingerprint,
                  stats.data_fingerprint)
