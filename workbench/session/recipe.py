"""The recipe of a Session export (``<stem>.recipe.json``, see :mod:`workbench.outputs.recipe`):
the same record as the CLI's, and, where the session's settings can be said on the command line,
the ``quantize`` arguments that make the result again (``workbench replay``) with the exported
plan file (so every click and regex override is kept)."""
from __future__ import annotations

from pathlib import Path


def _abs(p) -> str:
    return str(Path(p).resolve())


def session_argv(session, plan_path: Path, ranges_path: Path) -> tuple:
    """(quantize arguments, None) or (None, why the settings cannot be said on the command line)."""
    s, c = session.data_settings, session.calib_settings
    info = session.model_info
    if info.path is None:
        return None, "the model was not opened from a file"
    if session.imported is not None:
        return None, "the model is an already-quantized model (its own scales)"
    if s.preparation or s.preprocess:
        return None, "the input preparation was set field by field (replay it from the Session)"
    argv = [_abs(info.path)]
    if s.source:
        argv += ["--data", _abs(s.source)]
    if s.loader_script:
        argv += ["--data-loader-script", s.loader_script]
    if s.eval_source:
        argv += ["--eval-data", _abs(s.eval_source)]
    if s.preset:
        argv += ["--preset", s.preset]
    if s.limit:
        argv += ["--samples", str(s.limit)]
    if s.eval_limit:
        argv += ["--eval-samples", str(s.eval_limit)]
    # the exported ranges and plan: the replay takes the thresholds and every override as they were
    argv += ["--method", c.method, "--batch-size", str(c.batch_size), "--ranges", _abs(ranges_path),
             "--plan", _abs(plan_path), "--base", session.plan_base]
    if not (session.plan.steps or {}):
        argv.append("--no-improve")
    return argv, None


def session_recipe(session, stem, plan, ranges, plan_path: Path, ranges_path: Path) -> dict:
    info = session.model_info
    argv, why = session_argv(session, plan_path, ranges_path)
    data = {}
    for kind, opened in (("calibration", session.data), ("evaluation", None)):
        if opened is not None:
            data[kind] = {"source": opened.describe(), "fingerprint": opened.fingerprint(),
                          "preparation": getattr(getattr(opened, "preparation", None), "to_dict", lambda: None)()}
    calib = session.calibration
    return {
        "command": "quantize" if argv else "session", "argv": argv or [], "replay_note": why,
        "stem": str(Path(stem).resolve()),
        "model": {"path": str(info.path) if info.path else info.name, "fingerprint": info.fingerprint()},
        "data": data, "preparation": (data.get("calibration") or {}).get("preparation"),
        "calibration": {"method": calib.method if calib is not None else session.calib_settings.method,
                        "judged_on": calib.holdout.description if calib is not None and calib.holdout else None,
                        "batch_size": session.calib_settings.batch_size},
        "tensors": {t: {"amax": r.amax, "chosen": r.chosen, "reason": r.reason} for t, r in ranges.tensors.items()},
        "overrides": {"nodes": [{"node": e.node, "precision": str(e.precision), "reason": e.reason,
                                 "detail": e.detail} for e in plan if e.reason != "default"],
                      "amax": dict(plan.amax_overrides), "history": [label for _, label in session.state.undo]},
        "steps": plan.steps,
    }
