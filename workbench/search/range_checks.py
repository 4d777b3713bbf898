"""Collapse guards and range sensitivity: which tensor's threshold hurts, said with names.

Guards (:func:`check_ranges`, :func:`guard_forced_method`) mark tensors in the ranges (``flags``, read
by the app) and return warnings naming them:

* ``clips_mass``: the amax in use clips more than :data:`CLIP_SHARE` of the tensor's values;
* ``methods_disagree``: the histogram methods' amax differ by more than :data:`DISAGREE_RATIO`;
* ``method_loses``: a forced method's output SQNR is more than :data:`LOSS_DB` below min-max's
  (the tensors it clips hardest are named).

Range sensitivity (:func:`range_sensitivity`): for every INT8 input tensor, the output SQNR
with that tensor left unquantized, at its chosen amax and at min-max's (the rest as chosen), so
"clipping here at 33.7 costs 2.1 dB at the output; min-max would cost 0.3 dB".
"""
from __future__ import annotations

import math
import time
from dataclasses import replace

from ..calib import registry
from ..errors import Cancelled, WorkbenchError
from .scoring import PlanScorer, cancelled

#: An amax clipping more than this share of a tensor's values is flagged.
CLIP_SHARE = 0.01
#: Histogram methods whose amax differ by more than this factor are flagged.
DISAGREE_RATIO = 4.0
#: A method more than this many dB of output SQNR below min-max's is a collapse.
LOSS_DB = 3.0


def _names(tensors: list, most: int = 5) -> str:
    shown = ", ".join(f"'{t}'" for t in tensors[:most])
    return shown + (f" and {len(tensors) - most} more" if len(tensors) > most else "")


def check_ranges(ranges, *, clip_share: float = CLIP_SHARE, ratio: float = DISAGREE_RATIO,
                 tensors=None) -> tuple:
    """(ranges with ``flags`` set, warnings) for the clipping and disagreement guards.

    Args:
        ranges: :class:`~workbench.calib.ranges.Ranges`.
        clip_share: flag an amax that clips more than this share of the values.
        ratio: flag tensors whose histogram methods disagree by more than this factor.
        tensors: only these tensors (default: all), e.g. those INT8 nodes read.
    """
    tensors = list(ranges.tensors) if tensors is None else [t for t in tensors if t in ranges]
    out = dict(ranges.tensors)
    clipping, disagreeing = [], []
    for t in tensors:
        r = out[t]
        flags = [f for f in r.flags if f not in ("clips_mass", "methods_disagree")]
        if r.clipped_fraction > clip_share and not r.override:
            flags.append("clips_mass")
            clipping.append(t)
        values = [v for m, v in r.amax_by_method.items() if m in registry.histogram_methods() and v > 0]
        if values and max(values) > ratio * min(values):
            flags.append("methods_disagree")
            disagreeing.append(t)
        out[t] = replace(r, flags=tuple(flags))
    notes = []
    if clipping:
        clipping.sort(key=lambda t: -out[t].clipped_fraction)
        worst = out[clipping[0]]
        notes.append(f"{len(clipping)} tensor(s) clip more than {clip_share:.0%} of their values: {_names(clipping)} "
                     f"('{clipping[0]}' clips {worst.clipped_fraction:.1%} at amax {worst.amax:.4g}, "
                     f"max |x| {worst.amax_by_method.get('minmax', math.nan):.4g}).")
    if disagreeing:
        spread = {t: max(out[t].amax_by_method.values()) / max(min(out[t].amax_by_method.values()), 1e-30)
                  for t in disagreeing}
        disagreeing.sort(key=lambda t: -spread[t])
        t = disagreeing[0]
        by = out[t].amax_by_method
        lo, hi = min(by, key=by.get), max(by, key=by.get)
        notes.append(f"{len(disagreeing)} tensor(s) whose range methods disagree by more than {ratio:g}x: "
                     f"{_names(disagreeing)} ('{t}': {lo} {by[lo]:.4g} vs {hi} {by[hi]:.4g}).")
    return replace(ranges, tensors=out, notes=list(ranges.notes) + notes), notes


def score_methods(scorer: PlanScorer, plan, ranges, tensors: list) -> dict:
    """method -> score row with every one of ``tensors`` at that histogram method's amax."""
    flags = scorer.flags(plan)
    out = {}
    for m in registry.histogram_methods():
        amax = {t: ranges[t].amax_by_method[m] for t in tensors}
        out[m] = scorer.score_flags({**flags, "wb_scale": scorer.switch.scales(ranges, {**plan.amax_overrides, **amax})})
    return out


