"""A result's recipe (``<stem>.recipe.json``): what went in, how, with which versions, and the
digest of every file written, so that ``workbench replay`` can make the result again and say
whether it came out bit for bit, or which input or file differs.

The recipe is written inside the result's own transaction (:class:`ResultWriter`), after the
other files are staged: it lists their digests as committed. :func:`recipe_record` is the one
place that says what a recipe holds (the CLI's commands and the Session call it with their
objects; it reads them by duck typing, so this bottom layer imports none of them).
"""
from __future__ import annotations

import csv
import hashlib
import importlib.metadata as md
import json
from pathlib import Path

from .._io import atomic_write_text

RECIPE_FORMAT = 1
#: packages whose version can change a result's bytes
VERSIONED = ("workbench", "onnx", "onnxruntime", "numpy")


def versions() -> dict:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: JSON keys that say when, how long or where, not what: left out of a JSON file's digest
VOLATILE_KEYS = frozenset({"seconds", "model", "exported_model", "written", "path", "created"})


def _without(value, keys):
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


def _npz_digest(path) -> str:
    """An .npz archive's arrays (names, dtypes, shapes, bytes); a JSON ``__header__`` array (the
    statistics file's) without :data:`VOLATILE_KEYS` (it holds the collection's seconds)."""
    import numpy as np

    h = hashlib.sha256()
    with np.load(path, allow_pickle=False) as z:
        for name in sorted(z.files):
            a = np.ascontiguousarray(z[name])
            if name == "__header__" and a.dtype == np.uint8:
                header = _without(json.loads(a.tobytes().decode()), VOLATILE_KEYS)
                a = np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)
            h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes())
    return "npz:" + h.hexdigest()


def volatile_column(name: str) -> bool:
    """A CSV column that holds a timing (measured, not computed: it differs from run to run)."""
    return name.startswith("latency") or name.endswith(("seconds", "_ms"))


def _csv_digest(path) -> str:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    keep = [i for i, c in enumerate(rows[0]) if not volatile_column(c)] if rows else []
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps([row[i] if i < len(row) else None for i in keep]).encode() + b"\n")
    return "csv:" + h.hexdigest()


def content_digest(path) -> str:
    """The digest of a result file: its bytes; for a JSON side file (plan, provenance) its
    content without :data:`VOLATILE_KEYS` (timings and paths differ from run to run); for a CSV
    table its cells without timing columns (:func:`volatile_column`); for an .npz archive its
    arrays, its JSON header without those keys."""
    if str(path).endswith(".csv"):
        try:
            return _csv_digest(path)
        except (OSError, UnicodeDecodeError, csv.Error):
            return file_digest(path)
    if str(path).endswith(".npz"):
        try:
            return _npz_digest(path)
        except (OSError, ValueError, UnicodeDecodeError):
            return file_digest(path)
    if str(path).endswith(".json"):
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except ValueError:
            return file_digest(path)
        data = json.dumps(_without(doc, VOLATILE_KEYS), sort_keys=True).encode()
        return "json:" + hashlib.sha256(data).hexdigest()
    return file_digest(path)


def write_recipe(result, path, record: dict, files: list) -> Path:
    """Stage ``record`` + versions + the digests of ``files`` (final paths of this result, staged
    in ``result``) as the recipe at ``path``; the digests are keyed by file name."""
    digests = {Path(f).name: content_digest(result.path(f)) for f in files if Path(result.path(f)).is_file()}
    doc = {"format": RECIPE_FORMAT, **record, "versions": versions(), "files": digests}
    return atomic_write_text(result.path(path), json.dumps(doc, indent=1, sort_keys=False, default=str) + "\n")


#: who made an override, when the plan does not say (its ``reason`` does)
ORIGIN_OF_REASON = {"auto": "automatic mixed-precision search", "unsafe-fp16": "FP16 safety check (observed range)"}


def _data_record(data) -> dict | None:
    if data is None:
        return None
    prep = getattr(data, "preparation", None)
    return {"source": data.describe(), "fingerprint": data.fingerprint(),
            "samples": data.num_samples() if hasattr(data, "num_samples") else None,
            "preparation": prep.to_dict() if prep is not None and hasattr(prep, "to_dict") else None}


def _path(p) -> str | None:
    return str(Path(p).resolve()) if p else None


