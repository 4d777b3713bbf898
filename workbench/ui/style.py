"""Colours and number formatting shared by every figure, table and panel of the app.

Method colours come from the range-method registry (``workbench.calib.registry``) when it
is installed, so a new method is drawn in its own colour without touching the UI; names the
registry does not know (an imported model's own threshold, ``"auto"``, ...) get a stable
colour of their own.
"""
from __future__ import annotations

import hashlib
import math

from ..precision.kinds import PRECISIONS

#: colours of the methods the workbench ships (used when the registry gives none)
_BUILTIN_METHOD_COLORS = {
    "entropy": "#1f77b4",
    "entropy_zero_fix": "#17becf",
    "minmax": "#d62728",
    "percentile": "#2ca02c",
    "mse": "#9467bd",
    "model": "#8c564b",
    "auto": "#bcbd22",
}
#: lines that are not calibration methods
ROLE_COLORS = {"manual": "#ff7f0e", "chosen": "#000000", "preview": "#ff7f0e"}
#: label -> colour, from the precision registry (one source: workbench.precision.kinds)
PRECISION_COLORS = {p.label: p.color for p in PRECISIONS.values()}
CLIPPED_COLOR = "#e377c2"
_PALETTE = ("#e6550d", "#31a354", "#756bb1", "#636363", "#3182bd", "#843c39", "#7b4173", "#637939")


def _registry():
    """The range-method registry module, or None when this installation has none."""
    try:
        from ..calib import registry
    except ImportError:
        return None
    return registry


def _registry_entries() -> dict:
    """name -> registry entry (any object with ``color`` / ``description`` attributes or keys)."""
    reg = _registry()
    if reg is None:
        return {}
    for attr in ("METHODS", "REGISTRY", "methods"):
        table = getattr(reg, attr, None)
        if callable(table):
            table = table()
        if isinstance(table, dict):
            return table
        if isinstance(table, (list, tuple)) and table and hasattr(table[0], "name"):
            return {m.name: m for m in table}
    return {}


def _field(entry, name: str):
    return entry.get(name) if isinstance(entry, dict) else getattr(entry, name, None)


def method_color(name: str) -> str:
    """The colour of threshold line ``name`` (a method, "chosen", "manual", or anything else)."""
    if name in ROLE_COLORS:
        return ROLE_COLORS[name]
    entry = _registry_entries().get(name)
    color = _field(entry, "color") if entry is not None else None
    if color:
        return str(color)
    if name in _BUILTIN_METHOD_COLORS:
        return _BUILTIN_METHOD_COLORS[name]
    digest = int(hashlib.sha1(name.encode()).hexdigest(), 16)
    return _PALETTE[digest % len(_PALETTE)]


def method_names(*, output_aware: bool = True) -> list:
    """The range methods to offer, in the registry's order (or the algorithms' list);
    ``output_aware=False`` leaves out the methods chosen by the network's output ("auto")."""
    entries = _registry_entries()
    if entries:
        return [n for n, e in entries.items() if output_aware or not _field(e, "output_aware")]
    from ..calib.algorithms import METHODS

    return list(METHODS)


def is_output_aware(name: str) -> bool:
    """Whether method ``name`` is chosen by the network's output (a search, not a histogram read)."""
    entry = _registry_entries().get(name)
    return bool(_field(entry, "output_aware")) if entry is not None else False


#: the histogram method statistics are first read with before an output-aware search
BASE_METHOD = str(getattr(_registry(), "BASE_METHOD", "mse"))


def method_params(name: str) -> list:
    """The registry's parameters of method ``name`` (objects with name, default, lo, hi, help,
    integer); the percentile alone when there is no registry."""
    entry = _registry_entries().get(name)
    if entry is not None:
        return list(_field(entry, "params") or ())
    if name == "percentile":
        from types import SimpleNamespace

        return [SimpleNamespace(name="percentile", default=99.99, lo=0.0, hi=100.0, integer=False,
                                help="amax = the |x| below which this percentage of the values lie")]
    return []


def method_description(name: str) -> str:
    """One sentence about method ``name`` for tooltips ("" when unknown)."""
    entry = _registry_entries().get(name)
    text = _field(entry, "description") if entry is not None else None
    if text:
        return str(text)
    return {
        "entropy": "TensorRT EntropyCalibration2 as published (KL search over 2048 bins)",
        "entropy_zero_fix": "entropy search with bin 0 set to bin 1 (pytorch-quantization / ModelOpt)",
        "minmax": "largest |x| seen: never clips",
        "percentile": "the |x| below which the given percentile of values lie",
        "mse": "the threshold with the smallest mean squared quantization error",
    }.get(name, "")


def fmt_num(v, digits: int = 4) -> str:
    """A number rounded for people: ``digits`` significant digits, no exponent for everyday
    magnitudes, "–" for missing values."""
    if v is None:
        return "–"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return "–"
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    if f == int(f) and abs(f) < 1e6:
        return str(int(f))
    if 1e-3 <= abs(f) < 1e6:
        return f"{f:.{digits}g}" if abs(f) < 10 ** digits else f"{f:.0f}"
    return f"{f:.{max(digits - 1, 1)}e}"


def fmt_delta(v, digits: int = 2) -> str:
    """A change with its sign ("+1.25", "−20.03", "±0.00"): a delta never reads as a level."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return fmt_num(v)
    f = round(float(v), digits)
    if f == 0:
        return f"±{0:.{digits}f}"
    return f"{'+' if f > 0 else '−'}{abs(f):.{digits}f}"


def fmt_pct(share, digits: int = 3) -> str:
    """A share in [0, 1] as a percentage for people ("0.021 %", "< 0.001 %", "0 %")."""
    if share is None or (isinstance(share, float) and math.isnan(share)):
        return "–"
    p = 100.0 * float(share)
    if p == 0:
        return "0 %"
    if p < 10 ** -digits:
        return f"< {10 ** -digits:g} %"
    return f"{p:.{digits}g} %"


def fmt_seconds(s) -> str:
    """A duration for people: "0.4 s", "12 s", "3 min 05 s"."""
    if s is None or (isinstance(s, float) and not math.isfinite(s)):
        return "–"
    s = float(s)
    if s < 10:
        return f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m} min {sec:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"
