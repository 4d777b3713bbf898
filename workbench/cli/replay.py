"""``workbench replay RECIPE``: make a result again from its recipe and say whether it came out
bit for bit, or which input, version or file differs. It runs the command the recipe records
(the same code path as the original run) into a new stem; the original result is never touched."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import WorkbenchError


def register(subparsers) -> None:
    p = subparsers.add_parser("replay", help="make a result again from its recipe.json and compare it bit for bit")
    p.add_argument("recipe", help="a <stem>.recipe.json written with a result")
    p.add_argument("-o", "--output", default=None,
                   help="the new result's model file (default: <stem>.replay.onnx beside the original); "
                        "for a demo recipe, the new folder (default: <folder>_replay)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier replay's files")
    p.set_defaults(func=cmd_replay)


def _load(path) -> dict:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise WorkbenchError(f"Cannot read the recipe '{path}': {exc.strerror or exc}.") from None
    except ValueError as exc:
        raise WorkbenchError(f"The recipe '{path}' is not valid JSON ({exc}).") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("argv"), list) or not doc.get("command"):
        raise WorkbenchError(f"'{path}' is not a workbench recipe (it needs 'command' and 'argv').")
    return doc


#: the commands whose results replay makes again: how their output option names the new result
REPLAYABLE = ("quantize", "autoprec", "demo")


def _new_output(old: dict, stem: Path, output) -> tuple:
    """(the -o value of the replay, the new result's stem): a new file (quantize, autoprec) or a
    new folder (demo); never the original result."""
    from ..outputs.names import stem_of

    if old["command"] == "demo":  # the demo writes <folder>/model.*
        folder = Path(output) if output else stem.parent.with_name(stem.parent.name + "_replay")
        if not output:
            from .demo import _new_folder

            folder = _new_folder(str(folder))
        if folder.resolve() == stem.parent.resolve():
            raise WorkbenchError(f"-o '{folder}' is the original result's folder; a replay writes a new one.")
        return folder, folder / stem.name
    out = Path(output) if output else stem.with_name(stem.name + ".replay.onnx")
    if stem_of(out).resolve() == stem.resolve():
        raise WorkbenchError(f"-o '{out}' is the original result; a replay writes a new one.")
    return out, stem_of(out)


def cmd_replay(args) -> int:
    from ..outputs.names import recipe_path, stem_of
    from ..outputs.recipe import compare
    from . import main as run_command

    old = _load(args.recipe)
    if old["command"] not in REPLAYABLE:
        why = f" ({old['replay_note']})" if old.get("replay_note") else ""
        raise WorkbenchError(f"Replay makes {', '.join(REPLAYABLE)} results again; the recipe '{args.recipe}' is "
                             f"of '{old['command']}'{why}.")
    stem = Path(old.get("stem") or stem_of(Path(args.recipe).name.replace(".recipe.json", "")))
    out, new_stem = _new_output(old, stem, args.output)
    quiet = [] if old["command"] == "demo" else ["-q"]
    argv = [old["command"], *old["argv"], "-o", str(out), *quiet] + (["--overwrite"] if args.overwrite else [])
    print("replaying: workbench " + " ".join(argv))
    code = run_command(argv)
    new_recipe = recipe_path(new_stem)
    # autoprec says 1 when the target is missed: the result is written all the same
    if code != 0 and not (old["command"] == "autoprec" and code == 1 and new_recipe.is_file()):
        return code
    new = _load(new_recipe)
    differences = compare(old, new)
    if not differences:
        print(f"Reproduced bit for bit: {len(old.get('files', {}))} file(s) identical ({new_stem}.*).")
        return 0
    print(f"NOT reproduced ({new_stem}.*):")
    for d in differences:
        print(f"  {d}")
    return 1
