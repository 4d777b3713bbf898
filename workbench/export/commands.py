"""Command lines that build a TensorRT engine from an exported Q/DQ ONNX file."""
from __future__ import annotations

import shlex
from pathlib import Path


def engine_build_commands(onnx_path, engine_path=None) -> dict:
    """trtexec and Polygraphy commands for TensorRT 10 and 11 (nothing is run here).

    Args:
        onnx_path: the exported "trt" variant file.
        engine_path: where the engine goes (default: ``onnx_path`` with suffix ``.engine``).

    Returns a dict label -> command line. The file carries its precisions in the graph
    (Q/DQ for INT8, float16 tensors for FP16), so the build must be *strongly typed*:
    TensorRT 10 needs ``--stronglyTyped`` (otherwise it may pick other precisions for the
    non-Q/DQ layers); on TensorRT 11 every network is strongly typed and the flag is
    accepted as a no-op, so the same command works on both. Do not add ``--int8``/``--fp16``
    or a calibration cache: those are weak-typing options, removed in TensorRT 11.
    """
    onnx_path = Path(onnx_path)
    engine = Path(engine_path) if engine_path is not None else onnx_path.with_suffix(".engine")
    o, e = shlex.quote(str(onnx_path)), shlex.quote(str(engine))
    return {
        "trtexec (TensorRT 10)": f"trtexec --onnx={o} --stronglyTyped --saveEngine={e}",
        "trtexec (TensorRT 11)": f"trtexec --onnx={o} --saveEngine={e}",
        "polygraphy (TensorRT 10)": f"polygraphy convert {o} --strongly-typed -o {e}",
        "polygraphy (TensorRT 11)": f"polygraphy convert {o} --strongly-typed -o {e}",
        "polygraphy check (TensorRT 10/11)":
            f"polygraphy run {o} --trt --strongly-typed --onnxrt --atol 1e-2 --rtol 1e-2",
    }
