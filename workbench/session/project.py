"""Saving a session to a project folder and loading it back."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from .._io import atomic_write_text
from ..errors import StaleError, WorkbenchError
from .state import (SESSION_FILE, SESSION_FORMAT, STATS_FILE, Build, CalibrationSettings, DataSettings,
                    _json_safe)


class ProjectMixin:
    """Part of :class:`workbench.session.Session`: project save / load."""

    def _autosave(self) -> None:
        if self.project is not None and self.model_info is not None:
            self.save()

    def to_dict(self) -> dict:
        """The session as JSON-friendly data (statistics are stored separately)."""
        return _json_safe({
            "format": SESSION_FORMAT,
            "model": str(self.model_info.path.resolve()) if self.model_info and self.model_info.path else None,
            "model_fingerprint": self.model_info.fingerprint() if self.model_info else None,
            "data": asdict(self.data_settings), "calibration": asdict(self.calib_settings),
            "plan_base": self.plan_base, "selected": self.selected,
            "plan": self.plan.to_dict() if self.plan else None,
            "history": [{**b.row(), "summary": b.summary, "notes": b.notes, "paths": b.paths,
                         "semantics": b.semantics,
                         "plan": b.plan.to_dict(),
                         "per_layer": b.per_layer.to_dict("list") if b.per_layer is not None else None,
                         "outputs": b.outputs.to_dict("list") if b.outputs is not None else None}
                        for b in self.history],
        })

    def save(self, project=None) -> Path:
        """Write ``session.json`` (and the statistics, if not there yet) to the project folder,
        as one result (see :class:`workbench.outputs.ResultWriter`): the project folder may not
        be or lie inside an input (the data folder...), and a failure leaves the old files."""
        from ..validate import check_path

        target = Path(check_path(project, "The project folder")) if project is not None else self.project
        if target is None:
            raise WorkbenchError("Give a project folder to save the session to.")
        from .improve import IMPROVEMENT_FILE, improvement_state

        stats_path = target / STATS_FILE
        files = [target / SESSION_FILE]
        write_stats = self.stats is not None and not stats_path.exists()
        if write_stats:
            files += [stats_path, stats_path.with_suffix(".json")]
        improvement, arrays = improvement_state(self)
        if arrays:
            files.append(target / IMPROVEMENT_FILE)
        previous, self.project = self.project, target
        try:
            with self._writer(files, "project", True, target) as result:
                if write_stats:
                    self.stats.save(result.path(stats_path))
                    atomic_write_text(result.path(stats_path.with_suffix(".json")),
                                      json.dumps({"batch_size": self.last_calibration.get("batch_size")}))
                if arrays:
                    import numpy as np

                    with open(result.path(target / IMPROVEMENT_FILE), "wb") as f:
                        np.savez(f, **arrays)
                state = self.to_dict()
                if improvement is not None:
                    state["improvement"] = _json_safe(improvement)
                atomic_write_text(result.path(target / SESSION_FILE), json.dumps(state, indent=1))
        except BaseException:
            self.project = previous
            raise
        return target / SESSION_FILE

    @classmethod
    def load(cls, project):
        """Open a saved project folder: model, data settings, statistics (when still valid),
        current plan and build history. Raises WorkbenchError when the model file changed."""
        import pandas as pd

        from ..precision.plan import PrecisionPlan
        from ..calib.registry import check_calibration_settings
        from ..validate import check_path

        project = Path(check_path(project, "The project folder"))
        where = project / SESSION_FILE
        try:
            d = json.loads(where.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorkbenchError(f"'{project}' is not a workbench project (no {SESSION_FILE}).") from None
        except NotADirectoryError:
            raise WorkbenchError(f"'{project}' is a file, not a project folder.") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise WorkbenchError(f"'{where}' is not valid JSON ({exc}).") from None
        except OSError as exc:
            raise WorkbenchError(f"Cannot read '{where}': {exc.strerror or exc}.") from None
        if not isinstance(d, dict):
            raise WorkbenchError(f"'{where}' holds a JSON {type(d).__name__}, not a workbench session (an object).")
        if d.get("format") != SESSION_FORMAT:
            raise WorkbenchError(f"'{where}' has format {d.get('format')}; "
                                 f"this workbench reads format {SESSION_FORMAT}.")
        data, calib = _settings(d, "data", DataSettings, where), _settings(d, "calibration", CalibrationSettings, where)
        try:
            check_calibration_settings(calib.method, calib.percentile, calib.batch_size)
            _check_values(d, data)
        except WorkbenchError as exc:
            raise WorkbenchError(f"'{where}': {exc}") from None
        s = cls(project=project, plan_base=d.get("plan_base", "fp32"))
        s.data_settings, s.calib_settings = data, calib
        if d.get("model"):
            s.open_model(d["model"])
            if d.get("model_fingerprint") and s.model_info.fingerprint() != d["model_fingerprint"]:
                raise StaleError(f"The model '{d['model']}' changed since the project was saved; "
                                 "start a new project for it.")
        if d.get("plan") and s.model_info is not None:
            s.plan = PrecisionPlan.from_dict(d["plan"], s.model_info, source=str(project / SESSION_FILE))
        try:
            for h in d.get("history", []):
                plan = PrecisionPlan.from_dict(h["plan"], s.model_info, source=str(project / SESSION_FILE))
                s.history.append(Build(
                    h["build"], plan, h["method"], h.get("summary", {}),
                    pd.DataFrame(h["outputs"]) if h.get("outputs") else None,
                    pd.DataFrame(h["per_layer"]) if h.get("per_layer") else None,
                    h.get("latency_ms"), h.get("backend", "ort"), h.get("n_int8", 0), h.get("n_fp16", 0),
                    h.get("seconds", 0.0), h.get("notes", []), h.get("paths", {}), h.get("label", ""),
                    h.get("semantics", "")))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise WorkbenchError(f"'{where}': the build history is malformed ({type(exc).__name__}: {exc}).") from None
        if (project / STATS_FILE).exists() and s.model_info is not None:
            s._load_saved_statistics()
        if d.get("selected"):
            s.selected = d["selected"]
        if d.get("improvement") and s.model_info is not None:
            _load_improvement(s, d["improvement"], project, where)
        return s


def _load_improvement(s, meta, project: Path, where: Path) -> None:
    """Put the saved accuracy-step result back (see :func:`workbench.session.improve.improvement_state`);
    a warning, not an error, when the ranges it was computed on are not those of the loaded project."""
    import warnings

    import numpy as np

    from .improve import IMPROVEMENT_FILE, arrays_digest, restore_improvement

    path = project / IMPROVEMENT_FILE
    try:
        arrays = {}
        if meta.get("nodes") or meta.get("initializers"):
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
            if arrays_digest(arrays) != meta.get("digest"):
                raise WorkbenchError(f"'{path}' is not the file '{where}' was saved with (its digest differs).")
        why = restore_improvement(s, meta, arrays)
    except FileNotFoundError:
        raise WorkbenchError(f"'{where}' has accuracy steps whose model changes are in '{path}', which is "
                             "missing.") from None
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as exc:
        raise WorkbenchError(f"'{where}': the saved accuracy steps are malformed "
                             f"({type(exc).__name__}: {exc}).") from None
    if why:
        warnings.warn(f"'{where}': the saved accuracy steps were not restored: {why}.", stacklevel=3)


def _check_values(d: dict, data) -> None:
    """Every value of a session file that is used later, checked now (types and ranges), so that a
    broken file is refused on load with its name, not at the first calibration."""
    from ..validate import check_choice, check_positive_int, check_type

    for name in ("source", "loader_script", "eval_source", "preset"):
        check_type(getattr(data, name), str, f"data.{name}", expected="a path or name (a string) or null",
                   allow_none=True)
    for name in ("preprocess", "preparation"):
        check_type(getattr(data, name), dict, f"data.{name}", expected="an object or null", allow_none=True)
    for name in ("limit", "eval_limit"):
        check_positive_int(getattr(data, name), f"data.{name}", allow_none=True)
    check_type(d.get("model"), str, "'model'", expected="the model's path (a string)", allow_none=True)
    check_choice(d.get("plan_base", "fp32"), ("fp32", "fp16"), "'plan_base'")
    check_type(d.get("selected"), str, "'selected'", expected="a node name (a string) or null", allow_none=True)
    check_type(d.get("plan"), dict, "'plan'", expected="a saved plan (an object) or null", allow_none=True)
    check_type(d.get("history", []), list, "'history'", expected="a list of builds")


def _settings(d: dict, key: str, cls, where: Path):
    """``cls(**d[key])`` with a WorkbenchError naming the file for a missing or malformed entry."""
    from dataclasses import fields

    value = d.get(key)
    if not isinstance(value, dict):
        raise WorkbenchError(f"'{where}' has no '{key}' settings (an object); is it a workbench session?")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise WorkbenchError(f"'{where}': unknown '{key}' setting(s) {unknown}; known: {', '.join(sorted(known))}.")
    return cls(**value)
