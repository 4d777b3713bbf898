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
                partial: list | None = None, executor=None):
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
        executor: where the rows are scored (:mod:`workbench.search.executor`; default here).
            The ranking is the same whichever runs them.

    Returns: a DataFrame sorted most sensitive first with columns node, op_type,
        sqnr_only_int8, cosine_only_int8, top1_only_int8, sqnr_gain_fp16, top1_gain_fp16, rank.
    """
    from ..validate import check_positive_int

    check_positive_int(samples, "sensitivity(samples=...), the evaluation samples per score", allow_none=True)
    scorer = PlanScorer(evaluator, ranges, samples, plan, executor=executor)
    nodes = [n for n in plan.int8_nodes() if n in scorer.switch.index]
    if not nodes:
        raise WorkbenchError("The plan has no INT8 node to rank.")
    base = scorer.score(plan)
    quiet = _all_fp32(plan, scorer.switch.index)
    rows = partial if partial is not None else []
    configs, labels = [], []
    for node in nodes:  # two independent evaluations per node
        only = quiet.copy()
        only.set_node(node, "int8", reason="auto")
        back = plan.copy()
        back.set_node(node, "fp16" if back.can_run(node, "fp16") else "fp32", reason="auto")
        configs += [scorer.flags(only), scorer.flags(back)]
        labels += [f"{node} alone in INT8", f"{node} back to FP16"]
    got: dict = {}

    def on_row(i: int, row: dict) -> None:
        got[i] = row
        k = i // 2
        if 2 * k in got and 2 * k + 1 in got:  # both of this node's rows are in
            node, s_only, s_back = nodes[k], got[2 * k], got[2 * k + 1]
            rows.append({
                "node": node, "op_type": plan[node].op_type,
                "sqnr_only_int8": s_only["sqnr_db"], "cosine_only_int8": s_only["cosine"],
                "top1_only_int8": s_only.get("top1_agreement", math.nan),
                "sqnr_gain_fp16": s_back["sqnr_db"] - base["sqnr_db"],
                "top1_gain_fp16": s_back.get("top1_agreement", math.nan) - base.get("top1_agreement", math.nan),
            })
            if progress is not None:
                progress(len(rows), len(nodes))

    try:
        scorer.score_many(configs, on_row, cancel, labels)
    except Cancelled:
        raise Cancelled(f"Sensitivity analysis cancelled after {len(rows)} of {len(nodes)} nodes.") from None
    order = {n: i for i, n in enumerate(nodes)}  # one order whichever executor filled the list
    rows.sort(key=lambda r: order[r["node"]])
    df = rank_rows(rows, base, scorer.num_samples)
    df.attrs["evaluations"], df.attrs["run_seconds"] = scorer.calls, scorer.run_seconds
    df.attrs["reruns"] = list(scorer.executor.reruns)
    return df


@dataclass
class AutoResult:
    """The outcome of :func:`auto_mixed_precision`.

    Attributes:
        plan: the chosen plan (fallback nodes carry reason "auto").
        met: whether the target holds **on the written TensorRT file** (``file``), on every
            evaluation sample with exact ONNX semantics (the emulation's verdict when the file
            was not checked, ``check_file=False``).
        file: the :class:`~workbench.search.file_check.FileCheck` of the chosen plan's file.
        emulated_met: whether the target held on the emulation, on the samples chosen on.
        curve: DataFrame, one row per evaluated fallback count: n_fallback, n_int8, the metrics,
            ``meets_target``, ``measured_on`` (emulation on the search samples, or the written
            file on every sample) and (when measured) ``latency_ms_b1`` of the ONNX Runtime CPU model.
        fallback: the nodes moved out of INT8, most sensitive first.
        sensitivity: the ranking used.
        search_samples / unseen_samples: samples the search chose on / kept out of the choice.
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
    file: object = None
    emulated_met: bool = False
    search_samples: int = 0
    unseen_samples: int = 0
    reruns: list = field(default_factory=list)

    def describe(self) -> str:
        """What was found, and what the written file scores (the claim)."""
        n = len(self.fallback)
        head = f"{n} node(s) out of INT8 ({', '.join(self.fallback) or '-'}), chosen on {self.search_samples} samples."
        if self.file is None:
            return head + (" Target met" if self.met else " Target NOT met") + " on the emulation (file not checked)."
        return head + " " + self.file.describe()


