"""Writing a session's artefacts (one naming scheme: :mod:`workbench.outputs.names`).

Every export is one result (:class:`workbench.outputs.ResultWriter`): its files (a model with
its plan, cache and provenance) appear together or not at all, never at the path of an input
(the model, a data folder or file in it, the loader script), and an existing file is replaced
only inside the project folder unless ``overwrite=True``.

One stem is one result (:func:`workbench.outputs.names.stem_files`): an export to a stem removes,
in the same result, every older file of that stem it does not replace (``m.ort.onnx`` of an
earlier plan beside a new ``m.onnx``), and keeps only the twins this session wrote from the
same model, plan and ranges (unchanged on disk since). Inputs are never touched.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .._io import not_inputs
from ..errors import WorkbenchError
from ..outputs.guard import abs_path
from ..outputs.names import EXPORT_KINDS, VARIANT_KIND, export_path, stem_files, twin_stem
from ..outputs.writer import ResultWriter


class _StemResult(ResultWriter):
    """A session's result that tells the session, once committed, which files it wrote."""

    def __init__(self, files, *, committed, **kw):
        super().__init__(files, **kw)
        self._committed = committed

    def commit(self) -> list:
        out = super().commit()
        self._committed()
        return out


def _signature(path: Path):
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class ExportsMixin:
    """Part of :class:`workbench.session.Session`: export of models, plan, cache, ranges, report."""

    def _export_dir(self) -> Path:
        if self.project is None:
            raise WorkbenchError("No project folder: give Session(project=...) or an explicit output path.")
        return self.project / "exports"

    def input_paths(self) -> list:
        """``(label, path)`` of everything this session reads (model and its external data, data
        folders, loader script), for the output guard: no export or save may resolve to one."""
        from ..data import parse_script_spec
        from ..outputs.writer import model_inputs

        pairs = model_inputs(self.model_info) if self.model_info is not None else []
        s = self.data_settings
        for label, value in (("the data folder", s.source), ("the evaluation data folder", s.eval_source)):
            if value:
                pairs.append((label, Path(value)))
        if s.loader_script:
            pairs.append(("the data loader script", parse_script_spec(s.loader_script)[0]))
        return pairs

    def _writer(self, files, what: str, overwrite: bool | None, path: Path):
        """A ResultWriter for ``files``; ``overwrite=None`` replaces files only inside the project.
        Files of a result stem among them make the stem's older twins part of the result: they
        are removed at commit (see the module docstring)."""
        if overwrite is None:
            inside = self.project is not None and Path(self.project).resolve() in Path(path).resolve().parents
            overwrite = inside
        inputs = self.input_paths()
        key = self._twin_key() if any(twin_stem(f) is not None for f in files) else ""
        stale = self._older_twins(files, inputs, key)
        if stale and not overwrite:
            names = ", ".join(f"'{f}'" for f in stale)
            raise WorkbenchError(f"{names} {'is a file' if len(stale) == 1 else 'are files'} of the same result "
                                 f"stem from an earlier export (another plan or ranges) and would be left beside "
                                 f"the new file; pass overwrite=True to replace that stem's files, or choose "
                                 f"another path. Nothing was written.")
        return _StemResult(files, inputs=inputs, overwrite=overwrite, what=what, wait=10.0, optional=stale,
                           committed=lambda: self._record_twins(files, stale, key))

    # ------------------------------------------------------------------ one stem, one result
    def _twin_key(self) -> str:
        """What the files of an export are made from: the exported model, plan and ranges."""
        if self.model_info is None or self.plan is None:
            return ""
        model, ranges, plan = self._export_source(self.plan, self.ranges)
        digest = hashlib.sha256(model.fingerprint().encode())
        digest.update(plan.to_json().encode())
        digest.update(ranges.to_json().encode() if ranges is not None else b"-")
        return digest.hexdigest()

    def _twin_records(self) -> dict:
        """stem -> {file: (key, (size, mtime_ns))} of the stem files this session wrote."""
        return self.__dict__.setdefault("_stem_twins", {})

    def _older_twins(self, files, inputs, key: str) -> list:
        """Existing files of the stems of ``files`` that this result does not write and that are
        not twins of the same key written by this session; inputs are never among them."""
        declared = {abs_path(f) for f in files}
        stems = {abs_path(s) for s in (twin_stem(f) for f in files) if s is not None}
        records, stale = self._twin_records(), []
        for stem in sorted(stems):
            kept = records.get(stem, {})
            stale += [f for f in map(abs_path, stem_files(stem))
                      if f not in declared and not (key and kept.get(f) == (key, _signature(f)))]
        return not_inputs(stale, inputs)  # a user's input that carries a stem's name: never touched

    def _record_twins(self, files, removed, key: str) -> None:
        # what the last export removed (older files of its stem), for the app to list
        self.last_export_removed = [Path(f) for f in removed if not os.path.lexists(f)]
        records = self._twin_records()
        for f in removed:
            records.get(twin_stem(f), {}).pop(f, None)
        for f in map(abs_path, files):
            stem = twin_stem(f)
            if stem is not None:
                records.setdefault(stem, {})[f] = (key, _signature(f))

    def _export_model(self, plan, ranges, path: Path, variant: str, overwrite: bool | None = True) -> Path:
        from ..export import export_files, export_model

        from ..outputs.names import export_path as named, recipe_path, stem_of
        from ..outputs.recipe import write_recipe
        from .recipe import session_recipe

        twin = variant != "trt"  # the plan, cache and recipe belong to the TensorRT file
        files = export_files(path, calibration_cache=not twin, write_plan=not twin)
        recipe = [] if twin else [recipe_path(stem_of(path)), named(stem_of(path), "ranges")]
        model, ranges, plan = self._export_source(plan, ranges)  # the improved model while current
        with self._writer(files + recipe, f"export of '{Path(path).name}'", overwrite, path) as result:
            export_model(model, ranges, plan, path, variant=variant, calibration_cache=not twin,
                         write_plan=not twin, result=result)
            if recipe:  # the ranges beside the plan, so that `workbench replay` takes both as they were
                ranges.save(result.path(recipe[1]), overwrite=True)
                record = session_recipe(self, stem_of(path), plan, ranges, named(stem_of(path), "plan"), recipe[1])
                write_recipe(result, recipe[0], record, files)
        return Path(path)

    def export_stem(self) -> Path:
        """The default stem of exported files: ``<project>/exports/<model>.quant``."""
        info = self._need_model()
        return self._export_dir() / f"{info.path.stem if info.path else 'model'}.quant"

    def export(self, kind: str, path=None, *, overwrite: bool | None = None) -> Path:
        """Write one artefact and return its path.

        Args:
            kind: one of :data:`workbench.outputs.names.EXPORT_KINDS`: "qdq" (Q/DQ ONNX for
                TensorRT, with its plan and calibration cache beside it), "ort" (ONNX Runtime
                evaluation twin), "cpu_uint8" (ONNX Runtime CPU deployment), "plan", "cache"
                (TensorRT <= 10 calibration cache, with its provenance file), "ranges" or
                "report" (HTML).
            path: output file (default: :meth:`export_stem` + the kind's suffix).
            overwrite: replace existing files (None, the default: only inside the project
                folder, the session's own files). An input is never replaced.
        """
        from ..validate import check_bool, check_path

        if path is not None:
            check_path(path, "export(path=...)")
        check_bool(overwrite, "export(overwrite=...)", allow_none=True)
        if kind not in EXPORT_KINDS:
            raise WorkbenchError(f"Unknown export kind '{kind}'; choose one of: {', '.join(EXPORT_KINDS)}.")
        self._need_model()
        path = Path(path) if path is not None else export_path(self.export_stem(), kind)
        if kind == "report":  # drawn by the UI layer, which the session never imports
            raise WorkbenchError("The HTML report is drawn by the app: use "
                                 "workbench.ui.report.export_report(session, path) (needs the 'ui' extra).")
        if kind == "explorer":  # one file per overlay; the path of the precision overlay is returned
            from ..outputs.names import stem_of

            return self.export_explorer(stem_of(path), overwrite=overwrite)["precision"]
        if kind == "plan":
            if self.plan is None:
                raise WorkbenchError("There is no plan yet: calibrate first.")
            with self._writer([path], "plan", overwrite, path) as result:
                self._export_source(self.plan, self.ranges)[2].save(result.path(path))  # + the steps applied
            return path
        ranges = self._need_ranges()
        variant = {v: k for k, v in VARIANT_KIND.items()}.get(kind)
        if variant is not None:
            return self._export_model(self.plan, ranges, path, variant, overwrite)
        if kind == "ranges":
            with self._writer([path], "ranges", overwrite, path) as result:
                ranges.save(result.path(path))
            return path
        from ..backends.trt_cache import write_calibration_cache
        from ..outputs.names import sidecar_path
        from ..calib.registry import cache_algorithm

        info = self._need_model()
        with self._writer([path, sidecar_path(path)], "calibration cache", overwrite, path) as result:
            write_calibration_cache(result.path(path), ranges.scales(),
                                    algorithm=cache_algorithm(self.calib_settings.method), provenance={
                "model": str(info.path) if info.path else info.name, "model_fingerprint": info.fingerprint(),
                "data_fingerprint": getattr(ranges, "data_fingerprint", None) or None,
                "method": self.calib_settings.method, "num_samples": getattr(ranges, "num_samples", None)})
        return path
