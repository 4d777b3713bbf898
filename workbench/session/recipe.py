"""The recipe of a Session export (``<stem>.recipe.json``, see :mod:`workbench.outputs.recipe`):
the same record as the CLI's, and, where the session's settings can be said on the command line,
the ``quantize`` arguments that make the result again (``workbench replay``) with the exported
plan and ranges files (so every click, regex and threshold override is kept as it was)."""
from __future__ import annotations

from pathlib import Path


def _abs(p) -> str:
    return str(Path(p).resolve())


def preparation_flags(request) -> tuple:
    """(the command-line flags of an input-preparation request, None) or (None, why not).
    ``request``: what ``combine_request`` makes of the data settings (a dict of fields, or a saved
    ``InputPreparation``, whose requested fields are said)."""
    from ..data.prepare import FLAGS, InputPreparation

    if isinstance(request, InputPreparation):
        request = request.request()
    argv = []
    for key, value in (request or {}).items():
        if value is None:
            continue
        flag = FLAGS.get(key, "")
        if not flag.startswith("--"):
            return None, f"the input preparation field '{key}' has no command-line flag"
        argv += [flag, *(str(v) for v in (value if isinstance(value, (tuple, list)) else (value,)))]
    return argv, None


def session_argv(session, plan_path: Path, ranges_path: Path) -> tuple:
    """(quantize arguments, None) or (None, why the settings cannot be said on the command line)."""
    from ..data.prepare import combine_request

    s, c = session.data_settings, session.calib_settings
    info = session.model_info
    if info.path is None:
        return None, "the model was not opened from a file"
    if session.imported is not None:
        return None, "the model is an already-quantized model (its own scales)"
    if s.loader_script:
        return None, "the data come from a loader script (replay it from the Session)"
    prep, why = preparation_flags(combine_request(s.preset, s.preprocess, s.preparation))
    if prep is None:
        return None, why
    argv = [_abs(info.path)]
    if s.source:
        argv += ["--data", _abs(s.source)]
    if s.eval_source:
        argv += ["--eval-data", _abs(s.eval_source)]
    argv += prep
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
    """The recipe of a Session export (:func:`workbench.outputs.recipe.recipe_record`)."""
    from ..outputs.recipe import recipe_record

    argv, why = session_argv(session, plan_path, ranges_path)
    calib, c = session.state.calibration, session.calib_settings
    holdout = session.state.holdout
    evald = holdout.judge_data if holdout is not None and holdout.from_evaluation_data else None
    return recipe_record(
        command="quantize" if argv else "session", argv=argv or [], replay_note=why,
        stem=stem, model=session.model_info, data={"calibration": session.state.data, "evaluation": evald},
        calibration={"method": calib.method if calib is not None else c.method, "params": {"percentile": c.percentile},
                     "batch_size": c.batch_size,
                     "samples": calib.stats.num_samples if calib is not None and calib.stats is not None else None,
                     "judged_on": holdout.description if holdout is not None else None,
                     "optimistic": holdout.optimistic if holdout is not None else None, "ranges_file": _abs(ranges_path)},
        ranges=ranges, plan=plan, history=[label for _, label in session.state.undo])
