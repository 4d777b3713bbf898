"""Small helpers shared by the command modules: progress bars, tables, JSON, output checks."""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from ..errors import WorkbenchError


@contextmanager
def progress_bar(desc: str, unit: str, quiet: bool = False):
    """A tqdm bar driven by ``progress(done, total)`` callbacks (None when ``quiet``)."""
    if quiet:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(desc=desc, unit=unit)

    def update(done: int, total: int | None) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def new_outputs(args, *paths) -> None:
    """Refuse to replace existing files unless --overwrite (outputs go to new paths)."""
    existing = [str(p) for p in paths if p is not None and Path(p).exists()]
    if existing and not getattr(args, "overwrite", False):
        raise WorkbenchError(f"{', '.join(existing)} already exist(s); choose a new output path or pass --overwrite.")


def print_table(df, title: str) -> None:
    """Print a DataFrame under ``title`` (4 significant decimals, no index)."""
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 4):
        print(title)
        print(df.to_string(index=False))


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    from .._io import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=1, default=str))


def report_written_files(evaluator, results: dict) -> dict:
    """Evaluate every ONNX file of an export result against FP32 and print one line per file.

    Each figure names its file and its semantics (exact ONNX semantics; ``cpu_uint8`` also as
    ONNX Runtime deploys it). The ``.ort.onnx`` twin rounds to FP16 at the boundaries of the
    FP16 nodes and computes in FP32, as TensorRT's FP16 kernels (FP16 I/O, FP32 accumulation)
    do: it is the ONNX Runtime predictor of the TensorRT engine. The ``.onnx`` TensorRT file
    run in ONNX Runtime computes its float16 ops with whatever CPU kernels ONNX Runtime has
    (some in FP16, others through inserted casts), so its figures can differ slightly.
    Returns {kind: EvalResult summary dict}.
    """
    from ..semantics import DEPLOYED, DEPLOYED_GAP_DB, EXACT, SATURATION_HINT, describe

    out = {}
    print(f"Accuracy of the written files vs FP32 on {evaluator.num_samples} evaluation samples:")
    for kind, res in results.items():
        runs = [EXACT] + ([DEPLOYED] if kind == "cpu_uint8" else [])
        for opt in runs:
            s = evaluator.evaluate_model(str(res.onnx_path), optimization=opt).summary()
            out[kind if opt == EXACT else f"{kind}_deployed"] = s
            shown = ", ".join(f"{k} {v:.4f}" for k, v in s.items()
                              if k in ("top1_agreement", "cosine", "sqnr_db", "metric"))
            print(f"  {res.onnx_path.name}: {shown}  [{describe(opt)}]")
        deployed = out.get(f"{kind}_deployed")
        if deployed and deployed["sqnr_db"] < out[kind]["sqnr_db"] - DEPLOYED_GAP_DB:
            print(f"  note: {res.onnx_path.name} loses {out[kind]['sqnr_db'] - deployed['sqnr_db']:.1f} dB "
                  f"as ONNX Runtime deploys it; likely cause: {SATURATION_HINT}.")
    return out
