"""The range-method registry: every way the workbench chooses an amax, in one table.

Each entry is a :class:`RangeMethod`: its name, a one-line description, its parameters
(:class:`Param`: name, default, bounds, help), the algorithm name TensorRT's calibration cache
header gets, the colour plots draw its threshold in, and ``compute``, the pure function from a
tensor's |x| histogram to an amax. The CLI flags (``--method`` choices, one flag per
parameter), the Session's calibration settings and the app's calibration panel all read this
table, so a new method with a parameter is one function, one :func:`register` call and its test.

``"auto"`` is registered too but has no ``compute``: it is output-aware (it picks, per tensor,
the candidate amax that gives the best network output on held-out data; see
:mod:`workbench.search.autorange`), so it needs the model and data, not just a histogram.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from ..errors import WorkbenchError
from ._base import DEFAULT_PERCENTILE, DEGENERATE_AMAX, _as_hist, warn_degenerate
from .basic import minmax_amax, percentile_amax
from .entropy import entropy_amax
from .mse import mse_amax


@dataclass(frozen=True)
class Param:
    """One numeric parameter of a range method (a CLI flag ``--<name>``, a Session setting, a
    panel control). ``integer`` parameters take whole numbers only."""

    name: str
    default: float
    lo: float
    hi: float
    help: str
    integer: bool = False
    lo_inclusive: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value) -> float | int:
        """``value`` as a number if it is within bounds, else a WorkbenchError naming the parameter."""
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = math.nan
        low_ok = v >= self.lo if self.lo_inclusive else v > self.lo
        if isinstance(value, bool) or not (math.isfinite(v) and low_ok and v <= self.hi) or \
                (self.integer and v != int(v)):
            bounds = f"{'[' if self.lo_inclusive else '('}{self.lo:g}, {self.hi:g}]"
            kind = "a whole number" if self.integer else "a number"
            raise WorkbenchError(f"The range parameter '{self.name}' ({self.flag}) must be {kind} in "
                                 f"{bounds}, e.g. {self.default:g}; got {value!r}.")
        return int(v) if self.integer else v


@dataclass(frozen=True)
class RangeMethod:
    """A way to choose a tensor's amax.

    Attributes:
        name: the method's name (``--method NAME``).
        description: one sentence for help texts and tooltips.
        params: its :class:`Param` s.
        cache_algorithm: the algorithm in the TensorRT calibration cache header (TensorRT reads
            every scale the same way; the header only names the calibrator class).
        color: the colour of its threshold line in plots.
        compute: ``compute(hist, bin_width, absmax, *, name=None, **params) -> amax`` over a
            histogram of |x| (pure); None for output-aware methods.
        output_aware: True when the amax is chosen by the network's output (needs model + data).
    """

    name: str
    description: str
    params: tuple = ()
    cache_algorithm: str = "EntropyCalibration2"
    color: str = "#7f7f7f"
    compute: Callable | None = None
    output_aware: bool = False
    param_names: tuple = field(init=False, repr=False, default=())

    def __post_init__(self):
        object.__setattr__(self, "param_names", tuple(p.name for p in self.params))

    def amax(self, hist, bin_width: float, absmax: float, *, name: str | None = None, **params) -> float:
        """This method's amax for one histogram; ``params`` not given take their defaults."""
        if self.compute is None:
            raise WorkbenchError(f"The range method '{self.name}' is chosen by the network's output, not "
                                 "from one histogram: use workbench.search.autorange.auto_ranges.")
        values = {p.name: p.default for p in self.params}
        values.update({k: v for k, v in params.items() if k in self.param_names})
        return self.compute(hist, bin_width, absmax, name=name, **values)


#: name -> RangeMethod, in the order tables and menus show them.
REGISTRY: dict[str, RangeMethod] = {}


def register(method: RangeMethod) -> RangeMethod:
    """Add ``method`` to :data:`REGISTRY` (a parameter name must mean the same thing everywhere:
    one flag per name, so two methods may share a parameter only with identical definitions)."""
    if method.name in REGISTRY:
        raise WorkbenchError(f"A range method named '{method.name}' is already registered.")
    for p in method.params:
        for other in REGISTRY.values():
            for q in other.params:
                if q.name == p.name and q != p:
                    raise WorkbenchError(f"Parameter '{p.name}' of '{method.name}' clashes with the one of "
                                         f"'{other.name}'.")
    REGISTRY[method.name] = method
    return method


PERCENTILE = Param("percentile", DEFAULT_PERCENTILE, 0.0, 100.0,
                   "p for the percentile method: amax = the |x| below which p percent of the values lie")
NUM_BITS = Param("num_bits", 8, 2, 16, "signed integer width the mse search assumes", integer=True,
                 lo_inclusive=True)

register(RangeMethod(
    "auto", "per tensor, the candidate amax (every method's, more percentiles, scaled min-max) that "
            "gives the best network output on held-out data", color="#bcbd22", output_aware=True))
