"""A result's recipe (``<stem>.recipe.json``): what went in, how, with which versions, and the
digest of every file written, so that ``workbench replay`` can make the result again and say
whether it came out bit for bit, or which input or file differs.

The recipe is written inside the result's own transaction (:class:`ResultWriter`), after the
other files are staged: it lists their digests as committed.
"""
from __future__ import annotations

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


def content_digest(path) -> str:
    """The digest of a result file: its bytes, or for a JSON side file (plan, provenance) its
    content without :data:`VOLATILE_KEYS` (timings and paths differ from run to run)."""
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


def compare(old: dict, new: dict) -> list:
    """What differs between two recipes, as sentences (empty: the same inputs and the same bytes)."""
    out = []
    for name, v in (old.get("versions") or {}).items():
        if (new.get("versions") or {}).get(name) != v:
            out.append(f"version of {name}: {v} then, {(new.get('versions') or {}).get(name)} now")
    if (old.get("model") or {}).get("fingerprint") != (new.get("model") or {}).get("fingerprint"):
        out.append(f"the model '{(old.get('model') or {}).get('path')}' changed (its fingerprint differs)")
    for kind, d in (old.get("data") or {}).items():
        now = (new.get("data") or {}).get(kind) or {}
        if d and d.get("fingerprint") != now.get("fingerprint"):
            out.append(f"the {kind} data '{d.get('source')}' changed (its fingerprint differs)")
    if old.get("preparation") != new.get("preparation"):
        out.append("the input preparation differs")
    inputs_differ = bool(out)
    for name, digest in (old.get("files") or {}).items():
        stem_old, stem_new = old.get("stem", ""), new.get("stem", "")
        twin = name.replace(Path(stem_old).name, Path(stem_new).name, 1) if stem_old else name
        got = (new.get("files") or {}).get(twin)
        if got != digest:
            out.append(f"file {name}: {'missing' if got is None else 'different bytes'}"
                       + ("" if inputs_differ else " (with the same inputs and versions)"))
    return out


__all__ = ["RECIPE_FORMAT", "compare", "content_digest", "file_digest", "versions", "write_recipe"]
