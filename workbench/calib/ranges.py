"""Per-tensor ranges (amax and scale) from calibration statistics, and their file formats.

``ranges.json`` schema::

    {"method": "auto", "percentile": 99.99, "params": {"percentile": 99.99, "num_bits": 8},
     "num_samples": 64, "model_fingerprint": "...", "data_fingerprint": "...",
     "search": {...},            # the auto search: objective, held-out data, before/after (or null)
     "notes": ["..."],           # collapse-guard warnings naming tensors
     "tensors": {name: {"amax": float, "scale": float, "amax_by_method": {method: float},
                        "chosen": "percentile@99.9", "reason": "...",
                        "candidates": {label: {"amax": float, "score": float | null}},
                        "flags": ["clips_mass", ...],
                        "min": float, "max": float, "clipped_fraction": float,
                        "nan_count": int, "inf_count": int, "zero_fraction": float,
                        "override": bool}}}

``amax_by_method`` holds every histogram method's amax (see :mod:`workbench.calib.registry`);
``chosen`` names the candidate in use (a method name, ``percentile@P``, ``minmax*F`` or
``manual``) and ``reason`` says why; ``candidates`` and their scores are filled by the
``auto`` search (:mod:`workbench.search.autorange`).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace

from .._io import atomic_write_text
from .amax import check_amax, symmetric_scale
from . import registry
from .algorithms import DEFAULT_PERCENTILE
from ..errors import WorkbenchError

#: The histogram methods (every one's amax is kept per tensor).
METHODS = registry.histogram_methods()
#: What ``compute_ranges`` uses when asked for no method: the registry's base histogram method.
DEFAULT_METHOD = registry.BASE_METHOD


@dataclass(frozen=True)
class TensorRange:
    """The calibrated range of one tensor. ``scale`` is TensorRT's ``amax / 127``."""

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
    chosen: str = ""
    reason: str = ""
    candidates: dict = field(default_factory=dict)
    flags: tuple = ()

    @property
    def scale(self) -> float:
        return float(symmetric_scale(self.amax))

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("name")
        d["flags"] = list(self.flags)
        d["scale"] = self.scale
        return d


def check_histogram_method(method: str, *, histogram_only: bool = False) -> str:
    """Validate a calibration method name (WorkbenchError listing the valid ones)."""
    m = registry.get_method(method)
    if histogram_only and m.compute is None:
        raise WorkbenchError(
            f"The range method '{method}' needs the model and held-out data (it judges each tensor's "
            f"amax by the network's output); use workbench.search.autorange.auto_ranges, or one of: "
            f"{', '.join(METHODS)}.")
    return method


