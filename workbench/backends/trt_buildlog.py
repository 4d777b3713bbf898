"""What the TensorRT builder's own log says about the engine, read without a GPU.

With verbose logging and ``ProfilingVerbosity.DETAILED``, TensorRT-RTX's builder ends the
build with a ``Layers:`` message: one line per engine layer in TensorRT's one-line layer
format (``Name: ..., LayerType: ..., Inputs: [ { Name: ..., Datatype: Int8, Format: ... }],
Constants: [...], Outputs: [...], TacticName: ..., StreamId: 0, Metadata: [ONNX Layer: a][ONNX
Layer: b]``). :func:`layers_from_log` turns it into the engine-inspector layout that
:mod:`workbench.backends.trt_inspect` reads, so the precisions shown are TensorRT's, from the
engine as built (ahead of time, before TensorRT-RTX's JIT picks kernels on the GPU).

When the log has no such table (TensorRT 10/11 print layer information differently, or the
verbosity was lower), the functions return None: no table is invented.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

BUILDER_LOG_SOURCE = "TensorRT builder log (verbose, ProfilingVerbosity.DETAILED)"

_TOP_KEYS = ("Name", "LayerType", "Inputs", "Constants", "Outputs", "TacticName", "StreamId", "Metadata")
_KEY_RE = re.compile(r"(?:^|, )(" + "|".join(_TOP_KEYS) + r"): ")
_IO_RE = re.compile(r"Name: (.*?), IOMode: (\w+), DataType: (\w+), Dimensions: \[([^\]]*)\]")
_TENSOR_KEY_RE = re.compile(r"(?:^|, )(Name|Dimensions|Strides|StrideOrder|Datatype|Format|Location): ")


def _split_fields(text: str, key_re: re.Pattern) -> dict[str, str]:
    """``"A: 1, B: [x, y], C: z"`` -> {"A": "1", "B": "[x, y]", "C": "z"} for the known keys,
    at bracket depth 0 only (values may contain commas inside brackets)."""
    depth, starts = 0, []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif depth == 0:
            match = key_re.match(text, i)
            if match and (i == 0 or text[i:i + 2] == ", "):
                starts.append((match.start(), match.end(), match.group(1)))
                i = match.end()
                continue
        i += 1
    fields = {}
    for n, (_, value_start, key) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(text)
        fields[key] = text[value_start:end].strip()
    return fields


def _split_objects(text: str) -> list[str]:
    """``"[ { a }, { b }]"`` -> ["a", "b"] (top-level braces only)."""
    out, depth, start = [], 0, None
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i + 1
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0 and start is not None:
                out.append(text[start:i].strip())
    return out


def _tensor(text: str) -> dict[str, Any]:
    fields = _split_fields(text, _TENSOR_KEY_RE)
    tensor: dict[str, Any] = {k: v for k, v in fields.items() if k in ("Name", "Datatype", "Format")}
    dims = fields.get("Dimensions", "").strip("[]")
    if dims:
        try:
            tensor["Dimensions"] = [int(d) for d in dims.split(",")]
        except ValueError:
            tensor["Dimensions"] = dims
    return tensor


def parse_layer_line(line: str) -> dict[str, Any] | None:
    """One line of TensorRT's one-line layer format as an inspector-style layer dict."""
    if not line.startswith("Name: "):
        return None
    fields = _split_fields(line, _KEY_RE)
    layer: dict[str, Any] = {"Name": fields.get("Name", ""), "LayerType": fields.get("LayerType", "Unknown")}
    for key in ("Inputs", "Outputs", "Constants"):
        layer[key] = [_tensor(t) for t in _split_objects(fields.get(key, ""))]
    if "TacticName" in fields:
        layer["TacticName"] = fields["TacticName"]
    if fields.get("Metadata"):
        layer["Metadata"] = fields["Metadata"]
    return layer


def parse_io_line(line: str) -> dict[str, Any] | None:
    """``Name: input, IOMode: Input, DataType: Float, Dimensions: [1,3,16,16], ...`` as an
    inspector-style I/O tensor entry (the table lists the engine's I/O tensors after its layers)."""
    match = _IO_RE.match(line)
    if not match:
        return None
    name, mode, dtype, dims = match.groups()
    entry: dict[str, Any] = {"Name": name, "IOMode": mode, "DataType": dtype}
    try:
        entry["Dimensions"] = [int(d) for d in dims.split(",") if d]
    except ValueError:
        entry["Dimensions"] = dims
    return entry


def layers_from_log(messages: Iterable[str]) -> dict[str, Any] | None:
    """The builder's ``Layers:`` table as ``{"Layers": [...], "I/O Tensors": [...], "Source": ...}``,
    or None when the log has none."""
    table = None
    for message in messages:
        if message.startswith("Layers:"):
            table = message  # the last one describes the engine that was serialized
    if table is None:
        return None
    layers, io = [], []
    for line in table.splitlines()[1:]:
        line = line.strip()
        entry = parse_io_line(line)
        if entry is not None:
            io.append(entry)
        elif (layer := parse_layer_line(line)) is not None:
            layers.append(layer)
    if not layers:
        return None
    return {"Layers": layers, "I/O Tensors": io, "Source": BUILDER_LOG_SOURCE}


def weight_precisions(info: dict[str, Any]) -> dict[str, int]:
    """Engine layers per data type of their first weight constant (``{"INT8": 50, "FP32": 1}``):
    which convolutions / GEMMs hold INT8 weights. Layers without constants are not counted."""
    from .trt_inspect import precision_from_text

    counts: dict[str, int] = {}
    for layer in info.get("Layers", []):
        if layer.get("LayerType") not in ("correlation", "gemm", "CaskConvolution", "CaskGemmConvolution"):
            continue
        consts = layer.get("Constants") or []
        precision = precision_from_text(str(consts[0].get("Datatype"))) if consts else None
        if precision:
            counts[precision] = counts.get(precision, 0) + 1
    return counts


def memory_from_log(messages: Iterable[str]) -> dict[str, int]:
    """``Total Weights Memory: N bytes`` and friends, as ``{"weights_bytes": N, ...}`` (last build)."""
    names = {"Total Weights Memory": "weights_bytes", "Total Activation Memory": "activation_bytes",
             "Total Device Persistent Memory": "device_persistent_bytes",
             "Total Host Persistent Memory": "host_persistent_bytes"}
    found: dict[str, int] = {}
    for message in messages:
        for text, key in names.items():
            match = re.match(re.escape(text) + r": (\d+) bytes", message)
            if match:
                found[key] = int(match.group(1))
    return found


def qdq_weighted_nodes(onnx_path) -> list[str]:
    """Conv / ConvTranspose / Gemm / MatMul nodes whose data and weight inputs both come from a
    DequantizeLinear: the nodes the Q/DQ file asks TensorRT to run in INT8."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    dq_outputs = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [n.name for n in graph.node if n.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul")
            and len(n.input) > 1 and n.input[0] in dq_outputs and n.input[1] in dq_outputs]


def not_int8(info: dict[str, Any], onnx_path) -> dict[str, str | None]:
    """Q/DQ weighted nodes (see :func:`qdq_weighted_nodes`) that TensorRT's layer table shows
    in another precision than INT8: ``{node: "FP32"}`` (None: not found in the table)."""
    from .trt_inspect import layers_dataframe, node_precisions

    actual = node_precisions(layers_dataframe(info))
    return {n: actual.get(n) for n in qdq_weighted_nodes(onnx_path) if actual.get(n) != "INT8"}
