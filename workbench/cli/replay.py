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
                   help="the new result's model file (default: <stem>.replay.onnx beside the original)")
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


def cmd_replay(args) -> int:
    from ..outputs.names import recipe_path, stem_of
    from ..outputs.recipe import compare
    from . import main as run_command

    old = _load(args.recipe)
    if old["command"] != "quantize":
        raise WorkbenchError(f"Replay makes 'quantize' results again; this recipe is of '{old['command']}'.")
    stem = Path(old.get("stem") or stem_of(Path(args.recipe).name.replace(".recipe.json", "")))
    out = Path(args.output) if args.output else stem.with_name(stem.name + ".replay.onnx")
    if stem_of(out) == stem:
        raise WorkbenchError(f"-o '{out}' is the original result; a replay writes a new one.")
    argv = [old["command"], *old["argv"], "-o", str(out), "-q"] + (["--overwrite"] if args.overwrite else [])
    print("replaying: workbench " + " ".join(argv))
    code = run_command(argv)
    if code != 0:
        return code
    new = _load(recipe_path(stem_of(out)))
    differences = compare(old, new)
    if not differences:
        print(f"Reproduced bit for bit: {len(old.get('files', {}))} file(s) identical ({stem_of(out)}.*).")
        return 0
    print("NOT reproduced:")
    for d in differences:
        print(f"  {d}")
    return 1
