"""Read TensorRT engine-inspector JSON: which layers really run in INT8, FP16 or FP32.

Pure Python (json + pandas); TensorRT is not needed, so a JSON saved on a GPU machine
(``inspector.get_engine_information(trt.LayerInformationFormat.JSON)`` or
``trtexec --profilingVerbosity=detailed --exportLayerInfo=FILE``) can be read anywhere.

Layouts handled (see docs/TENSORRT.md for the sources):

- TensorRT 8.6-10 with ``ProfilingVerbosity.DETAILED``: ``{"Layers": [{...}], "Bindings":
  ["in", "out"]}``; every layer tensor has one ``"Format/Datatype"`` string such as
  ``"Row major linear FP32"``, ``"Channel major FP16 format where channel % 8 == 0"``,
  ``"Thirty-two wide channel vectorized row major Int8 format."`` or, for Myelin/kgen
  layers, just ``"Half"`` / ``"Float"`` / ``"Int8"``. Without an execution context a
  dynamic-shape engine shows ``"N/A due to dynamic shapes"``.
- TensorRT 11: ``"Bindings"`` became ``"I/O Tensors"`` (a list of objects with ``Name``,
  ``IOMode``, ``DataType``, ``Dimensions``, ``ProfileInfo``...) and the per-tensor
  ``"Format/Datatype"`` field was split into a data type field and a ``"Format"`` field.
  Both ``"Datatype"`` and ``"DataType"`` spellings are accepted.
- ``ProfilingVerbosity.LAYER_NAMES_ONLY`` (the default when nothing is set): ``"Layers"`` is
  a list of strings; names are kept, precisions are unknown.

ONNX origins: since TensorRT 8.6 a layer's ``"Metadata"`` carries ``"[ONNX Layer: <node>]"``
entries separated by ``\\x1e`` (or ``\\x1f``). Without metadata the layer name is split on
``" + "`` (TensorRT's fusion naming) and ``PWN(...)`` wrappers are unwrapped.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..errors import WorkbenchError

# Order matters: lower precision first, so that "lowest precision wins" is a min over this.
PRECISION_ORDER = ("FP4", "INT4", "FP8", "INT8", "UINT8", "FP16", "BF16", "FP32", "INT32",
                   "INT64", "BOOL", "FP64")

# (regex, precision). Word boundaries keep "UInt8" from matching Int8 and "BFloat16" Float.
_PRECISION_PATTERNS = [
    (r"\bB(?:F|Float)16\b", "BF16"),
    (r"\b(?:FP8|Float8|E4M3|E5M2)\b|FLOAT8E4M3|FLOAT8E5M2", "FP8"),
    (r"\b(?:FP4|Float4|E2M1)\b", "FP4"),
    (r"\bUInt8\b", "UINT8"),
    (r"\bInt8\b", "INT8"),
    (r"\bInt4\b", "INT4"),
    (r"\b(?:FP16|Half)\b", "FP16"),
    (r"\b(?:FP32|Float)\b", "FP32"),
    (r"\bDouble\b|\bFP64\b", "FP64"),
    (r"\bInt32\b", "INT32"),
    (r"\bInt64\b", "INT64"),
    (r"\bBool\b", "BOOL"),
]

# Layers that move or relabel data; they say nothing about the precision a node computed in.
NON_COMPUTE_TYPES = frozenset({"Reformat", "NoOp", "signal", "wait"})

_ONNX_LAYER_RE = re.compile(r"\[ONNX Layer: ([^\]]*)\]")
_METADATA_SEPARATORS = re.compile("[\x1e\x1f]")
_PROFILE_SUFFIX_RE = re.compile(r"\s*\[profile \d+\]$")


def precision_from_text(text: str | None) -> str | None:
    """The data type named in a TensorRT format or data type string, e.g.
    ``"Channel major FP16 format where channel % 8 == 0"`` -> ``"FP16"``, ``"Half"`` ->
    ``"FP16"``, ``"Row major Int8 format"`` -> ``"INT8"``. None when the text names none
    (e.g. ``"N/A due to dynamic shapes"``)."""
    if not text:
        return None
    for pattern, precision in _PRECISION_PATTERNS:
        if re.search(pattern, text, flags=re.IGNORECASE):
            return precision
    return None


def tensor_precision_format(tensor: Mapping[str, Any]) -> tuple[str | None, str]:
    """(precision, format text) of one layer input/output entry in either layout."""
    if "Format/Datatype" in tensor:  # TensorRT <= 10
        text = str(tensor.get("Format/Datatype") or "").rstrip(".")
        return precision_from_text(text), text
    dtype = tensor.get("Datatype", tensor.get("DataType"))  # TensorRT 11 split the field
    fmt = str(tensor.get("Format") or "").rstrip(".")
    precision = precision_from_text(str(dtype)) if dtype else None
    return precision or precision_from_text(fmt), fmt or (str(dtype) if dtype else "")


def onnx_nodes_from_metadata(metadata: str | None) -> list[str]:
    """ONNX node names in a layer's ``Metadata`` (``[ONNX Layer: a]\\x1e[ONNX Layer: b]``)."""
    if not metadata:
        return []
    names = []
    for part in _METADATA_SEPARATORS.split(metadata):
        names.extend(m.strip() for m in _ONNX_LAYER_RE.findall(part))
    return [n for n in dict.fromkeys(names) if n]


