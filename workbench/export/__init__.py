"""Export a precision plan as ONNX: Q/DQ for TensorRT, an ONNX Runtime evaluation variant,
a CPU-deployment uint8 variant, plus the plan JSON and the legacy calibration cache.

Which file is for what:

* ``variant="trt"``: the file for TensorRT 10/11 (strongly typed build): symmetric INT8
  Q/DQ (zero point 0, activation scale amax/127 per tensor, weights per output channel) and
  real float16 tensors for FP16 nodes.
* ``variant="ort"``: the file for evaluation with ONNX Runtime on CPU. Same Q/DQ; FP16 nodes
  compute in FP32 on values rounded to float16 (inputs, weights and outputs), which is what
  an FP16 kernel computes up to accumulation order. Its CPU *latency* says nothing about
  TensorRT speed: ONNX Runtime fuses only part of the symmetric Q/DQ graph.
  ONNX Runtime CPU can also run the "trt" file (it wraps float16 nodes that lack a CPU
  kernel in casts to FP32, i.e. the same emulation): on the sample model both gave
  identical logits, but the "trt" file ran about 2x slower, so evaluation uses "ort".
* ``variant="cpu_uint8"``: for deployment with ONNX Runtime on CPU: uint8 asymmetric
  activations with zero points from the same statistics, int8 per-channel weights, Q/DQ also
  on INT8 outputs so ONNX Runtime fuses QLinearConv/QLinearMatMul. FP16 plan entries run FP32.

Layer 7, export: owns writing a plan as ONNX files. May import: graph, data, backends, calib,
precision, outputs and the top-level helpers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .._io import atomic_save_onnx, refuse_overwrite
from ..errors import WorkbenchError
from ..validate import check_choice
from ..calib.amax import symmetric_scale
from ..precision.plan import FP16_MAX, PrecisionPlan
from ..calib.rangemap import range_map
from .build import VARIANT_ROLES, VARIANTS, BuildResult, build, build_quantized
from ..backends.commands import engine_build_commands
from ..outputs.names import export_path, stem_of

__all__ = ["build", "build_quantized", "export_model", "export_files", "export_result_files", "export_result",
           "export_result_stale",
           "engine_build_commands", "ExportResult", "BuildResult", "VARIANTS", "VARIANT_ROLES", "qdq_placement"]


def qdq_placement(model_info, plan: PrecisionPlan, variant: str = "trt", ranges=None) -> dict:
    """Node -> the activation tensors (in input order) whose Q/DQ output it reads under ``plan``.

    The same decision :func:`build_quantized` makes (see ``workbench.export.qdq``): e.g. a
    residual Add lists only its residual input when the other comes from an INT8 conv.
    ``ranges`` matters only for the cpu_uint8 variant (outputs are quantized where a range
    exists; default: assume every tensor has one).
    """
    from .build import MIN_QDQ_OPSET, _prepare
    from .qdq import place_qdq

    rmap = range_map(ranges)
    g = _prepare(model_info, model_info.opset < MIN_QDQ_OPSET and bool(plan.int8_nodes()))
    place = place_qdq(g, plan.int8_nodes(), variant,
                      (lambda t: True) if ranges is None else (lambda t: t in rmap))
    rows = sorted((g.nodes.index(g.node(node)), i, node, tensor)
                  for tensor, slots in place.activations.items() for node, i in slots)
    out: dict[str, list] = {}
    for _, _, node, tensor in rows:  # graph order, then input order
        out.setdefault(node, []).append(tensor)
    return out


@dataclass
class ExportResult:
    """What :func:`export_model` wrote.

    ``onnx_path``: the model; ``variant`` and ``role``: which file it is and what it is for;
    ``plan_path``: the effective plan as JSON (None when not written); ``cache_path``: the TensorRT calibration cache
    (None when not written); ``commands``: label -> engine build command (trt variant);
    ``plan``: the effective plan; ``notes``: sentences for the report.
    """

    onnx_path: Path
    variant: str
    role: str
    plan_path: Path | None
    cache_path: Path | None
    commands: dict
    plan: PrecisionPlan
    notes: list = field(default_factory=list)
    build: BuildResult | None = None

    def describe(self) -> str:
        lines = [f"{self.onnx_path}: {self.role}"]
        if self.plan_path:
            lines.append(f"plan: {self.plan_path}")
        if self.cache_path:
            lines.append(f"calibration cache (TensorRT <= 10 implicit INT8 only): {self.cache_path}")
        lines += [f"  {k}: {v}" for k, v in self.commands.items()]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def export_model(model_info, ranges, plan: PrecisionPlan, out_path: str | os.PathLike, *,
                 variant: str = "trt", calibration_cache: bool = True,
                 allow_existing_qdq: bool = False, fp16_threshold: float = FP16_MAX,
                 cache_algorithm: str = "EntropyCalibration2", write_plan: bool = True,
                 reduce_range: bool | None = None, result=None, overwrite: bool = False) -> ExportResult:
    """Write the quantized model for ``plan`` to ``out_path`` (atomically) with its plan JSON
    and, if asked, the calibration cache, named by :mod:`workbench.outputs.names`: for
    ``out/model.onnx``, ``out/model.plan.json`` and ``out/model.calib.cache``.

    Args:
        model_info: the source ModelInfo; its file is never overwritten (WorkbenchError).
        ranges: tensor name -> range (``.amax``, ``.min``, ``.max``) or a ``Ranges``.
        plan: the precision plan for this model.
        out_path: the .onnx file to write.
        variant: "trt" (default), "ort" or "cpu_uint8" (see the package docstring).
        calibration_cache: also write TensorRT's legacy calibration cache with the scale
            (amax/127, amax overrides applied) of every tensor in ``ranges`` (default True).
            It is for TensorRT <= 10 implicit INT8 builds only and cannot express the plan's
            FP16/FP32 choices; TensorRT 11 ignores it (use the Q/DQ file).
        allow_existing_qdq, fp16_threshold: see :func:`build_quantized`.
        cache_algorithm: the algorithm named in the cache header.
        write_plan: write the plan JSON (default True; False for a twin of a file that has it).
        reduce_range: cpu_uint8 only, 7-bit weights (see :func:`build_quantized`; None: auto).
        result: a :class:`workbench.outputs.ResultWriter` that declared :func:`export_files` (the
            caller commits it with the rest of its result); None: these files are one result of
            their own, checked, locked and moved into place together.
        overwrite: without ``result``, replace existing files (default False: an existing file
            is refused, nothing is written); inputs never.

    The ONNX file records the source model in its metadata (``workbench.source_fingerprint``,
    ``workbench.source_model``) so that evaluating it against another FP32 model is caught.
    """
    _check_export_args(model_info, ranges, plan, out_path, "export_model", overwrite)
    check_choice(variant, VARIANTS, "export_model(variant=...)")
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".onnx":
        raise WorkbenchError(f"Output path '{out_path}' should end in .onnx.")
    refuse_overwrite(out_path, model_info.path)
    stem = stem_of(out_path)
    plan_path = export_path(stem, "plan") if write_plan else None
    cache_path = export_path(stem, "cache") if calibration_cache else None
    files = export_files(out_path, calibration_cache=calibration_cache, write_plan=write_plan)
    for extra in files:
        refuse_overwrite(extra, model_info.path)
    from contextlib import nullcontext

    from ..outputs.writer import ResultWriter, model_inputs

    writer = nullcontext(result) if result is not None else ResultWriter(
        files, inputs=model_inputs(model_info), overwrite=overwrite, what=f"export of '{out_path.name}'")
    with writer as result:
        res = build(model_info, ranges, plan, variant=variant, allow_existing_qdq=allow_existing_qdq,
                    fp16_threshold=fp16_threshold, reduce_range=reduce_range)
        _record_source(res.model, model_info)
        atomic_save_onnx(res.model, result.path(out_path))
        if plan_path is not None:
            res.plan.save(result.path(plan_path))
        if cache_path is not None:
            from ..backends.trt_cache import write_calibration_cache

            rmap = range_map(ranges)
            overrides = plan.amax_overrides
            scales = {t: float(symmetric_scale(overrides.get(t, r.amax))) for t, r in rmap.items()}
            scales.update({t: float(symmetric_scale(a)) for t, a in overrides.items()})
            write_calibration_cache(result.path(cache_path), scales, algorithm=cache_algorithm, provenance={
                "model": str(model_info.path) if model_info.path else model_info.name,
                "model_fingerprint": model_info.fingerprint(),
                "data_fingerprint": getattr(ranges, "data_fingerprint", None) or None,
                "method": getattr(ranges, "method", None), "exported_model": str(out_path)})
    commands = engine_build_commands(out_path) if variant == "trt" else {}
    notes = list(res.notes)
    if variant != "trt":
        notes.append("This file is not for TensorRT; export variant='trt' for the engine build.")
    if variant == "ort":
        notes.append("CPU latency of this model is no proxy for TensorRT speed.")
    return ExportResult(out_path, variant, res.role, plan_path, cache_path, commands, res.plan,
                        notes, res)


def export_files(out_path, *, calibration_cache: bool = True, write_plan: bool = True) -> list:
    """Every file :func:`export_model` writes for ``out_path`` (the model, its plan, the cache
    and the cache's provenance file), for the output guard of a caller's result."""
    from ..outputs.names import sidecar_path

    stem = stem_of(out_path)
    files = [Path(out_path)] + ([export_path(stem, "plan")] if write_plan else [])
    if calibration_cache:
        files += [export_path(stem, "cache"), sidecar_path(export_path(stem, "cache"))]
    return files


def export_result_files(stem, kinds=("qdq", "ort")) -> list:
    """Every file :func:`export_result` writes for ``stem`` and ``kinds``."""
    files = export_files(export_path(stem, "qdq"))
    return files + [export_path(stem, k) for k in kinds if k != "qdq"]


def export_result_stale(stem, kinds=("qdq", "ort"), *, written=(), inputs=()) -> list:
    """The files of result ``stem`` this result does not write: the ONNX twins that ``kinds``
    leaves out (whether they exist or not) and, when ``written`` (every file the result writes)
    is given, every other existing file of the stem (an older run's plan, cache, curve, Model
    Explorer overlays, report...). One result is one stem: they are declared optional in the
    result's writer, so that an older run's files (and their stale locks) are removed when the
    result is replaced and cannot pass for part of it. ``inputs`` (what the command reads) are
    never among them."""
    from .._io import not_inputs
    from ..outputs.guard import abs_path
    from ..outputs.names import VARIANT_KIND, stem_files

    twins = [export_path(stem, k) for k in VARIANT_KIND.values() if k not in kinds]
    skip = {abs_path(f) for f in list(twins) + list(written)}
    older = [f for f in stem_files(stem) if written and abs_path(f) not in skip]
    return not_inputs(twins + older, inputs)


def _check_export_args(model_info, ranges, plan, path, where: str, overwrite) -> None:
    """Argument types of the export functions, checked before any work."""
    from ..calib.ranges import Ranges
    from ..graph.model import ModelInfo
    from ..validate import check_bool, check_path, check_type

    check_type(model_info, ModelInfo, f"{where}(model_info=...)", expected="a ModelInfo (ModelInfo.from_path(path))")
    if not isinstance(ranges, (Ranges, dict)):
        raise WorkbenchError(f"{where}(ranges=...) must be a Ranges (compute_ranges(stats) or Ranges.load(path)), "
                             f"got {type(ranges).__name__}.")
    check_type(plan, PrecisionPlan, f"{where}(plan=...)", expected="a PrecisionPlan (PrecisionPlan.default(model_info))")
    check_path(path, f"{where}'s output path")
    check_bool(overwrite, f"{where}(overwrite=...)")


def _record_source(model, model_info) -> None:
    """Name the source model in the exported model's metadata (replacing an older record)."""
    keep = [p for p in model.metadata_props if not p.key.startswith("workbench.source_")]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in (("workbench.source_fingerprint", model_info.fingerprint()),
                       ("workbench.source_model", model_info.name)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def export_result(model_info, ranges, plan: PrecisionPlan, stem, *, kinds=("qdq", "ort"),
                  cache_algorithm: str = "EntropyCalibration2", allow_existing_qdq: bool = False,
                  result=None, overwrite: bool = False) -> dict:
    """Write one result: the TensorRT Q/DQ model with its plan and calibration cache, plus the
    ONNX Runtime files of ``kinds`` beside it, all named by :mod:`workbench.outputs.names` from
    ``stem`` (``out/model`` -> ``out/model.onnx``, ``out/model.ort.onnx``, ...).

    Args:
        kinds: ONNX kinds to write: "qdq" (always written first), "ort", "cpu_uint8".
        cache_algorithm: the algorithm named in the calibration cache header.
        allow_existing_qdq: see :func:`build_quantized`.

    Returns {kind: ExportResult}. The twins get no plan or cache of their own (the plan of
    all of them is the one beside the TensorRT file). All files appear together or none
    (``result``: the caller's ResultWriter, which declared :func:`export_result_files`;
    None: a result of their own, ``overwrite`` saying whether existing files may be replaced,
    default False: an existing file is refused and nothing is written). With ``overwrite``, the
    twins of an older result of ``stem`` that ``kinds`` does not write are removed.
    """
    from ..outputs.names import VARIANT_KIND

    _check_export_args(model_info, ranges, plan, stem, "export_result", overwrite)
    if isinstance(kinds, str) or not isinstance(kinds, (list, tuple)):
        raise WorkbenchError(f"export_result(kinds=...) must be a list of kinds such as ['qdq', 'ort'], got {kinds!r}.")

    unknown = [k for k in kinds if k not in VARIANT_KIND.values()]
    if unknown:
        raise WorkbenchError(f"Unknown model kind(s) {unknown}; choose from {sorted(VARIANT_KIND.values())}.")
    variant_of = {k: v for v, k in VARIANT_KIND.items()}
    if result is None:
        from ..outputs.writer import ResultWriter, model_inputs

        with ResultWriter(export_result_files(stem, kinds), inputs=model_inputs(model_info),
                          overwrite=overwrite, what=f"export of '{Path(stem).name}'",
                          optional=export_result_stale(stem, kinds)) as own:
            return export_result(model_info, ranges, plan, stem, kinds=kinds, cache_algorithm=cache_algorithm,
                                 allow_existing_qdq=allow_existing_qdq, result=own)
    out = {"qdq": export_model(model_info, ranges, plan, export_path(stem, "qdq"), variant="trt",
                               cache_algorithm=cache_algorithm, allow_existing_qdq=allow_existing_qdq,
                               result=result)}
    for kind in kinds:
        if kind != "qdq":
            out[kind] = export_model(model_info, ranges, plan, export_path(stem, kind), variant=variant_of[kind],
                                     calibration_cache=False, write_plan=False,
                                     allow_existing_qdq=allow_existing_qdq, result=result)
    return out
