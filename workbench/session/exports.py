"""Writing a session's artefacts (one naming scheme: :mod:`workbench.export.names`)."""
from __future__ import annotations

from pathlib import Path

from ..errors import WorkbenchError
from ..export.names import EXPORT_KINDS, VARIANT_KIND, export_path


class ExportsMixin:
    """Part of :class:`workbench.session.Session`: export of models, plan, cache, ranges, report."""

    def _export_dir(self) -> Path:
        if self.project is None:
            raise WorkbenchError("No project folder: give Session(project=...) or an explicit output path.")
        return self.project / "exports"

    def _export_model(self, plan, ranges, path: Path, variant: str) -> Path:
        from .._io import refuse_overwrite
        from ..export import export_model

        refuse_overwrite(path, self.model_info.path)
        twin = variant != "trt"  # the plan and cache belong to the TensorRT file
        export_model(self.model_info, ranges, plan, path, variant=variant, calibration_cache=not twin,
                     write_plan=not twin)
        return Path(path)

    def export_stem(self) -> Path:
        """The default stem of exported files: ``<project>/exports/<model>.quant``."""
        info = self._need_model()
        return self._export_dir() / f"{info.path.stem if info.path else 'model'}.quant"

    def export(self, kind: str, path=None) -> Path:
        """Write one artefact and return its path.

        Args:
            kind: one of :data:`workbench.export.names.EXPORT_KINDS`: "qdq" (Q/DQ ONNX for
                TensorRT, with its plan and calibration cache beside it), "ort" (ONNX Runtime
                evaluation twin), "cpu_uint8" (ONNX Runtime CPU deployment), "plan", "cache"
                (TensorRT <= 10 calibration cache), "ranges" or "report" (HTML).
            path: output file (default: :meth:`export_stem` + the kind's suffix).
        """
        if kind not in EXPORT_KINDS:
            raise WorkbenchError(f"Unknown export kind '{kind}'; choose one of: {', '.join(EXPORT_KINDS)}.")
        self._need_model()
        path = Path(path) if path is not None else export_path(self.export_stem(), kind)
        if kind == "report":
            from ..ui.report import write_report  # needs plotly (ui extra)

            return Path(write_report(self, path))
        if kind == "plan":
            if self.plan is None:
                raise WorkbenchError("There is no plan yet: calibrate first.")
            return Path(self.plan.save(path))
        ranges = self._need_ranges()
        variant = {v: k for k, v in VARIANT_KIND.items()}.get(kind)
        if variant is not None:
            return self._export_model(self.plan, ranges, path, variant)
        if kind == "ranges":
            ranges.save(path)
            return path
        from ..cache import cache_algorithm, write_calibration_cache

        write_calibration_cache(path, ranges.scales(), algorithm=cache_algorithm(self.calib_settings.method))
        return path
