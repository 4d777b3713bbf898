"""Per-node sensitivity and automatic mixed precision, on the switchable emulation model.

Both evaluate many plans, so they run :class:`~workbench.evaluate.emulate.SwitchableModel` (one session,
plans as feeds) against the FP32 outputs the :class:`~workbench.evaluate.Evaluator` already has,
through :class:`~workbench.search.scoring.PlanScorer` (re-exported here).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import Cancelled, WorkbenchError
from ..evaluate.metrics import Target
from .scoring import PlanScorer, cancelled


_cancelled = cancelled  # the name the functions below use


def _all_fp32(plan, nodes):
    p = plan.copy()
    for n in nodes:
        if str(p.precision(n)) != "fp32":
            p.set_node(n, "fp32", reason="auto")
    return p


def rank_rows(rows: list, baseline: dict | None = None, samples: int | None = None):
    """The sensitivity DataFrame of ``rows`` (one dict per node, as :func:`sensitivity` makes
    them), most sensitive first, with ``rank``; also used for a partial (cancelled) run."""
    import pandas as pd

    cols = ["node", "op_type", "sqnr_only_int8", "cosine_only_int8", "top1_only_int8", "sqnr_gain_fp16",
            "top1_gain_fp16"]
    df = pd.DataFrame(rows, columns=cols if not rows else None)
    # Most sensitive first: lowest SQNR when alone in INT8; ties broken by the FP16 gain.
    df = df.sort_values(["sqnr_only_int8", "sqnr_gain_fp16"], ascending=[True, False]).reset_index(drop=True)
    df["rank"] = np.arange(1, len(df) + 1)
    df.attrs["baseline"] = baseline or {}
    df.attrs["samples"] = samples
    return df


def sensitivity(evaluator, ranges, plan, *, samples: int | None = 16, progress=None, cancel=None,
                partial: list | None = None):
    """Rank the plan's INT8 nodes by how much error each one brings.

    For each INT8 node: the output error when ONLY that node is INT8 (everything else FP32),
    and the gain when only that node goes back to FP16 (everything else as in ``plan``).

    Args:
        evaluator: an Evaluator (its FP32 outputs are reused).
        ranges: calibrated ranges.
        plan: the current PrecisionPlan (only its INT8 nodes are ranked).
        samples: evaluation samples used per score (default 16; None for all).
        progress: optional callback ``(done, total)``.
        cancel: a threading.Event (or callable) that stops the run with Cancelled.
        partial: a list that receives each node's row as soon as it is scored (so a caller
            can show the ranking fill in, and keep it when the run is cancelled: see
            :func:`rank_rows`).

    Returns: a DataFrame sorted most sensitive first with columns node, op_type,
        sqnr_only_int8, cosine_only_int8, top1_only_int8, sqnr_gain_fp16, top1_gain_fp16, rank.
    """
    scorer = PlanScorer(evaluator, ranges, samples, plan)
    nodes = [n for n in plan.int8_nodes() if n in scorer.switch.index]
    if not nodes:
        raise WorkbenchError("The plan has no INT8 node to rank.")
    base = scorer.score(plan)
    quiet = _all_fp32(plan, scorer.switch.index)
    rows = partial if partial is not None else []
    for i, node in enumerate(nodes):
        if _cancelled(cancel):
            raise Cancelled(f"Sensitivity analysis cancelled after {i} of {len(nodes)} nodes.")
        only = quiet.copy()
        only.set_node(node, "int8", reason="auto")
        s_only = scorer.score(only)
        back = plan.copy()
        back.set_node(node, "fp16" if back.can_run(node, "fp16") else "fp32", reason="auto")
        s_back = scorer.score(back)
        rows.append({
            "node": node, "op_type": plan[node].op_type,
            "sqnr_only_int8": s_only["sqnr_db"], "cosine_only_int8": s_only["cosine"],
            "top1_only_int8": s_only.get("top1_agreement", math.nan),
            "sqnr_gain_fp16": s_back["sqnr_db"] - base["sqnr_db"],
            "top1_gain_fp16": s_back.get("top1_agreement", math.nan) - base.get("top1_agreement", math.nan),
        })
        if progress is not None:
            progress(i + 1, len(nodes))
    df = rank_rows(rows, base, scorer.num_samples)
    df.attrs["evaluations"], df.attrs["run_seconds"] = scorer.calls, scorer.run_seconds
    return df


@dataclass
class AutoResult:
    """The outcome of :func:`auto_mixed_precision`.

    Attributes:
        plan: the chosen plan (fallback nodes carry reason "auto").
        met: whether the target was reached.
        curve: DataFrame, one row per evaluated fallback count: n_fallback, n_int8, the metrics,
            ``meets_target`` and (when measured) ``latency_ms_b1`` of the ONNX Runtime CPU model.
        fallback: the nodes moved out of INT8, most sensitive first.
        sensitivity: the ranking used.
        seconds: wall time.
    """

    plan: object
    met: bool
    curve: object
    fallback: list
    sensitivity: object
    target: Target
    seconds: float = 0.0
    evaluations: int = 0
    run_seconds: float = 0.0
    notes: list = field(default_factory=list)


def auto_mixed_precision(evaluator, ranges, plan, target="top1>=0.99", *, ranking=None,
                         sensitivity_samples: int | None = 16, fallback_precision: str = "fp16",
                         latency_points: int = 0, progress=None, cancel=None) -> AutoResult:
    """Move the most sensitive INT8 nodes to FP16 until ``target`` is met on all eval samples.

    Search: rank nodes (:func:`sensitivity` unless ``ranking`` is given); evaluate falling back
    the k most sensitive nodes for k in a sweep (0, 1, 2, 4, ... K); bisect between the last
    failing and the first meeting sweep point for the smallest such k; then try to return each
    of those k nodes to INT8 (least sensitive first) while the target still holds. The curve
    records every k evaluated.

    Args:
        target: a :class:`~workbench.evaluate.metrics.Target` or its text, e.g. "top1>=0.99", "sqnr>=30".
        ranking: a DataFrame from :func:`sensitivity` to reuse.
        fallback_precision: "fp16" (default) or "fp32" for the nodes taken out of INT8.
        latency_points: measure ONNX Runtime CPU latency of the exported "ort" model at this many
            curve points (0: none; each costs a model build and ~1 s).
    """
    import pandas as pd

    started = time.perf_counter()
    target = target if isinstance(target, Target) else Target(target)
    offset = 0  # progress counts ranked nodes (when ranking here), then scored plans
    if ranking is None:
        ranking = sensitivity(evaluator, ranges, plan, samples=sensitivity_samples, cancel=cancel,
                              progress=(lambda d, t: progress(d, t + search_estimate(t))) if progress else None)
        offset = len(ranking)
    order = list(ranking["node"])
    scorer = PlanScorer(evaluator, ranges, None, plan)
    results: dict[int, dict] = {}
    K = len(order)
    estimate = [search_estimate(K)]  # plans this search will score (refined once the count is known)

    def report() -> None:
        if progress is not None:
            progress(offset + scorer.calls, offset + max(estimate[0], scorer.calls))

    def plan_for(fallback: list):
        p = plan.copy()
        for n in fallback:
            prec = fallback_precision if p.can_run(n, fallback_precision) else "fp32"
            p.set_node(n, prec, reason="auto")
        return p

    def evaluate(k: int) -> dict:
        if k not in results:
            if _cancelled(cancel):
                raise Cancelled("Automatic mixed-precision search cancelled.")
            s = scorer.score(plan_for(order[:k]))
            s["meets_target"] = target.met(s)
            results[k] = s
            report()
        return results[k]

    # A coarse sweep first: accuracy on a few dozen samples is not monotone in k (top-1 moves in
    # steps of one sample), so a plain bisection over [0, K] can miss a small k that already
    # meets the target. Bisect only between the last failing and the first meeting sweep point.
    sweep = _sweep(K)
    meeting = [k for k in sweep if evaluate(k)["meets_target"]]
    if not meeting:
        chosen = order
    elif meeting[0] == 0:
        chosen = []
    else:
        hi = meeting[0]
        lo = max(k for k in sweep if k < hi)  # fails: hi is the first sweep point that meets
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if evaluate(mid)["meets_target"]:
                hi = mid
            else:
                lo = mid
        chosen = order[:hi]
    # Refine: return fallback nodes to INT8 (least sensitive first) while the target holds.
    estimate[0] = scorer.calls + len(chosen) + 1
    for node in list(reversed(chosen)):
        if _cancelled(cancel):
            raise Cancelled("Automatic mixed-precision search cancelled.")
        trial = [n for n in chosen if n != node]
        s = scorer.score(plan_for(trial))
        report()
        if target.met(s):
            chosen = trial
    final_plan = plan_for(chosen)
    final = scorer.score(final_plan)
    estimate[0] = scorer.calls
    report()
    met = target.met(final)
    rows = []
    for k, s in sorted(results.items()):
        rows.append({"n_fallback": k, "n_int8": len(plan.int8_nodes()) - k, **s,
                     "plan": f"the {k} most sensitive node(s) out of INT8" if k else "every ranked node INT8",
                     "nodes": ", ".join(order[:k])})
    rows.append({"n_fallback": len(chosen), "n_int8": len(final_plan.int8_nodes()), **final,
                 "plan": (f"chosen: the {len(chosen)} most sensitive node(s) out of INT8"
                          if chosen == order[:len(chosen)] else
                          "chosen: refined set (fallback nodes that did not help went back to INT8)"),
                 "nodes": ", ".join(chosen),
                 "meets_target": met, "chosen": True})
    curve = pd.DataFrame(rows)
    curve["chosen"] = curve.get("chosen", False)
    curve["chosen"] = curve["chosen"].fillna(False).astype(bool)
    if latency_points:
        _add_latency(evaluator, ranges, plan_for, order, curve, latency_points, chosen)
    ranked_here = ranking.attrs.get("run_seconds", 0.0) if offset else 0.0
    return AutoResult(final_plan, met, curve, chosen, ranking, target,
                      time.perf_counter() - started, scorer.calls, scorer.run_seconds + ranked_here)


def _sweep(k_max: int) -> list:
    """Fallback counts of the coarse sweep of :func:`auto_mixed_precision`."""
    return sorted(k for k in {0, 1, 2, 4, 8, 16, 32, k_max} if k <= k_max)


def search_estimate(k_max: int) -> int:
    """Plans the search scores at most before refining: sweep + bisection + final."""
    return len(_sweep(k_max)) + max(1, math.ceil(math.log2(max(k_max, 2)))) + 1


def _add_latency(evaluator, ranges, plan_for, order, curve, points: int, chosen: list) -> None:
    """Measure ONNX Runtime CPU latency (batch 1) of the exported "ort" model at a few curve rows."""
    from ..export import build_quantized

    ks = sorted(set(curve["n_fallback"]))
    picks = set(ks[:: max(1, len(ks) // points)][:points]) | {len(chosen)}
    lat = {}
    for k in sorted(picks):
        fallback = order[:k] if k != len(chosen) else chosen
        proto = build_quantized(evaluator.model, ranges, plan_for(fallback), variant="ort")
        lat[k] = evaluator.measure_latency(proto, (1,), repeat=10)[1].median_ms
    curve["latency_ms_b1"] = [lat.get(k, math.nan) for k in curve["n_fallback"]]
