"""Views of a session's state for tables and plots: the layer table, histogram data, history,
graph facts, whether the last build is out of date, and the preview of a threshold being tried
(plain DataFrames and dicts, the model that widgets and plots read; no widget code)."""
from __future__ import annotations

import math
import time

import numpy as np

from ..errors import WorkbenchError
from .state import Event

#: evaluation samples of the first live-threshold preview run (an emulation run per update)
PREVIEW_SAMPLES = 2
#: seconds one preview run may take (the app's budget is 0.3 s per update)
PREVIEW_BUDGET_S = 0.22


def histogram_sqnr_db(hist, bin_width: float, amax: float, *, zero_count: int = 0, num_bits: int = 8) -> float:
    """SQNR in dB of a tensor quantized symmetrically with threshold ``amax``, estimated from
    its |x| histogram (each value at its bin centre; ``zero_count`` exact zeros of bin 0 are
    exact after quantization). Rounding inside [0, amax] and clipping above both count."""
    h = np.asarray(hist, dtype=np.float64).copy()
    if h.size == 0 or not bin_width or amax <= 0:
        return math.nan
    h[0] = max(h[0] - zero_count, 0.0)
    centres = (np.arange(h.size) + 0.5) * float(bin_width)
    qmax = (1 << (num_bits - 1)) - 1
    scale = float(amax) / qmax
    deq = np.minimum(np.round(centres / scale), qmax) * scale
    signal = float(np.sum(h * centres ** 2))
    noise = float(np.sum(h * (centres - deq) ** 2))
    if signal <= 0:
        return math.nan
    return math.inf if noise <= 0 else 10.0 * math.log10(signal / noise)