def _meets(target, row: dict) -> bool:
    """The target holds on the samples and on each interleaved fold of them."""
    folds = [f for f in row.get("fold_rows", ()) if target.key in f]  # a user metric has no fold rows
    return target.met(row) and all(target.met(f) for f in folds)


def auto_mixed_precision(evaluator, ranges, plan, target="top1>=0.99", *, ranking=None,
                         sensitivity_samples: int | None = 16, fallback_precision: str = "fp16",
                         latency_points: int = 0, progress=None, cancel=None, check_file: bool = True,
                         executor=None) -> AutoResult:
    """Move the most sensitive INT8 nodes to FP16 until ``target`` is met on the written file.

    Search (on the emulation, :mod:`workbench.evaluate.emulate`): rank nodes (:func:`sensitivity`
    unless ``ranking`` is given); evaluate falling back the k most sensitive nodes for k in a
    sweep (0, 1, 2, 4, ... K); bisect between the last failing and the first meeting sweep point
    for the smallest such k; then try to return each of those k nodes to INT8 (least sensitive
    first) while the target still holds on the samples and on each of two interleaved folds of
    them. With enough evaluation samples (:func:`~workbench.search.file_check.selection_split`)
    every third one is kept out of these choices.

    Claim (:mod:`workbench.search.file_check`): the chosen plan's TensorRT file is built as it
    is written and judged on every evaluation sample with exact ONNX semantics. While it misses
    the target, the next most sensitive nodes go out of INT8 too (1, 2, 4, ... more), each step
    judged on the file again; if every node out of INT8 still misses, ``met`` is False.

    Args:
        target: a :class:`~workbench.evaluate.metrics.Target` or its text, e.g. "top1>=0.99",
            "top1_margin>=0.99" (near-ties count as misses), "sqnr>=30".
        ranking: a DataFrame from :func:`sensitivity` to reuse.
        fallback_precision: "fp16" (default) or "fp32" for the nodes taken out of INT8.
        latency_points: measure ONNX Runtime CPU latency of the exported "ort" model at this many
            curve points (0: none; each costs a model build and ~1 s).
        check_file: judge the result on the written file (default True).
        executor: where independent evaluations run (:mod:`workbench.search.executor`).
    """
    import pandas as pd

    from .file_check import SampleSubset, check_file as judge_file, selection_split

    started = time.perf_counter()
    target = target if isinstance(target, Target) else Target(target)
    split = selection_split(evaluator.num_samples)
    search_set = SampleSubset(evaluator, split[0]) if split is not None else evaluator
    offset = 0  # progress counts ranked nodes (when ranking here), then scored plans
    if ranking is None:
        ranking = sensitivity(search_set, ranges, plan, samples=sensitivity_samples, cancel=cancel,
                              executor=executor,
                              progress=(lambda d, t: progress(d, t + search_estimate(t))) if progress else None)
        offset = len(ranking)
    order = list(ranking["node"])
    scorer = PlanScorer(search_set, ranges, None, plan, folds=2, executor=executor)
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

    # fallback set -> its row: a set met again (the refinement's first trial, the final plan) is not run again
    scored: dict = {}

    def score_set(fallback: list) -> dict:
        key = frozenset(fallback)
        if key not in scored:
            scored[key] = scorer.score(plan_for(fallback))
            report()
        return scored[key]

    def record(k: int, s: dict) -> dict:
        s["meets_target"] = _meets(target, s)
        results[k] = scored[frozenset(order[:k])] = s
        return s

    def evaluate(k: int) -> dict:
        if k not in results:
            if _cancelled(cancel):
                raise Cancelled("Automatic mixed-precision search cancelled.")
            record(k, score_set(order[:k]))
        return results[k]

    # A coarse sweep first (its points are independent: one batch for the executor). Accuracy
    # on a few dozen samples is not monotone in k (top-1 moves in steps of one sample), so a
    # plain bisection over [0, K] can miss a small k that already meets the target. Bisect
    # only between the last failing and the first meeting sweep point.
    sweep = _sweep(K)
    rows = scorer.score_many([scorer.flags(plan_for(order[:k])) for k in sweep],
                             lambda i, r: report(), cancel, [f"{k} node(s) out of INT8" for k in sweep])
    for k, s in zip(sweep, rows):
        record(k, s)
    meeting = [k for k in sweep if results[k]["meets_target"]]
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
        if _meets(target, score_set(trial)):
            chosen = trial
    final_plan = plan_for(chosen)
    final = score_set(chosen)
    estimate[0] = scorer.calls
    report()
    emulated_met = _meets(target, final)
    notes: list = []
    if not offset and split is not None:
        notes.append(f"The sensitivity ranking was given: it was made on its own samples, which may include "
                     f"the {len(split[1])} kept out of this search's choices.")
    curve_rows = []
    where = f"emulation, {scorer.num_samples} search samples"
    for k, s in sorted(results.items()):
        curve_rows.append({"n_fallback": k, "n_int8": len(plan.int8_nodes()) - k, **_plain(s),
                           "plan": f"the {k} most sensitive node(s) out of INT8" if k else "every ranked node INT8",
                           "nodes": ", ".join(order[:k]), "measured_on": where})
    curve_rows.append({"n_fallback": len(chosen), "n_int8": len(final_plan.int8_nodes()), **_plain(final),
                       "plan": (f"chosen: the {len(chosen)} most sensitive node(s) out of INT8"
                                if chosen == order[:len(chosen)] else
                                "chosen: refined set (fallback nodes that did not help went back to INT8)"),
                       "nodes": ", ".join(chosen), "meets_target": emulated_met, "measured_on": where})
    file, met = None, emulated_met
    if check_file:
        file, chosen, final_plan = _until_the_file_meets(
            evaluator, ranges, target, split, order, chosen, plan_for, judge_file, notes, cancel, curve_rows, plan)
        met = file.met
    curve = pd.DataFrame(curve_rows)
    curve["chosen"] = [False] * (len(curve) - 1) + [True]
    if latency_points:
        _add_latency(evaluator, ranges, plan_for, order, curve, latency_points, chosen)
    ranked_here = ranking.attrs.get("run_seconds", 0.0) if offset else 0.0
    return AutoResult(final_plan, met, curve, chosen, ranking, target,
                      time.perf_counter() - started, scorer.calls, scorer.run_seconds + ranked_here, notes,
                      file, emulated_met, scorer.num_samples, 0 if split is None else len(split[1]),
                      list(scorer.executor.reruns))