def guard_forced_method(method: str, method_scores: dict, ranges, *, loss_db: float = LOSS_DB, tensors=None) -> tuple:
    """(ranges with ``method_loses`` flags, warnings) when ``method``'s output SQNR is more than
    ``loss_db`` below min-max's; names the tensors ``method`` clips hardest relative to min-max."""
    if method not in method_scores or "minmax" not in method_scores or method == "minmax":
        return ranges, []
    ours, mm = method_scores[method]["sqnr_db"], method_scores["minmax"]["sqnr_db"]
    if not (mm - ours > loss_db):
        return ranges, []
    tensors = list(ranges.tensors) if tensors is None else tensors
    ratio = {t: ranges[t].amax_by_method["minmax"] / max(ranges[t].amax_by_method[method], 1e-30) for t in tensors}
    culprits = sorted((t for t in tensors if ratio[t] > 1.5), key=lambda t: -ratio[t])
    out = dict(ranges.tensors)
    for t in culprits:
        out[t] = replace(out[t], flags=tuple(dict.fromkeys(out[t].flags + ("method_loses",))))
    worst = f" ('{culprits[0]}': amax {ranges[culprits[0]].amax_by_method[method]:.4g} vs min-max " \
            f"{ranges[culprits[0]].amax_by_method['minmax']:.4g})" if culprits else ""
    note = (f"--method {method} gives output SQNR {ours:.1f} dB, {mm - ours:.1f} dB below min-max's {mm:.1f} dB; "
            f"it clips hardest on {_names(culprits) if culprits else 'no tensor in particular'}{worst}. "
            "Use the default method (auto) or check these tensors.")
    return replace(ranges, tensors=out, notes=list(ranges.notes) + [note]), [note]


def range_sensitivity(evaluator, ranges, plan=None, *, samples: int | None = 16, compare: str = "minmax",
                      progress=None, cancel=None):
    """Rank INT8 input tensors by what their threshold costs at the network's output.

    For each tensor read with Q/DQ by an INT8 node of ``plan``: the output SQNR with the ranges
    as they are (``sqnr_db``), with only that tensor left in float (``sqnr_float_db``) and with
    only that tensor at the ``compare`` method's amax (``sqnr_<compare>_db``). ``cost_db`` =
    float - chosen (what quantizing it at its amax costs), ``<compare>_cost_db`` likewise.
    Sorted by ``cost_db``, largest first, with a ``sentence`` for the app.

    Cancelling (``cancel``) raises Cancelled; rows done so far are in its ``partial``.
    """
    import pandas as pd

    from ..precision.plan import PrecisionPlan

    started = time.perf_counter()
    plan = plan if plan is not None else PrecisionPlan.default(evaluator.model)
    scorer = PlanScorer(evaluator, ranges, samples, plan)
    sm = scorer.switch
    flags = scorer.flags(plan)
    tensors = [t for t in sm.int8_inputs(flags["wb_int8"]) if t in ranges]
    if not tensors:
        raise WorkbenchError("The plan has no INT8 node reading a calibrated tensor: no range to explain.")
    overrides = dict(plan.amax_overrides)
    base = scorer.score_flags(flags)
    total = 2 * len(tensors)
    rows, done = [], 0
    for t in tensors:
        if cancelled(cancel):
            err = Cancelled(f"Range sensitivity cancelled after {len(rows)} of {len(tensors)} tensors.")
            err.partial = _table(rows, base, compare, started)
            raise err
        on = flags["wb_tensor_on"].copy()
        on[sm.tensor_index[t]] = False
        off = scorer.score_scales(flags, flags["wb_scale"], on)
        amax = float(overrides.get(t, ranges[t].amax))
        other = float(ranges[t].amax_by_method.get(compare, amax))
        alt = base if math.isclose(other, amax, rel_tol=1e-6) else \
            scorer.score_scales(flags, sm.scales(ranges, {**overrides, t: other}))
        done += 2
        if progress is not None:
            progress(done, total)
        rows.append({"tensor": t, "chosen": ranges[t].chosen or ranges.method, "amax": amax,
                     f"{compare}_amax": other, "clipped_fraction": ranges[t].clipped_fraction,
                     "sqnr_db": base["sqnr_db"], "sqnr_float_db": off["sqnr_db"], f"sqnr_{compare}_db": alt["sqnr_db"],
                     "flags": ",".join(ranges[t].flags)})
    return _table(rows, base, compare, started, pd)


def _table(rows: list, base: dict, compare: str, started: float, pd=None):
    if pd is None:
        import pandas as pd
    df = pd.DataFrame(rows)
    if len(df):
        df["cost_db"] = df["sqnr_float_db"] - df["sqnr_db"]
        df[f"{compare}_cost_db"] = df["sqnr_float_db"] - df[f"sqnr_{compare}_db"]
        df["sentence"] = [_sentence(r, compare) for r in df.to_dict("records")]
        df = df.sort_values("cost_db", ascending=False).reset_index(drop=True)
        df["rank"] = range(1, len(df) + 1)
    df.attrs.update(baseline=base, seconds=time.perf_counter() - started, compare=compare)
    return df


def _db(x: float) -> str:
    return "0.0" if abs(x) < 0.05 else f"{x:.1f}"


def _sentence(r: dict, compare: str) -> str:
    cost, other = r["cost_db"], r[f"{compare}_cost_db"]
    what = "clipping here" if r["amax"] < r[f"{compare}_amax"] * 0.999 else "quantizing here"
    text = f"{what} at {r['amax']:.4g} costs {_db(cost)} dB at the output"
    if not math.isclose(r["amax"], r[f"{compare}_amax"], rel_tol=1e-3):
        name = "min-max" if compare == "minmax" else compare
        text += f"; {name} ({r[f'{compare}_amax']:.4g}) would cost {_db(other)} dB"
    return text


__all__ = ["CLIP_SHARE", "DISAGREE_RATIO", "LOSS_DB", "check_ranges", "guard_forced_method", "range_sensitivity",
           "score_methods"]
