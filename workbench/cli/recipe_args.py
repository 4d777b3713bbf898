"""The recipe of a command's result: what ``workbench replay`` needs to make it again."""
from __future__ import annotations

import os
from pathlib import Path

from ..outputs.recipe import write_recipe  # noqa: F401  (the commands write through this module)

#: options that do not change the result (where it goes, what is printed)
_DROP_WITH_VALUE = {"-o", "--output"}
_DROP = {"--overwrite", "-q", "--quiet", "--no-eval"}


def replay_argv(argv: list) -> list:
    """``argv`` without the output options, with every existing path made absolute (the replay may
    run from another folder)."""
    out, skip = [], False
    for tok in argv:
        if skip:
            skip = False
            continue
        if tok in _DROP_WITH_VALUE:
            skip = True
            continue
        if tok in _DROP or any(tok.startswith(o + "=") for o in _DROP_WITH_VALUE):
            continue
        path, _, func = tok.partition(":") if not tok.startswith("-") else (tok, "", "")
        if not tok.startswith("-") and os.path.exists(path):
            tok = str(Path(path).resolve()) + (f":{func}" if func else "")
        out.append(tok)
    return out


def _after_command(argv: list, command: str) -> list:
    """The arguments after the command name."""
    return argv[argv.index(command) + 1:] if command in argv else list(argv)


def _data_record(data_args, args, model, *, eval_data: bool = False) -> dict | None:
    if not data_args.given(args):
        return None
    data = data_args.parse(args, model)
    prep = getattr(data, "preparation", None)
    return {"source": data.describe(), "fingerprint": data.fingerprint(),
            "preparation": prep.to_dict() if prep is not None and hasattr(prep, "to_dict") else None}


def cli_recipe(args, stem, model, ranges, plan, data_args, eval_args, calib_args) -> dict:
    """The recipe of a ``quantize`` result (see :mod:`workbench.outputs.recipe`)."""
    calib = _data_record(data_args, args, model)
    evald = _data_record(eval_args.data, args, model) if eval_args is not None else None
    outcome = getattr(calib_args, "outcome", None)
    defaults = type(plan).default(model, getattr(args, "base", "fp32"))
    overrides = [{"node": e.node, "precision": str(e.precision), "reason": e.reason, "detail": e.detail}
                  for e in plan if e.precision != defaults.precision(e.node)]
    return {
        "command": args.command, "argv": replay_argv(_after_command(getattr(args, "argv", []), args.command)),
        "stem": str(Path(stem).resolve()),
        "model": {"path": str(model.path) if model.path else model.name, "fingerprint": model.fingerprint()},
        "data": {"calibration": calib, "evaluation": evald},
        "preparation": (calib or {}).get("preparation"),
        "calibration": {"method": outcome.method if outcome is not None else args.method,
                        "judged_on": outcome.holdout.description if outcome is not None else None,
                        "batch_size": args.batch_size},
        "tensors": {t: {"amax": r.amax, "chosen": r.chosen, "reason": r.reason} for t, r in ranges.tensors.items()},
        "overrides": {"flags": {f: getattr(args, f, []) for f in ("int8", "fp16", "fp32", "op_fp16", "op_fp32")
                                if getattr(args, f, None)},
                      "nodes": overrides, "amax": dict(plan.amax_overrides)},
        "steps": getattr(plan, "steps", None),
    }