def _plain(row: dict) -> dict:
    """A score row without its per-fold lists (for the curve table)."""
    return {k: v for k, v in row.items() if k not in ("fold_rows", "fold_sqnr_db")}


def _until_the_file_meets(evaluator, ranges, target, split, order, chosen, plan_for, judge_file, notes,
                          cancel, curve_rows, plan) -> tuple:
    """Judge the chosen plan on its written file; while the file misses, take the next most
    sensitive nodes out of INT8 too (1, 2, 4, ... more) and judge again. Returns (FileCheck,
    fallback, plan)."""
    final_plan = plan_for(chosen)
    file = judge_file(evaluator, ranges, final_plan, target, split)
    rest = [n for n in order if n not in chosen]
    step = 1
    while True:
        curve_rows.append({"n_fallback": len(chosen), "n_int8": len(final_plan.int8_nodes()), **file.summary,
                           "plan": "written TensorRT file", "nodes": ", ".join(chosen),
                           "meets_target": file.met,
                           "measured_on": f"written file, all {file.samples} samples ({file.semantics})"})
        if file.met or not rest:
            break
        if _cancelled(cancel):
            raise Cancelled("Automatic mixed-precision search cancelled while checking the written file.")
        notes.append(f"The written file missed {target.text} with {len(chosen)} node(s) out of INT8 "
                     f"({file.figure()}); taking {min(step, len(rest))} more out of INT8.")
        chosen, rest = chosen + rest[:step], rest[step:]
        step *= 2
        final_plan = plan_for(chosen)
        file = judge_file(evaluator, ranges, final_plan, target, split)
    if not file.met:
        notes.append(f"The written file misses {target.text} even with every ranked node out of INT8 "
                     f"({file.figure()}).")
    return file, chosen, final_plan


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