def _unwrap_pwn(name: str) -> list[str]:
    """``PWN(PWN(a, b), c)`` -> ``[a, b, c]``: TensorRT's name for fused pointwise layers."""
    name = name.strip()
    if name.startswith("PWN(") and name.endswith(")"):
        inner, depth, parts, start = name[4:-1], 0, [], 0
        for i, ch in enumerate(inner):
            depth += ch == "("
            depth -= ch == ")"
            if ch == "," and depth == 0:
                parts.append(inner[start:i])
                start = i + 1
        parts.append(inner[start:])
        return [n for p in parts for n in _unwrap_pwn(p)]
    return [name] if name else []


def onnx_nodes_from_name(name: str) -> list[str]:
    """Best-effort origins from a fused layer name (``"conv1 + relu1"``, ``PWN(...)``).

    Reformat layers (``"Reformatting CopyNode for ..."``) and TensorRT-internal names
    (``"(Unnamed Layer* 3) [Shuffle]"``, ``__myl_...``) have no ONNX origin and give []."""
    name = _PROFILE_SUFFIX_RE.sub("", name)
    if name.startswith("Reformatting CopyNode") or name.startswith("(Unnamed Layer") \
            or name.startswith("__myl") or name.startswith("{ForeignNode["):
        return []
    nodes = []
    for part in name.split(" + "):
        nodes.extend(_unwrap_pwn(part))
    return [n for n in dict.fromkeys(nodes) if n and not n.startswith("(Unnamed Layer")]


def load_engine_info(source) -> dict:
    """Inspector JSON as a dict.

    Args:
        source: a dict (already parsed), a JSON string, or a path to a ``.json`` file.

    Raises:
        WorkbenchError: when the file is missing or not inspector JSON.
    """
    if isinstance(source, Mapping):
        info = dict(source)
    else:
        text = str(source)
        origin = "the inspector output"
        if isinstance(source, os.PathLike) or not text.lstrip().startswith(("{", "[")):
            path = Path(source)
            if not path.is_file():
                raise WorkbenchError(f"Engine inspector JSON not found: '{path}'")
            origin, text = f"'{path}'", path.read_text(encoding="utf-8")
        try:
            info = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorkbenchError(f"{origin} is not valid JSON ({exc})") from None
        if isinstance(info, list):  # some tools save only the layer list
            info = {"Layers": info}
    if not isinstance(info, dict) or not isinstance(info.get("Layers"), list):
        raise WorkbenchError("Not TensorRT engine-inspector JSON: expected an object with a "
                             "'Layers' list (from inspector.get_engine_information(JSON) or "
                             "trtexec --exportLayerInfo)")
    return info


