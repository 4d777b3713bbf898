"""The output guard: what a command reads, and the check of every output before any work.

No output may resolve to an input (a model or its external data, a data folder or any file in
it, ranges, plan, statistics, a loader or metric script), with or without overwrite; an
existing output needs overwrite; an output may not be a folder or sit below a file. Used by
:class:`workbench.outputs.ResultWriter` and by writers of one file.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

from .._io import FileSystemError, check_not_input
from ..errors import WorkbenchError

_EXTERNAL_CACHE: dict = {}


# ---------------------------------------------------------------------------- inputs
def model_inputs(model_info, label: str = "the model") -> list:
    """``(label, path)`` for a model's file and its external-data files (none without a path)."""
    path = getattr(model_info, "path", None)
    if path is None:
        return []
    return [(label, Path(path))] + [(f"{label}'s external data", p) for p in external_data_files(Path(path))]


def external_data_files(path: Path) -> list:
    try:
        st = path.stat()
    except OSError:
        return []
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _EXTERNAL_CACHE:
        found = []
        if st.st_size < (256 << 20):  # a model with external data has a small main file
            try:
                import onnx
                from onnx.external_data_helper import _get_all_tensors, uses_external_data

                proto = onnx.load(str(path), load_external_data=False)
                for t in _get_all_tensors(proto):
                    if uses_external_data(t):
                        loc = next((e.value for e in t.external_data if e.key == "location"), None)
                        if loc:
                            found.append(path.parent / loc)
            except Exception:  # unreadable models are reported by load_model, not here
                found = []
        _EXTERNAL_CACHE[key] = sorted(set(found))
    return list(_EXTERNAL_CACHE[key])


def input_paths(model=None, data=None, *others, **labelled) -> list:
    """Everything a command reads, as ``(label, path)`` pairs for the guard.

    Args:
        model: a ModelInfo (its file and external data), or None.
        data: a CalibrationData (its folder or loader script, see ``CalibrationData.input_paths``),
            or None; several may be given in ``others``.
        others: more ModelInfo / CalibrationData objects, paths, or ``(label, path)`` pairs.
        labelled: ``label=path`` (e.g. ``ranges=args.ranges``); None values are skipped.
    """
    out: list = []
    for item in (model, data, *others):
        if item is None:
            continue
        if hasattr(item, "input_paths"):
            out += item.input_paths()
        elif hasattr(item, "fingerprint") and hasattr(item, "path"):
            out += model_inputs(item)
        elif isinstance(item, tuple):
            out.append(item)
        else:
            out.append(("an input", Path(item)))
    out += [(f"the {k.replace('_', ' ')} file", Path(v)) for k, v in labelled.items() if v is not None]
    return out


# ---------------------------------------------------------------------------- the guard
def abs_path(path) -> Path:
    """Absolute, with ``~`` expanded and ``..`` removed, symlinks kept (where the user points)."""
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def anchor_and_head(path: Path) -> tuple:
    """(nearest existing folder, the entry moved into it at commit: the file or its top missing folder)."""
    head, parent = path, path.parent
    while not parent.exists() and parent != parent.parent:
        head, parent = parent, parent.parent
    if not parent.is_dir():
        raise FileSystemError(path, f"'{parent}' is a file, not a folder", errno.ENOTDIR)
    return parent, head


def check_outputs(files, inputs=(), *, overwrite: bool = False, folder=None) -> list:
    """Check every file of one result before anything is written; return them as absolute Paths.

    Raises WorkbenchError when a file resolves to an input (always), is a folder, lies below a
    file, appears twice, or exists without ``overwrite`` (one message listing every such file;
    ``folder``: the output folder the user named, for that message).
    """
    out, seen, existing = [], {}, []
    for f in files:
        if f is None:
            continue
        p = abs_path(f)
        check_not_input(f, inputs)
        key = os.path.realpath(p)
        if key in seen:
            raise WorkbenchError(f"Two outputs of this result are the same file: '{seen[key]}' and '{f}'.")
        seen[key] = f
        if p.is_dir():
            raise WorkbenchError(f"Cannot write '{f}': it is a folder; give a file path.")
        anchor_and_head(p)
        if p.exists() or p.is_symlink():
            existing.append(str(f))
        out.append(p)
    if existing and not overwrite:
        if folder is not None:
            what = f"Output folder '{folder}' already has {', '.join(Path(e).name for e in existing)}"
        else:
            what = f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}"
        raise WorkbenchError(f"{what}; choose a new output path or pass --overwrite (overwrite=True). "
                             "Nothing was written.")
    return out
