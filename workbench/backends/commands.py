"""The one generator of printed engine-build and check command lines (nothing is run here).

Used by ``workbench quantize`` / the export result, ``workbench build --print-commands`` and
the app. The exported file carries its precisions in the graph (Q/DQ for INT8, float16
tensors for FP16), so every build is *strongly typed*: TensorRT 10 needs
``--stronglyTyped``; TensorRT 11 and TensorRT-RTX build strongly typed networks only (the
flag is accepted as a no-op on 11). Never ``--int8``/``--fp16`` or a calibration cache:
those are weak-typing options, removed in TensorRT 11 and refused by TensorRT-RTX.

The check command compares TensorRT with ONNX Runtime running the same Q/DQ graph with its
graph optimizations off (``--graph-optimization-level ORT_DISABLE_ALL``, Polygraphy >= 0.49):
exact ONNX semantics. ONNX Runtime's default (all optimizations) fuses Q/DQ into integer
kernels that saturate on CPUs without VNNI, which would blame TensorRT for ONNX Runtime's
rounding.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Mapping, Sequence

RTX_ENV = "POLYGRAPHY_USE_TENSORRT_RTX=1"


def _format(shapes: Mapping[str, Sequence[int]], style: str) -> str:
    if style == "trtexec":
        return ",".join(f"{n}:{'x'.join(str(d) for d in s)}" for n, s in shapes.items())
    return " ".join(shlex.quote(f"{n}:[{','.join(str(d) for d in s)}]") for n, s in shapes.items())


def engine_build_commands(onnx_path, engine_path=None, *, shapes: Mapping[str, Sequence[int]] | None = None,
                          timing_cache=None, compute_capabilities: Sequence[str] = (),
                          detailed: bool = False, tolerance: float = 1e-2) -> dict[str, str]:
    """Label -> command line for TensorRT 10, 11 and TensorRT-RTX, plus the accuracy check.

    Args:
        onnx_path: the exported "trt" variant file.
        engine_path: where the engine goes (default: ``onnx_path`` with suffix ``.engine``).
        shapes: opt shapes ``{input: dims}`` used as min = opt = max (None: the model's own).
        timing_cache: a timing-cache file to load and update.
        compute_capabilities: TensorRT-RTX target GPUs (``"8.6"``...); empty: its default set.
        detailed: add detailed profiling verbosity and (trtexec) the layer-info export, which
            the engine inspection needs.
        tolerance: ``--atol``/``--rtol`` of the check command.
    """
    onnx_path = Path(onnx_path)
    engine = Path(engine_path) if engine_path is not None else onnx_path.with_suffix(".engine")
    o, e = shlex.quote(str(onnx_path)), shlex.quote(str(engine))
    trtexec_extra, poly_extra = [], []
    if shapes:
        s = _format(shapes, "trtexec")
        trtexec_extra += [f"--minShapes={s}", f"--optShapes={s}", f"--maxShapes={s}"]
        s = _format(shapes, "polygraphy")
        poly_extra += [f"{flag} {s}" for flag in ("--trt-min-shapes", "--trt-opt-shapes", "--trt-max-shapes")]
    if timing_cache:
        t = shlex.quote(str(timing_cache))
        trtexec_extra.append(f"--timingCacheFile={t}")
        poly_extra.append(f"--load-timing-cache {t} --save-timing-cache {t}")
    if detailed:
        trtexec_extra += ["--profilingVerbosity=detailed", f"--exportLayerInfo={shlex.quote(str(engine) + '.layers.json')}"]
        poly_extra.append("--profiling-verbosity detailed")
    tx = "".join(f" {x}" for x in trtexec_extra)
    px = "".join(f" {x}" for x in poly_extra)
    ccs = f" --compute-capabilities {' '.join(compute_capabilities)}" if compute_capabilities else ""
    check = (f"polygraphy run {o} --trt --strongly-typed --onnxrt --graph-optimization-level ORT_DISABLE_ALL"
             f" --atol {tolerance:g} --rtol {tolerance:g}")
    shape_check = f" --input-shapes {_format(shapes, 'polygraphy')}" if shapes else ""
    return {
        "trtexec (TensorRT 10)": f"trtexec --onnx={o} --stronglyTyped --saveEngine={e}{tx}",
        "trtexec (TensorRT 11)": f"trtexec --onnx={o} --saveEngine={e}{tx}",
        "polygraphy (TensorRT 10)": f"polygraphy convert {o} --strongly-typed -o {e}{px}",
        "polygraphy (TensorRT 11)": f"polygraphy convert {o} --strongly-typed -o {e}{px}",
        "polygraphy (TensorRT-RTX)": f"{RTX_ENV} polygraphy convert {o} -o {e}{px}{ccs}",
        "polygraphy check (TensorRT 10/11)": check + shape_check,
        "polygraphy check (TensorRT-RTX, needs its GPU)": f"{RTX_ENV} {check}{shape_check}",
    }
