"""Views of a session's state for tables and plots: the layer table, histogram data, history
(plain DataFrames and dicts, the model that widgets and plots read)."""
from __future__ import annotations

from ..errors import WorkbenchError


class ViewsMixin:
    """Part of :class:`workbench.session.Session`: read-only views of its state."""

    def _targets(self) -> dict:
        if not hasattr(self, "_target_cache") or self._target_cache[0] is not self.model_info:
            self._target_cache = (self.model_info, {t.node: t for t in self._need_model().quantizable_nodes()})
        return self._target_cache[1]

    def tensor_of(self, node: str) -> str | None:
        """The activation tensor whose range the node's INT8 input uses (its first activation input)."""
        t = self._targets().get(node)
        return t.activation_inputs[0] if t and t.activation_inputs else None

    def layer_table(self):
        """One row per quantizable node: node, op_type, tensor, amax of each method, chosen amax
        and scale, clipped share, per-layer SQNR (last build), sensitivity rank, precision."""
        import pandas as pd
        from ..calib.algorithms import METHODS

        ranges = self.ranges
        last = self.history[-1].per_layer if self.history else None
        sqnr = dict(zip(last["node"], last["sqnr_db"])) if last is not None and len(last) else {}
        sens = {}
        if self.sensitivity_table is not None:
            sens = dict(zip(self.sensitivity_table["node"], self.sensitivity_table["rank"]))
        rows = []
        for node, t in self._targets().items():
            tensor = t.activation_inputs[0] if t.activation_inputs else None
            r = ranges.get(tensor) if ranges is not None and tensor else None
            row = {"node": node, "op_type": t.op_type, "tensor": tensor}
            for m in METHODS:
                row[f"amax_{m}"] = r.amax_by_method.get(m) if r else None
            row.update({"amax": r.amax if r else None, "scale": r.scale if r else None,
                        "manual": bool(r.override) if r else False,
                        "clipped_pct": 100 * self._clipped(tensor, r.amax) if r else None,
                        "sqnr_db": sqnr.get(node), "sensitivity_rank": sens.get(node),
                        "precision": str(self.plan.precision(node)).upper() if self.plan else None})
            rows.append(row)
        return pd.DataFrame(rows)

    def _clipped(self, tensor: str, amax: float) -> float:
        from ..calib.algorithms import clipped_fraction

        c = self.stats.collectors.get(tensor) if self.stats else None
        return clipped_fraction(c.hist, c.bin_width, amax) if c is not None and c.bin_width else 0.0

    def histogram(self, node_or_tensor: str | None = None) -> dict:
        """Data for the histogram view of a node's input tensor (default: the selected node).

        Returns a dict: node, tensor, hist, bin_width, amax_by_method, chosen (amax in use),
        manual (override or None), clipped (share above chosen), max (max |x|).
        """
        name = node_or_tensor or self.selected
        if name is None:
            raise WorkbenchError("No layer selected.")
        tensor = self.tensor_of(name) or name
        if self.stats is None or tensor not in self.stats.collectors:
            raise WorkbenchError(f"No statistics for tensor '{tensor}': calibrate first.")
        c = self.stats.collectors[tensor]
        base = self.base_ranges[tensor]
        manual = self.plan.amax_overrides.get(tensor) if self.plan else None
        chosen = manual if manual is not None else base.amax
        return {"node": name if name != tensor else None, "tensor": tensor, "hist": c.hist,
                "bin_width": c.bin_width, "amax_by_method": dict(base.amax_by_method),
                "chosen": chosen, "manual": manual, "clipped": self._clipped(tensor, chosen),
                "max": float(c.absmax), "method": self.calib_settings.method}

    def history_table(self):
        """The build history as a DataFrame (one row per build)."""
        import pandas as pd

        return pd.DataFrame([b.row() for b in self.history])