def detect_layout(info: Mapping[str, Any]) -> str:
    """``"trt11"`` (I/O Tensors / split data type), ``"trt10"`` (Bindings / Format/Datatype),
    or ``"names_only"`` (engine built without detailed profiling verbosity)."""
    layers = info.get("Layers") or []
    if layers and all(isinstance(layer, str) for layer in layers):
        return "names_only"
    if "I/O Tensors" in info:
        return "trt11"
    for layer in layers:
        for t in list(layer.get("Inputs") or []) + list(layer.get("Outputs") or []):
            if isinstance(t, Mapping):
                return "trt10" if "Format/Datatype" in t else "trt11"
    return "trt10"


def io_tensors(source) -> pd.DataFrame:
    """Engine inputs/outputs: columns ``name, mode, dtype, shape`` (dtype/shape only on TRT 11;
    TensorRT 10's ``Bindings`` lists names only, mode is then ``None``)."""
    info = load_engine_info(source)
    rows = []
    for t in info.get("I/O Tensors") or []:
        rows.append({"name": t.get("Name"), "mode": t.get("IOMode"),
                     "dtype": precision_from_text(str(t.get("DataType", t.get("Datatype", "")))),
                     "shape": tuple(t.get("Dimensions") or ())})
    for name in info.get("Bindings") or []:
        rows.append({"name": name, "mode": None, "dtype": None, "shape": None})
    return pd.DataFrame(rows, columns=["name", "mode", "dtype", "shape"])


def _layer_precision(in_prec: list, out_prec: list) -> str | None:
    """The precision a layer computes in: its first data input's type (the convention of
    TensorRT Engine Explorer), else its first output's type."""
    for p in list(in_prec) + list(out_prec):
        if p is not None:
            return p
    return None


LAYER_COLUMNS = ["index", "name", "type", "layer_type", "precision", "input_precisions",
                 "output_precisions", "input_formats", "output_formats", "onnx_nodes",
                 "is_compute", "tactic", "metadata"]


def layers_dataframe(source) -> pd.DataFrame:
    """One row per engine layer.

    Columns: ``index``; ``name``; ``type`` (``ParameterType`` such as Convolution when
    present, else ``LayerType``); ``layer_type`` (TensorRT's implementation class, e.g.
    CaskConvolution, Reformat, kgen); ``precision`` (the computing precision, see
    :func:`_layer_precision`); ``input_precisions`` / ``output_precisions`` (lists);
    ``input_formats`` / ``output_formats`` (lists of TensorRT format text); ``onnx_nodes``
    (list of ONNX node names the layer came from); ``is_compute`` (False for Reformat/NoOp);
    ``tactic``; ``metadata`` (raw, separators replaced by " | ").

    Args:
        source: inspector JSON as dict, string or path (see :func:`load_engine_info`).
    """
    info = load_engine_info(source)
    rows = []
    for index, layer in enumerate(info["Layers"]):
        if isinstance(layer, str):  # LAYER_NAMES_ONLY verbosity: names only
            layer = {"Name": layer}
        name = str(layer.get("Name", f"layer_{index}"))
        ins = [tensor_precision_format(t) for t in layer.get("Inputs") or [] if isinstance(t, Mapping)]
        outs = [tensor_precision_format(t) for t in layer.get("Outputs") or [] if isinstance(t, Mapping)]
        layer_type = str(layer.get("LayerType", "Unknown"))
        nodes = onnx_nodes_from_metadata(layer.get("Metadata")) or onnx_nodes_from_name(name)
        in_prec, out_prec = [p for p, _ in ins], [p for p, _ in outs]
        metadata = layer.get("Metadata")
        rows.append({
            "index": index, "name": name,
            "type": str(layer.get("ParameterType", layer_type)), "layer_type": layer_type,
            "precision": _layer_precision(in_prec, out_prec),
            "input_precisions": in_prec, "output_precisions": out_prec,
            "input_formats": [f for _, f in ins], "output_formats": [f for _, f in outs],
            "onnx_nodes": nodes, "is_compute": layer_type not in NON_COMPUTE_TYPES,
            "tactic": layer.get("TacticName", layer.get("TacticValue")),
            "metadata": _METADATA_SEPARATORS.sub(" | ", metadata) if metadata else None,
        })
    df = pd.DataFrame(rows, columns=LAYER_COLUMNS)
    # keep None (not NaN) for unknown precisions: pandas would infer a string column
    df["precision"] = pd.Series([r["precision"] for r in rows], index=df.index, dtype=object)
    return df