def recipe_record(*, command: str, argv: list, stem, model, data: dict, calibration: dict, ranges, plan,
                  flags: dict | None = None, unsaid_origin: str = "", **extra) -> dict:
    """What a recipe holds besides versions and digests (:func:`write_recipe` adds those).

    Args:
        command, argv: the ``workbench`` command and its arguments that make the result again
            (``workbench replay`` adds ``-o``); ``argv`` [] when it cannot be said (see ``extra``).
        stem: the result's stem. model: its ``ModelInfo`` (path and ``fingerprint()``).
        data: kind ("calibration", "evaluation") -> the opened data source or None (its
            ``describe()``, ``fingerprint()``, ``num_samples()`` and input preparation).
        calibration: method, params, batch size, samples and what judged the ranges (hold-out).
        ranges: the ``Ranges`` exported (per tensor: amax, chosen candidate, why).
        plan: the ``PrecisionPlan`` exported: every node not at its default precision or not
            "default" reason, with who made it (``origin``; else by reason, else ``unsaid_origin``),
            the amax overrides with theirs, and the accuracy steps applied (``plan.steps``).
        flags: the command-line overrides as given (flag -> patterns).
        extra: more top-level entries (``replay_note``, ``target``...).
    """
    defaults = type(plan).default(model, plan.base)
    nodes = [{"node": e.node, "op_type": e.op_type, "precision": str(e.precision), "reason": e.reason,
              "detail": e.detail, "origin": e.origin or ORIGIN_OF_REASON.get(e.reason, unsaid_origin)}
             for e in plan if e.reason != "default" or e.precision != defaults.precision(e.node)]
    origins = getattr(plan, "amax_origins", {}) or {}
    opened = {k: _data_record(v) for k, v in data.items()}
    return {
        "command": command, "argv": list(argv), **extra, "stem": _path(stem),
        "model": {"path": _path(model.path) or model.name, "fingerprint": model.fingerprint()},
        "data": opened, "preparation": (opened.get("calibration") or {}).get("preparation"),
        "calibration": calibration,
        "tensors": {t: {"amax": r.amax, "chosen": r.chosen, "reason": r.reason} for t, r in ranges.tensors.items()},
        "overrides": {"flags": dict(flags or {}), "nodes": nodes,
                      "amax": {t: {"amax": v, "origin": origins.get(t) or unsaid_origin}
                               for t, v in sorted(plan.amax_overrides.items())}},
        "steps": getattr(plan, "steps", None),
    }


def _fields(prep) -> dict | None:
    """A preparation's field values per input, without where each came from (a flag, a setting)."""
    if not isinstance(prep, dict):
        return prep
    return {n: {k: v for k, v in f.items() if k != "sources"} for n, f in (prep.get("inputs") or {}).items()}


def _outputs(old: dict, new: dict) -> list:
    """Which of the recipe's own records of the outputs differ: chosen ranges, steps applied."""
    out = []
    ta, tb = old.get("tensors") or {}, new.get("tensors") or {}
    moved = [t for t in ta if (ta[t] or {}).get("amax") != (tb.get(t) or {}).get("amax")]
    if moved:
        out.append(f"the ranges of {len(moved)} tensor(s) differ: " + ", ".join(moved[:5])
                   + (" ..." if len(moved) > 5 else ""))
    sa, sb = (old.get("steps") or {}).get("applied"), (new.get("steps") or {}).get("applied")
    if sa != sb:
        out.append(f"the accuracy steps applied differ: {sa} then, {sb} now")
    return out


def compare(old: dict, new: dict) -> list:
    """What differs between two recipes, as sentences (empty: the same inputs and the same bytes).
    Inputs first (versions, model, data, preparation), then the outputs (ranges, steps, files)."""
    out = []
    for name, v in (old.get("versions") or {}).items():
        if (new.get("versions") or {}).get(name) != v:
            out.append(f"version of {name}: {v} then, {(new.get('versions') or {}).get(name)} now")
    if (old.get("model") or {}).get("fingerprint") != (new.get("model") or {}).get("fingerprint"):
        out.append(f"the model '{(old.get('model') or {}).get('path')}' changed (its fingerprint differs)")
    for kind, d in (old.get("data") or {}).items():
        now = (new.get("data") or {}).get(kind) or {}
        if d and d.get("fingerprint") != now.get("fingerprint"):
            out.append(f"the {kind} data changed: {d.get('source')} (its fingerprint differs)")
    if _fields(old.get("preparation")) != _fields(new.get("preparation")):
        out.append("the input preparation differs")
    inputs_differ = bool(out)
    out += _outputs(old, new)
    for name, digest in (old.get("files") or {}).items():
        stem_old, stem_new = old.get("stem", ""), new.get("stem", "")
        twin = name.replace(Path(stem_old).name, Path(stem_new).name, 1) if stem_old else name
        got = (new.get("files") or {}).get(twin)
        if got != digest:
            out.append(f"file {name}: {'missing' if got is None else 'different bytes'}"
                       + ("" if inputs_differ else " (with the same inputs and versions)"))
    return out


__all__ = ["ORIGIN_OF_REASON", "RECIPE_FORMAT", "compare", "content_digest", "file_digest", "recipe_record",
           "versions", "write_recipe"]
