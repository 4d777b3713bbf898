"""Session: per-node overlays of the exported model for Google Model Explorer (docs/MODEL_EXPLORER.md).

What each node shows comes from the session's state: its precision (the plan), the SQNR of its
output in the last build (exact semantics, the file's per-layer error), its sensitivity rank
(after a sensitivity run) and the amax of its quantized input (the ranges in use).
"""
from __future__ import annotations

import math
from pathlib import Path

from ..errors import WorkbenchError


class ExplorerMixin:
    """Part of :class:`workbench.session.Session`: :meth:`explorer_nodes` and :meth:`export_explorer`."""

    def explorer_nodes(self) -> dict:
        """FP32 node name -> the values its overlays show (see
        :func:`workbench.export.explorer_overlay.build_explorer_overlays`)."""
        if self.plan is None:
            raise WorkbenchError("There is no plan yet: calibrate first.")
        nodes = {n: {"precision": str(self.plan.precision(n))} for n in self.plan.nodes}
        if self.history and self.history[-1].per_layer is not None:
            pl = self.history[-1].per_layer
            for n, v in zip(pl["node"], pl["sqnr_db"]):
                if n in nodes and v is not None and not (isinstance(v, float) and math.isnan(v)):
                    nodes[n]["sqnr_db"] = float(v)
        table = self.sensitivity_table
        if table is not None and "rank" in table:
            for n, r in zip(table["node"], table["rank"]):
                if n in nodes:
                    nodes[n]["sensitivity_rank"] = int(r)
        ranges = self.ranges
        if ranges is not None:
            for n in nodes:
                t = self.tensor_of(n) if n in self._targets() else None
                if t is not None and t in ranges:
                    nodes[n]["amax"] = float(ranges[t].amax)
        return nodes

    def export_explorer(self, stem=None, *, overwrite: bool | None = None) -> dict:
        """Write the TensorRT Q/DQ file's overlays as ``<stem>.explorer.<metric>.json`` (one result)
        and return metric -> path. ``stem`` defaults to :meth:`export_stem`: the overlays match
        the ``<stem>.onnx`` that :meth:`export` ("qdq") writes for the same plan and ranges."""
        from ..export import build_quantized
        from ..export.explorer_overlay import build_explorer_overlays, overlay_files, write_explorer_overlays

        info = self._need_model()
        ranges = self._need_ranges()
        stem = Path(stem) if stem is not None else self.export_stem()
        model = build_quantized(info, ranges, self.plan, variant="trt")
        overlays = build_explorer_overlays(model, self.explorer_nodes())
        files = overlay_files(stem, overlays.data)
        with self._writer(list(files.values()), "Model Explorer overlays", overwrite, stem) as result:
            return write_explorer_overlays(overlays, stem, result=result)