def precision_summary(layers_df: pd.DataFrame, *, compute_only: bool = True) -> pd.Series:
    """Number of engine layers per precision (``"unknown"`` when the JSON has no types).

    Args:
        layers_df: from :func:`layers_dataframe`.
        compute_only: skip Reformat / NoOp layers (default True).
    """
    df = layers_df[layers_df["is_compute"]] if compute_only else layers_df
    counts = df["precision"].fillna("unknown").value_counts()
    order = [p for p in PRECISION_ORDER if p in counts.index] + \
            [p for p in counts.index if p not in PRECISION_ORDER]
    return counts.reindex(order).rename("layers")


def _rank(precision: str | None) -> int:
    return PRECISION_ORDER.index(precision) if precision in PRECISION_ORDER else len(PRECISION_ORDER)


def node_precisions(layers_df: pd.DataFrame) -> dict[str, str | None]:
    """ONNX node -> precision TensorRT actually ran it in.

    A node can end up in several engine layers; compute layers only are considered and
    the lowest precision among them wins (if any part of a Conv ran in INT8, it was
    quantized). Nodes seen only in Reformat layers map to that layer's precision.
    """
    result: dict[str, str | None] = {}
    fallback: dict[str, str | None] = {}
    for row in layers_df.itertuples(index=False):
        target = result if row.is_compute else fallback
        precision = None if pd.isna(row.precision) else row.precision
        for node in row.onnx_nodes:
            if node not in target or _rank(precision) < _rank(target[node]):
                target[node] = precision
    for node, precision in fallback.items():
        result.setdefault(node, precision)
    return result


def _normalize_precision(value: Any) -> str:
    """``Precision.INT8`` / ``"int8"`` / ``"half"`` -> ``"INT8"`` / ``"FP16"``."""
    text = getattr(value, "name", None) or getattr(value, "value", None) or str(value)
    text = str(text).split(".")[-1]
    return precision_from_text(text) or text.upper()


def compare_with_plan(layers_df: pd.DataFrame, plan_precisions: Mapping[str, Any], *,
                      include_missing: bool = True) -> pd.DataFrame:
    """Plan entries whose engine precision differs from what the workbench planned.

    Args:
        layers_df: from :func:`layers_dataframe`.
        plan_precisions: ONNX node name -> planned precision (``"INT8"``, ``"fp16"``, a
            ``Precision`` enum member...).
        include_missing: also report planned nodes that appear in no engine layer (fused
            into a neighbour without metadata, or removed); default True.

    Returns:
        DataFrame with columns ``node, planned, actual, status, engine_layers``; ``status`` is
        ``"different"``, ``"unknown"`` (the JSON has no precision for that layer) or
        ``"missing"``. Empty when the engine matches the plan.
    """
    actual = node_precisions(layers_df)
    layers_by_node: dict[str, list[str]] = {}
    for row in layers_df.itertuples(index=False):
        for node in row.onnx_nodes:
            layers_by_node.setdefault(node, []).append(row.name)
    rows = []
    for node, planned in plan_precisions.items():
        want = _normalize_precision(planned)
        if node not in actual:
            if include_missing:
                rows.append({"node": node, "planned": want, "actual": None, "status": "missing",
                             "engine_layers": []})
            continue
        got = actual[node]
        if got is None:
            rows.append({"node": node, "planned": want, "actual": None, "status": "unknown",
                         "engine_layers": layers_by_node.get(node, [])})
        elif got != want:
            rows.append({"node": node, "planned": want, "actual": got, "status": "different",
                         "engine_layers": layers_by_node.get(node, [])})
    return pd.DataFrame(rows, columns=["node", "planned", "actual", "status", "engine_layers"])


def summarize(source) -> dict[str, Any]:
    """Small dict for the CLI / UI: layout, layer count, layers per precision, I/O names."""
    info = load_engine_info(source)
    df = layers_dataframe(info)
    return {"layout": detect_layout(info), "layers": int(len(df)),
            "precisions": {k: int(v) for k, v in precision_summary(df).items()},
            "io_tensors": list(io_tensors(info)["name"])}
