"""The amax candidates of ``auto`` ranges, how a candidate's label is read from statistics, and
the refit of chosen ranges on every calibration sample.

A candidate is named by how it is computed from a tensor's statistics, not by its value:
a histogram method of the registry (``mse``), a percentile (``percentile@99.99``) or min-max
scaled (``minmax*0.5``); candidates within 1 % of each other count once under a merged name
(``mse=percentile@99.99``). Because the name says how, a choice made on some samples can be
read again from statistics over more samples (:func:`refit`): when no evaluation data is
given, ``auto`` chooses each tensor's candidate on calibration samples held out from the
statistics, and the chosen candidate is then read from the statistics of every calibration
sample, so no sample is lost to the range (a detector's one page with the largest text
response sets its min-max whether or not it was held out).
"""
from __future__ import annotations

import math
from dataclasses import replace

#: Extra percentiles tried for every tensor.
AUTO_PERCENTILES = (99.9, 99.99, 99.999)
#: Factors of min-max tried for every tensor.
MINMAX_STEPS = (2 ** -0.5, 0.5, 2 ** -1.5, 0.25)
#: Candidates closer than this (relative) are the same candidate.
SAME_AMAX = 0.01


def candidates(stats_collector, by_method: dict, base: str) -> dict:
    """label -> amax of the candidates for one tensor (see the module docstring), the base
    method first."""
    out = {base: by_method[base]}
    out.update({m: a for m, a in by_method.items() if m != base})
    for p in AUTO_PERCENTILES:
        out[f"percentile@{p:g}"] = float(stats_collector.compute_amax("percentile", percentile=p))
    mm = by_method["minmax"]
    for f in MINMAX_STEPS:
        out[f"minmax*{f:.3g}"] = mm * f
    unique: dict = {}
    for label, amax in out.items():
        same = [k for k, a in unique.items() if abs(amax - a) <= SAME_AMAX * max(amax, a)]
        if same:  # one candidate, several names: "mse=percentile"
            unique[same[0] + "=" + label] = unique.pop(same[0])
        else:
            unique[label] = float(amax)
    return unique


def label_of(cands: dict, amax: float, method: str) -> str:
    """The label of ``cands`` (see :func:`candidates`) whose amax is ``amax`` (within
    :data:`SAME_AMAX`), preferring one that names ``method``; ``method`` when none matches."""
    for label, a in cands.items():
        if method in label.split("=") and abs(a - amax) <= SAME_AMAX * max(a, amax):
            return label
    for label, a in cands.items():
        if abs(a - amax) <= SAME_AMAX * max(a, amax):
            return label
    return method


# -- what a search records of a candidate it scored (full row, or dropped after the first fold) --
def half_row(fold0_sqnr: float) -> dict:
    """The row of a trial dropped after the first fold: it ranks below every full row."""
    return {"sqnr_db": -math.inf, "fold_sqnr_db": [fold0_sqnr], "dropped_on_first_fold": True}


def cut_row(row: dict, raced: bool, base_row) -> dict:
    """A raced candidate's full row as its first-fold run leaves it (the same record anywhere)."""
    if raced and not row["fold_sqnr_db"][0] > base_row["fold_sqnr_db"][0]:
        return half_row(row["fold_sqnr_db"][0])
    return row


def row_score(row, objective):
    """The objective's value of a row; None for none or one dropped after the first fold."""
    return objective.value(row) if row and not row.get("dropped_on_first_fold") else None


def candidate_record(amax: float, row, objective) -> dict:
    out = {"amax": amax, "score": row_score(row, objective)}
    if row and row.get("dropped_on_first_fold"):
        out["first_fold_sqnr_db"] = row["fold_sqnr_db"][0]
    return out


def amax_of_label(stats_collector, by_method: dict, label: str) -> float | None:
    """The amax a candidate ``label`` (see :func:`candidates`) gives on ``stats_collector``
    (``by_method``: its histogram methods' amax). A merged label gives the largest of its
    names' values (on more samples they may part; the one clipping least is the safe
    reading). None when no name of the label is a candidate (``manual``, a model's own scale)."""
    values = []
    for name in label.split("="):
        if name in by_method:
            values.append(float(by_method[name]))
        elif name.startswith("percentile@"):
            try:
                p = float(name.partition("@")[2])
            except ValueError:
                continue
            values.append(float(stats_collector.compute_amax("percentile", percentile=p)))
        elif name.startswith("minmax*") and "minmax" in by_method:
            text = name.partition("*")[2]
            exact = {f"{f:.3g}": f for f in MINMAX_STEPS}  # the label rounds the factor
            try:
                values.append(float(by_method["minmax"]) * exact.get(text, float(text)))
            except ValueError:
                continue
    return max(values) if values else None


def refit(ranges, stats, params: dict | None = None):
    """``ranges`` with each tensor's chosen candidate (its ``chosen`` label, else the ranges'
    method) read again from ``stats`` (statistics over more samples: every calibration sample).

    Manual overrides and tensors whose label is not a candidate keep their amax; the choice,
    its reason, scores and flags are kept; min/max, counts and the clipped fraction are those
    of ``stats``. The result's ``search["refit"]`` records the samples read."""
    from ..calib.ranges import compute_ranges

    full = compute_ranges(stats, params=params if params is not None else ranges.params)
    tensors = dict(ranges.tensors)
    for name, r in ranges.tensors.items():
        if r.override or name not in full.tensors:
            continue
        f = full.tensors[name]
        amax = amax_of_label(stats.collectors[name], f.amax_by_method, r.chosen or ranges.method)
        if amax is None or not amax > 0:
            continue
        tensors[name] = replace(f, amax=amax, chosen=r.chosen, reason=r.reason, candidates=r.candidates,
                                flags=r.flags, clipped_fraction=float(stats.collectors[name].clipped_fraction(amax)))
    search = dict(ranges.search or {})
    search["refit"] = {"samples": stats.num_samples, "data": stats.data_description}
    return replace(ranges, tensors=tensors, num_samples=stats.num_samples, data_fingerprint=stats.data_fingerprint,
                   search=search if ranges.search is not None else {"refit": search["refit"]})