@dataclass
class Ranges:
    """Ranges of every observed tensor with the chosen method (``tensors`` keeps graph order).

    ``params`` are the range-method parameters used (``percentile`` is kept as its own field for
    older files); ``search`` is the auto search's summary (None for a single method); ``notes``
    are collapse-guard warnings naming tensors.
    """

    method: str
    tensors: dict
    percentile: float = DEFAULT_PERCENTILE
    num_samples: int = 0
    model_fingerprint: str = ""
    data_fingerprint: str = ""
    params: dict = field(default_factory=dict)
    search: dict | None = None
    notes: list = field(default_factory=list)

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

    def flagged(self) -> dict:
        """Tensor name -> its collapse-guard flags, for the tensors that have any."""
        return {n: r.flags for n, r in self.tensors.items() if r.flags}

    def with_method(self, method: str) -> "Ranges":
        """The same statistics read with another histogram method (manual overrides are kept)."""
        if not all(method in r.amax_by_method for r in self.tensors.values()):
            check_histogram_method(method, histogram_only=True)
        tensors = {n: r if r.override else replace(r, amax=r.amax_by_method[method], chosen=method,
                                                  reason=f"--method {method}")
                   for n, r in self.tensors.items()}
        return replace(self, method=method, tensors=tensors, search=None)

    def with_amax(self, amax: dict, *, method: str | None = None, chosen: dict | None = None,
                  reasons: dict | None = None) -> "Ranges":
        """A copy with ``amax`` (tensor -> value) as the calibrated amax (not overrides), e.g. the
        choices of a search; ``chosen`` / ``reasons`` label them."""
        tensors = dict(self.tensors)
        for name, value in amax.items():
            r = self[name]
            tensors[name] = replace(r, amax=check_amax(name, value),
                                    chosen=(chosen or {}).get(name, r.chosen),
                                    reason=(reasons or {}).get(name, r.reason))
        return replace(self, tensors=tensors, method=method or self.method)

    def with_overrides(self, overrides: dict) -> "Ranges":
        """A copy where ``overrides`` (tensor -> amax) replace the calibrated amax."""
        if not overrides:
            return self
        tensors = dict(self.tensors)
        for name, amax in overrides.items():
            r = self[name]
            try:
                value = check_amax(name, amax)
            except WorkbenchError:
                raise WorkbenchError(f"Manual amax for '{name}' must be a positive finite number, "
                                     f"got {amax!r}.") from None
            tensors[name] = replace(r, amax=value, override=True, chosen="manual", reason="manual override")
        return replace(self, tensors=tensors)

    def to_json(self) -> str:
        return json.dumps({
            "method": self.method, "percentile": self.percentile, "params": self.params,
            "num_samples": self.num_samples, "model_fingerprint": self.model_fingerprint,
            "data_fingerprint": self.data_fingerprint, "search": self.search, "notes": list(self.notes),
            "tensors": {n: r.to_dict() for n, r in self.tensors.items()},
        }, indent=1)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write ``ranges.json`` atomically; an existing file is refused unless ``overwrite``."""
        from ..validate import check_new_file

        atomic_write_text(check_new_file(path, "The ranges file", overwrite=overwrite), self.to_json())

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> "Ranges":
        try:
            d = json.loads(text)
            if not isinstance(d, dict) or not isinstance(d.get("tensors"), dict):
                found = type(d.get("tensors")).__name__ if isinstance(d, dict) else f"a JSON {type(d).__name__}"
                raise WorkbenchError(f"'{source}' is not a workbench ranges.json file: 'tensors' must be an "
                                     f"object mapping tensor names to their ranges, found {found}.")
            if not d["tensors"]:
                raise WorkbenchError(f"'{source}' holds no tensor ranges ('tensors' is empty); calibrate "
                                     "again (workbench calibrate) to write one with ranges.")
            tensors = {}
            for name, t in d["tensors"].items():
                t = dict(t)
                t.pop("scale", None)
                t["flags"] = tuple(t.get("flags", ()))
                tensors[name] = TensorRange(name=name, **t)
            percentile = d.get("percentile", DEFAULT_PERCENTILE)
            params = d.get("params") or {"percentile": percentile}
            return cls(d["method"], tensors, percentile, d.get("num_samples", 0),
                       d.get("model_fingerprint", ""), d.get("data_fingerprint", ""), params,
                       d.get("search"), list(d.get("notes", [])))
        except WorkbenchError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise WorkbenchError(f"'{source}' is not a workbench ranges.json file ({type(exc).__name__}: {exc}).") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Ranges":
        try:
            with open(path, encoding="utf-8") as fh:
                return cls.from_json(fh.read(), str(path))
        except OSError as exc:
            raise WorkbenchError(f"Cannot read ranges file '{path}': {exc}.") from None

    def to_dataframe(self):
        """One row per tensor: amax of each method, chosen amax, candidate and why, scale,
        min/max, clipping, guard flags."""
        import pandas as pd

        rows = []
        for n, r in self.tensors.items():
            row = {"tensor": n, "amax": r.amax, "chosen": r.chosen, "scale": r.scale, "min": r.min,
                   "max": r.max, "clipped_fraction": r.clipped_fraction, "zero_fraction": r.zero_fraction,
                   "nan_count": r.nan_count, "inf_count": r.inf_count, "override": r.override,
                   "flags": ",".join(r.flags), "reason": r.reason}
            row.update({f"amax_{m}": r.amax_by_method.get(m) for m in METHODS})
            rows.append(row)
        return pd.DataFrame(rows)

    def write_csv(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the table (:meth:`to_dataframe`) as CSV, names escaped for spreadsheets
        (:mod:`workbench.outputs.csvsafe`); an existing file is refused unless ``overwrite``."""
        from ..outputs.csvsafe import dataframe_csv
        from ..validate import check_new_file

        path = check_new_file(path, "The ranges table", overwrite=overwrite)
        atomic_write_text(path, dataframe_csv(self.to_dataframe()))


def compute_ranges(stats, method: str = DEFAULT_METHOD, percentile: float | None = None, *,
                   params: dict | None = None) -> Ranges:
    """Amax of every histogram method for every tensor in ``stats``; ``method`` picks the one used.

    Args:
        stats: :class:`workbench.calib.stats.Statistics`.
        method: a histogram method of the registry (``auto`` needs the model: see
            :func:`workbench.search.autorange.auto_ranges`).
        percentile: shorthand for ``params={"percentile": p}``.
        params: range-method parameters (registry names, e.g. ``percentile``, ``num_bits``).

    Degenerate tensors (all zeros, NaN only, constant) get the defined fallback of
    :mod:`workbench.calib.algorithms` and a warning there, never a zero or NaN scale.
    """
    from ..validate import check_type
    from .stats import Statistics

    check_type(stats, Statistics, "compute_ranges(stats=...)",
               expected="a Statistics (from collect_statistics or Statistics.load)")
    check_histogram_method(method, histogram_only=True)
    check_type(params, dict, "compute_ranges(params=...)", allow_none=True)
    params = dict(params or {})
    if percentile is not None:
        params["percentile"] = percentile
    try:
        params = registry.check_params(params)
    except WorkbenchError as exc:
        if "percentile" in str(exc):
            raise WorkbenchError(f"The percentile must be in (0, 100], got {params.get('percentile')}.") from None
        raise
    tensors = {}
    for name, c in stats.collectors.items():
        # the collector owns the special cases (degenerate, constant) and names the tensor in warnings
        if c.name is None:
            c.name = name
        by_method = {m: float(v) for m, v in c.compute_all(**params).items()}
        amax = by_method[method]
        total = max(int(c.count), 1)
        clipped = c.clipped_fraction(amax)
        tensors[name] = TensorRange(
            name=name, amax=amax, amax_by_method=by_method,
            min=float(c.min) if c.finite_count else 0.0, max=float(c.max) if c.finite_count else 0.0,
            clipped_fraction=float(clipped), nan_count=int(c.nan_count), inf_count=int(c.inf_count),
            zero_fraction=float(c.zero_count) / total, count=int(c.count), chosen=method,
        )
    return Ranges(method, tensors, params["percentile"], stats.num_samples, stats.model_fingerprint,
                  stats.data_fingerprint, params)