register(RangeMethod(
    "entropy", "TensorRT EntropyCalibration2 as published (KL search over 2048 bins)", color="#1f77b4",
    compute=lambda h, w, a, *, name=None: entropy_amax(h, w, name=name)))
register(RangeMethod(
    "entropy_zero_fix", "entropy search with bin 0 set to bin 1 (pytorch-quantization / ModelOpt)",
    color="#17becf", compute=lambda h, w, a, *, name=None: entropy_amax(h, w, zero_bin_fix=True, name=name)))
register(RangeMethod(
    "minmax", "largest |x| seen: never clips", cache_algorithm="MinMaxCalibration", color="#d62728",
    compute=lambda h, w, a, *, name=None: minmax_amax(a, name=name)))
register(RangeMethod(
    "percentile", "the |x| below which the given percentile of values lie", (PERCENTILE,), color="#2ca02c",
    compute=lambda h, w, a, *, name=None, percentile=DEFAULT_PERCENTILE: percentile_amax(h, w, percentile,
                                                                                         name=name)))
register(RangeMethod(
    "mse", "the threshold with the smallest mean squared quantization error", (NUM_BITS,),
    color="#9467bd", compute=lambda h, w, a, *, name=None, num_bits=8: mse_amax(h, w, num_bits, name=name)))

#: The user-facing default (``--method``): output-aware per-tensor ranges.
DEFAULT_METHOD = "auto"
#: The histogram method ``auto`` starts its comparison from ("changed from mse") and the one used
#: where no model is at hand: the most accurate single method on the sample EfficientNet-Lite0
#: (output SQNR over three calibration subsets: mse 17.8-18.0 dB, percentile 17.6-17.8, minmax
#: 17.4-17.5, entropy_zero_fix 14.4, entropy 0.0; README "Methods").
BASE_METHOD = "mse"


def histogram_methods() -> tuple:
    """Names of the methods computed from a histogram (every entry with ``compute``)."""
    return tuple(n for n, m in REGISTRY.items() if m.compute is not None)


def method_names() -> tuple:
    """Every selectable method name, ``auto`` included (the ``--method`` choices)."""
    return tuple(REGISTRY)


def get_method(name: str) -> RangeMethod:
    """The registered method ``name`` (WorkbenchError listing the known ones)."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise WorkbenchError(f"Unknown calibration method {name!r}; choose one of: "
                             f"{', '.join(REGISTRY)}.") from None


def all_params() -> dict:
    """Parameter name -> :class:`Param` over every method (each name once)."""
    return {p.name: p for m in REGISTRY.values() for p in m.params}


def default_params() -> dict:
    """Parameter name -> default value over every method."""
    return {n: p.default for n, p in all_params().items()}


def check_params(params: dict | None) -> dict:
    """Defaults updated with ``params`` (each checked against its bounds; unknown names refused)."""
    out = default_params()
    known = all_params()
    for k, v in (params or {}).items():
        if k not in known:
            raise WorkbenchError(f"Unknown range parameter '{k}'; the methods take: {', '.join(known)}.")
        out[k] = known[k].check(v)
    return out


def cache_algorithm(method: str) -> str:
    """The TensorRT calibration cache header algorithm for ``method``."""
    return get_method(method).cache_algorithm


def compute_amax(method: str, hist, bin_width: float, absmax: float, *, name: str | None = None,
                 **params) -> float:
    """amax of one histogram method by name; ``params`` (e.g. ``percentile``, ``num_bits``) not
    given take their defaults. Pure: no I/O."""
    m = get_method(method)
    return m.amax(hist, bin_width, absmax, name=name, **params)


def all_amax(hist, bin_width: float, absmax: float, *, name: str | None = None, **params) -> dict:
    """amax of every histogram method for one tensor (``params`` as in :func:`compute_amax`).

    A histogram without mass gives ``DEGENERATE_AMAX`` for every method and ONE warning.
    """
    h = _as_hist(hist, name)
    if h.sum() <= 0:
        warn_degenerate(name, "no non-zero finite values were seen", DEGENERATE_AMAX)
        return {m: DEGENERATE_AMAX for m in histogram_methods()}
    return {m: REGISTRY[m].amax(h, bin_width, absmax, name=name, **params) for m in histogram_methods()}


def check_method_name(method, what: str = "The calibration method (--method)") -> str:
    """``method`` if it names a registered range method; WorkbenchError listing them otherwise."""
    from ..validate import check_choice

    return check_choice(method, method_names(), what)


def check_calibration_settings(method, percentile, batch_size) -> None:
    """The Session's calibration settings: a known method, p in (0, 100], a positive batch size."""
    from ..validate import check_percentile, check_positive_int

    check_method_name(method, "The calibration method (method)")
    check_percentile(percentile, "The percentile (percentile)")
    check_positive_int(batch_size, "The batch size (batch_size)")