class ViewsMixin:
    """Part of :class:`workbench.session.Session`: read-only views of its state."""

    def _targets(self) -> dict:
        st = self.state
        if st.target_cache is None or st.target_cache[0] is not self.model_info:
            st.target_cache = (self.model_info, {t.node: t for t in self._need_model().quantizable_nodes()})
        return st.target_cache[1]

    def tensor_of(self, node: str) -> str | None:
        """The activation tensor whose range the node's INT8 input uses (its first activation input)."""
        t = self._targets().get(node)
        return t.activation_inputs[0] if t and t.activation_inputs else None

    def layer_table(self):
        """One row per quantizable node: node, op_type, tensor, amax of each method, chosen amax
        and scale, clipped share, per-layer SQNR (last build), sensitivity rank, precision; after
        :meth:`improve` kept weight rounding or bias correction, also ``weight_sqnr_nearest`` /
        ``weight_sqnr_rounded`` (dB, weight vs its INT8 values) and ``bias_shift`` (largest |shift|)."""
        import pandas as pd
        from ..calib.algorithms import METHODS

        ranges = self.ranges
        last = self.history[-1].per_layer if self.history else None
        sqnr = dict(zip(last["node"], last["sqnr_db"])) if last is not None and len(last) else {}
        sens = {}
        if self.sensitivity_table is not None:
            sens = dict(zip(self.sensitivity_table["node"], self.sensitivity_table["rank"]))
        cost = self._range_costs()
        steps = self.improvement.layer_details() if self.improvement is not None else {}
        step_cols = sorted({k for d in steps.values() for k in d})
        rows = []
        for node, t in self._targets().items():
            tensor = t.activation_inputs[0] if t.activation_inputs else None
            r = ranges.get(tensor) if ranges is not None and tensor else None
            row = {"node": node, "op_type": t.op_type, "tensor": tensor}
            for m in METHODS:
                row[f"amax_{m}"] = r.amax_by_method.get(m) if r else None
            if self.imported is not None:  # a Q/DQ model's own threshold
                row["amax_model"] = self.model_thresholds().get(tensor)
            row.update({"amax": r.amax if r else None, "scale": r.scale if r else None,
                        "manual": bool(r.override) if r else False,
                        "clipped_pct": 100 * self._clipped(tensor, r.amax) if r else None,
                        "sqnr_db": sqnr.get(node), "sensitivity_rank": sens.get(node),
                        "range_sensitivity": cost.get(tensor, {}).get("cost_db"),
                        "precision": str(self.plan.precision(node)).upper() if self.plan else None})
            row.update({k: steps.get(node, {}).get(k) for k in step_cols})
            rows.append(row)
        return pd.DataFrame(rows)

    def _range_costs(self) -> dict:
        """tensor -> row of the range sensitivity (``explain_ranges``): cost_db, sentence, ..."""
        table = self.range_sensitivity
        if table is None or not len(table) or "tensor" not in table.columns:
            return {}
        return {r["tensor"]: r for r in table.to_dict("records")}

    def _clipped(self, tensor: str, amax: float) -> float:
        from ..calib.algorithms import clipped_fraction

        c = self.stats.collectors.get(tensor) if self.stats else None
        return clipped_fraction(c.hist, c.bin_width, amax) if c is not None and c.bin_width else 0.0

    def histogram(self, node_or_tensor: str | None = None) -> dict:
        """Data for the histogram view of a node's input tensor (default: the selected node).

        Returns a dict: node, tensor, hist, bin_width, amax_by_method, chosen (amax in use),
        manual (override or None), clipped (share above chosen), max (max |x|), flags (the collapse
        guards' flags of the calibrated range) and calibrated_clipped (share above the calibrated amax).
        """
        name = node_or_tensor or self.selected
        if name is None:
            raise WorkbenchError("No layer selected.")
        tensor = self.tensor_of(name) or name
        self._need_statistics(tensor, name)
        c = self.stats.collectors[tensor]
        base = self.base_ranges[tensor]
        manual = self.plan.amax_overrides.get(tensor) if self.plan else None
        chosen = manual if manual is not None else base.amax
        return {"node": name if name != tensor else None, "tensor": tensor, "hist": c.hist,
                "bin_width": c.bin_width, "amax_by_method": dict(base.amax_by_method),
                "chosen": chosen, "manual": manual, "clipped": self._clipped(tensor, chosen),
                "max": float(c.absmax), "method": self.calib_settings.method, "flags": list(base.flags),
                "calibrated_clipped": self._clipped(tensor, base.amax),
                "count": int(c.count), "zero_count": int(getattr(c, "zero_count", 0)),
                "tensor_sqnr_db": histogram_sqnr_db(c.hist, c.bin_width, chosen,
                                                    zero_count=int(getattr(c, "zero_count", 0))),
                "range_sentence": self._range_costs().get(tensor, {}).get("sentence")}

    def _need_statistics(self, tensor: str, name: str | None = None) -> None:
        if self.stats is None:
            raise WorkbenchError(f"No statistics for tensor '{tensor}': calibrate first.")
        if tensor not in self.stats.collectors:
            who = f" (the input of {name})" if name and name != tensor else ""
            raise WorkbenchError(f"Tensor '{tensor}'{who} was not observed during calibration: the collection "
                                 "observes the inputs of the nodes that are INT8 by default and the outputs.")

    def history_table(self):
        """The build history as a DataFrame (one row per build)."""
        import pandas as pd

        return pd.DataFrame([b.row() for b in self.history])

    # ------------------------------------------------------------------ is the last build current?
    def staleness(self) -> list:
        """Why the last build's numbers no longer describe the current plan and ranges (plain
        sentences; empty when they do, or when there is no build)."""
        if not self.history or self.plan is None:
            return []
        last = self.history[-1]
        reasons = []
        d = last.plan.diff(self.plan)
        if d.nodes:
            moves = [f"{n} {str(a).upper()} → {str(b).upper()}" for n, a, b in d.nodes]
            reasons.append(f"precision of {len(moves)} node(s) changed: " + ", ".join(moves[:3])
                           + (", …" if len(moves) > 3 else ""))
        if d.amax:
            names = [t for t, _, _ in d.amax]
            reasons.append(f"threshold of {len(names)} tensor(s) changed: " + ", ".join(names[:3])
                           + (", …" if len(names) > 3 else ""))
        if last.method != self.calib_settings.method:
            reasons.append(f"range method changed: {last.method} → {self.calib_settings.method}")
        elif self.ranges_changed_since_build():
            reasons.append("ranges were recomputed (new calibration or method parameter)")
        return reasons

    def ranges_changed_since_build(self) -> bool:
        """Whether the calibrated amax differ from those the last build used."""
        built = self.state.built_amax
        return bool(self.history) and built is not None and built != self._amax_snapshot()

    def _amax_snapshot(self) -> dict:
        r = self.base_ranges
        return {t: float(v.amax) for t, v in r.tensors.items()} if r is not None else {}

    def _track_versions(self, event) -> None:
        """Called on every event: counts range changes (preview cache) and remembers the
        ranges the last build used (staleness)."""
        if event == Event.RANGES:
            self.state.ranges_version += 1
        elif event == Event.BUILD:
            self.state.built_amax = self._amax_snapshot()

    # ------------------------------------------------------------------ graph facts
    def graph_view(self) -> dict:
        """What the graph view colours and marks, per node of the model: precision (plan),
        per-layer SQNR (last build), sensitivity (SQNR with only that node INT8), range
        sensitivity (output dB its input's threshold costs, after ``explain_ranges``), the tensors
        that get a Q/DQ pair on each node's inputs (the exporter's decision) and the producer
        of each tensor."""
        info = self._need_model()
        plan = self.plan
        out = {"quantizable": set(self._targets()), "precision": {}, "sqnr": {}, "sensitivity": {},
               "qdq": {}, "producer": {}}
        for n in info.nodes:
            for t in n.output:
                if t:
                    out["producer"][t] = n.name
        if plan is not None:
            out["precision"] = {n: str(plan.precision(n)).upper() for n in plan.nodes}
            if plan.int8_nodes():
                from ..export import qdq_placement

                out["qdq"] = qdq_placement(info, plan, "trt")
        if self.history and self.history[-1].per_layer is not None:
            pl = self.history[-1].per_layer
            out["sqnr"] = {n: float(v) for n, v in zip(pl["node"], pl["sqnr_db"])}
        if self.sensitivity_table is not None and "sqnr_only_int8" in self.sensitivity_table:
            t = self.sensitivity_table
            out["sensitivity"] = {n: float(v) for n, v in zip(t["node"], t["sqnr_only_int8"])}
        costs = self._range_costs()
        out["range"] = {n: float(costs[self.tensor_of(n)]["cost_db"]) for n in self._targets()
                        if self.tensor_of(n) in costs}
        return out

    # ------------------------------------------------------------------ live threshold preview
    def _qdq_tensors(self) -> set:
        """Tensors that get a Q/DQ pair under the current plan (the exporter's decision; cached
        per plan: plans are replaced, never changed, by the session)."""
        cached = self.state.qdq_cache
        if cached is None or cached[0] is not self.plan:
            qdq = set()
            if self.plan is not None and self.plan.int8_nodes():
                from ..export import qdq_placement

                qdq = {t for ts in qdq_placement(self._need_model(), self.plan, "trt").values() for t in ts}
            cached = self.state.qdq_cache = (self.plan, qdq)
        return cached[1]

    def _preview_scorer(self, samples: int):
        """A PlanScorer on the first ``samples`` evaluation samples for the current ranges
        (rebuilt when the ranges or the kind of emulation change)."""
        from ..evaluate.emulate import needs_all_fp16
        from ..search.sensitivity import PlanScorer

        key = (self.state.ranges_version, samples, bool(needs_all_fp16(self.plan, self._targets())))
        cache = self.state.preview_cache
        if cache is None or cache[0] != key or cache[1].evaluator is not self.evaluator:
            cache = (key, PlanScorer(self.evaluator, self.base_ranges, samples, self.plan), None)
            self.state.preview_cache = cache
        return cache[1]

    def preview_samples(self, budget_s: float = PREVIEW_BUDGET_S, most: int = 8) -> int:
        """How many evaluation samples one preview run can use within ``budget_s`` seconds,
        from the time per sample of the runs so far (PREVIEW_SAMPLES before the first)."""
        per = self.state.preview_seconds_per_sample
        if not per:
            return PREVIEW_SAMPLES
        return int(max(1, min(most, budget_s // per)))

    def preview_amax(self, tensor: str, amax: float, *, emulate: bool = True,
                     samples: int | None = None) -> dict:
        """What setting ``tensor``'s threshold to ``amax`` would do, before committing it.

        Args:
            tensor: a tensor with statistics, or a quantizable node (its input tensor).
            amax: the threshold to try (> 0).
            emulate: also run the switchable emulation model once (the rest of the plan as
                it is, only this threshold changed) on ``samples`` evaluation samples and
                compare the output with the current threshold's (default True).
            samples: evaluation samples of that run (default: as many as fit in
                ``PREVIEW_BUDGET_S`` seconds by the timing of earlier runs, at most 8; 2 on the
                sample with two shared cores). Few samples give a rough number: the output
                SQNR moves by a few tenths of a dB with the rounding of one tensor alone.

        Returns a dict: tensor, amax, current (threshold in use), clipped / clipped_now
        (shares of values above), tensor_sqnr_db / tensor_sqnr_now (the tensor's own
        quantization SQNR, from its histogram), in_use (an INT8 node reads it with Q/DQ),
        output_sqnr_db / output_sqnr_now / output_delta_db (first output vs FP32 on the
        samples; None without emulation or when the threshold is not in use), samples,
        seconds.
        """
        from ..calib.amax import check_amax
        from ..calib.algorithms import clipped_fraction
        from ..evaluate.metrics import compare_outputs

        started = time.perf_counter()
        node, tensor = tensor, self.tensor_of(tensor) or tensor
        self._need_statistics(tensor, node)
        amax = check_amax(tensor, amax)
        c = self.stats.collectors[tensor]
        now = float(self.ranges[tensor].amax)
        zeros = int(getattr(c, "zero_count", 0))
        out = {"tensor": tensor, "amax": amax, "current": now,
               "clipped": clipped_fraction(c.hist, c.bin_width, amax) if c.bin_width else 0.0,
               "clipped_now": clipped_fraction(c.hist, c.bin_width, now) if c.bin_width else 0.0,
               "tensor_sqnr_db": histogram_sqnr_db(c.hist, c.bin_width, amax, zero_count=zeros),
               "tensor_sqnr_now": histogram_sqnr_db(c.hist, c.bin_width, now, zero_count=zeros),
               "in_use": False, "output_sqnr_db": None, "output_sqnr_now": None, "output_delta_db": None,
               "samples": 0}
        out["in_use"] = tensor in self._qdq_tensors()
        if emulate and out["in_use"]:
            samples = samples or self.preview_samples()
            scorer = self._preview_scorer(samples)
            key, _, base = self.state.preview_cache
            if base is None or base[0] is not self.plan:
                base = (self.plan, scorer.score(self.plan)["sqnr_db"])
                self.state.preview_cache = (key, scorer, base)
            sw = scorer.switch
            t_run = time.perf_counter()
            got = sw.run(scorer.batches, sw.flags(self.plan, scorer.ranges, {tensor: amax}), [scorer.output])
            self.state.preview_seconds_per_sample = (time.perf_counter() - t_run) / max(scorer.num_samples, 1)
            trial = compare_outputs(scorer.reference, got[scorer.output])["sqnr_db"]
            out.update(output_sqnr_db=float(trial), output_sqnr_now=float(base[1]),
                       output_delta_db=float(trial - base[1]), samples=scorer.num_samples)
        out["seconds"] = time.perf_counter() - started
        return out
