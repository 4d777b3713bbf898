"""The recipe of a command's result: what ``workbench replay`` needs to make it again."""
from __future__ import annotations

import os
from pathlib import Path

from ..outputs.recipe import recipe_record, write_recipe  # noqa: F401  (the commands write through this module)

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


def _calibration(args, calib_args) -> dict:
    """The calibration settings of a command and what its ranges were judged on."""
    ranges_file = getattr(args, "ranges", None)
    outcome = None if ranges_file else getattr(calib_args, "outcome", None)  # a --ranges run calibrates nothing
    holdout = getattr(outcome, "holdout", None)
    return {"method": outcome.method if outcome is not None else args.method,
            "params": calib_args.params(args), "batch_size": args.batch_size,
            "samples": outcome.stats.num_samples if outcome is not None else None,
            "judged_on": holdout.description if holdout is not None else None,
            "optimistic": holdout.optimistic if holdout is not None else None,
            "ranges_file": str(Path(ranges_file).resolve()) if ranges_file else None}


def cli_recipe(args, stem, model, ranges, plan, data_args, eval_args, calib_args, **extra) -> dict:
    """The recipe of a ``quantize`` or ``autoprec`` result (see :func:`workbench.outputs.recipe.recipe_record`)."""
    data = {"calibration": data_args.parse(args, model) if data_args.given(args) else None,
            "evaluation": eval_args.data.parse(args, model) if eval_args is not None and eval_args.data.given(args)
            else None}
    flags = {f"--{f.replace('_', '-')}": getattr(args, f) for f in ("int8", "fp16", "fp32", "op_fp16", "op_fp32")
             if getattr(args, f, None)}
    if getattr(args, "plan", None):
        flags["--plan"] = str(Path(args.plan).resolve())
    argv = replay_argv(_after_command(getattr(args, "argv", []), args.command))
    return recipe_record(command=args.command, argv=argv, stem=stem, model=model, data=data,
                         calibration=_calibration(args, calib_args), ranges=ranges, plan=plan, flags=flags,
                         unsaid_origin=f"--plan {args.plan}" if getattr(args, "plan", None) else "", **extra)


def demo_recipe(args, stem, model, paths, stats, evaluator, ranges, plan) -> dict:
    """The recipe of ``workbench demo``'s result (the sample; ``replay`` runs the demo again)."""
    from ..data import PRESETS, open_data

    pre = PRESETS[paths["preset"]]
    data = {"calibration": open_data(paths["calib"], model, preprocess=pre, limit=args.samples),
            "evaluation": open_data(paths["eval"], model, preprocess=pre)}
    calibration = {"method": getattr(ranges, "method", None), "params": {}, "batch_size": None,
                   "samples": stats.num_samples, "optimistic": False,
                   "judged_on": f"{evaluator.num_samples} evaluation photos", "ranges_file": None}
    return recipe_record(command="demo", argv=replay_argv(_after_command(getattr(args, "argv", []), "demo")),
                         stem=stem, model=model, data=data, calibration=calibration, ranges=ranges, plan=plan,
                         target=args.target)
