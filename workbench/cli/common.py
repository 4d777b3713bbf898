"""Small helpers shared by the command modules: progress bars, tables, JSON, the output guard."""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path



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


#: Namespace attributes that name input files or folders, with their label for messages.
_INPUT_ARGS = (("model", "the model"), ("fp32_model", "the FP32 model"), ("quant_model", "the quantized model"),
               ("data", "the data folder"), ("eval_data", "the evaluation data folder"),
               ("ranges", "the ranges file"), ("plan", "the plan file"), ("statistics", "the statistics file"),
               ("cache", "the calibration cache"), ("legacy_int8_cache", "the calibration cache"),
               ("timing_cache", "the timing cache"), ("engine", "the engine"))
_SCRIPT_ARGS = (("data_loader_script", "the data loader script"),
                ("eval_data_loader_script", "the evaluation data loader script"),
                ("metric_script", "the metric script"))


def cli_inputs(args) -> list:
    """``(label, path)`` of every input named on the command line (models with their external
    data), for the output guard: no output may resolve to one of them."""
    from ..data import parse_script_spec
    from ..outputs.writer import input_paths

    pairs = []
    for attr, label in _INPUT_ARGS:
        value = getattr(args, attr, None)
        if value:
            pairs.append((label, Path(value)))
            if attr.endswith("model"):
                pairs += [(f"{label}'s external data", p) for p in _external(Path(value))]
    for attr, label in _SCRIPT_ARGS:
        value = getattr(args, attr, None)
        if value:
            pairs.append((label, parse_script_spec(value)[0]))
    return input_paths(*pairs)


def _external(path: Path) -> list:
    from ..outputs.writer import external_data_files

    return external_data_files(path) if path.is_file() else []


def result_for(args, files, what: str, *, extra_inputs=(), folder=None, optional=()):
    """The :class:`~workbench.outputs.ResultWriter` of a command: ``files`` checked against every
    input of ``args`` and locked, to be used as ``with result_for(...) as result:``."""
    from ..outputs.writer import ResultWriter

    return ResultWriter(files, inputs=cli_inputs(args) + list(extra_inputs),
                        overwrite=getattr(args, "overwrite", False), what=what, folder=folder,
                        optional=optional)


def output_stem(args) -> Path:
    """The result stem of ``-o`` (``out/q.onnx`` -> ``out/q``). An existing folder is refused:
    it is not silently used as a stem (``out.onnx`` beside it), nor written into."""
    from ..errors import WorkbenchError
    from ..outputs.names import stem_of

    out = Path(args.output)
    if out.is_dir():
        model = Path(getattr(args, "model", "model") or "model").stem
        raise WorkbenchError(f"-o '{out}' is an existing folder; -o names the output model file. "
                             f"Give a file path, e.g. -o '{out / (model + '.quant.onnx')}'. Nothing was written.")
    return stem_of(out)


def say_overlaps(matched: dict, plan) -> bool:
    """One warning when patterns of different precisions matched the same nodes: which one wins
    (the later flag in the order --int8, --fp16, --fp32), so no choice is overridden silently."""
    import sys

    both = {n: m for n, m in matched.items() if len({flag for flag, _ in m}) > 1}
    if not both:
        return False
    node, m = next(iter(both.items()))
    flags = " and ".join(f"{flag} {pattern!r}" for flag, pattern in m)
    print(f"WARNING: {len(both)} node(s) match patterns of more than one precision (e.g. '{node}': {flags}); "
          f"the later precision in the order --int8, --fp16, --fp32 wins, so they are "
          f"{plan.precision(node).value.upper()}.", file=sys.stderr)
    return True


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
    from contextlib import nullcontext

    from ..graph.semantics import DEPLOYED, DEPLOYED_GAP_DB, EXACT, SATURATION_HINT, deployed_path, describe

    out = {}
    print(f"Accuracy of the written files vs FP32 on {evaluator.num_samples} evaluation samples:")
    for kind, res in results.items():
        runs = [EXACT] + ([DEPLOYED] if kind == "cpu_uint8" else [])
        for opt in runs:
            with deployed_path() if opt == DEPLOYED else nullcontext():  # cpu_uint8 as deployed
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
