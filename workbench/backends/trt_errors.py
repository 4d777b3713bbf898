"""Turn ONNX-parser and builder failures into one WorkbenchError naming the ONNX node(s).

TensorRT names its layers after the ONNX nodes they came from (the parser logs
``Registering layer: X for ONNX node: Y``; layers carry ``[ONNX Layer: Y]`` metadata), and
fused Myelin regions are written ``{ForeignNode[first...last]}``. The messages of the failed
build are searched for those names, which are mapped back to ONNX nodes and their op types.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import WorkbenchError

_SOURCE_TAIL = re.compile(r"\s+In \w+ at /\S+:\d+\)?")
_REGISTER_RE = re.compile(r"Registering layer: (.+?) for ONNX node: (.+)$")
_ONNX_LAYER_RE = re.compile(r"\[ONNX Layer: ([^\]]*)\]")
_FOREIGN_RE = re.compile(r"\{ForeignNode\[(.+?)\.\.\.(.+?)\]\}")
_ERROR_LEVELS = ("INTERNAL_ERROR", "ERROR")


def clean_message(text: str) -> str:
    """TensorRT's message without the source-file location it appends."""
    return _SOURCE_TAIL.sub("", str(text)).strip()


def _onnx_ops(onnx_path: Path) -> dict[str, str]:
    """ONNX node name -> op type (empty when the file cannot be read)."""
    try:
        import onnx

        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception:  # the error being reported matters more than this lookup
        return {}
    return {n.name: n.op_type for n in model.graph.node if n.name}


def _layer_origins(network, messages) -> dict[str, list[str]]:
    """TensorRT layer name -> ONNX node names, from the network's metadata and the parser log."""
    origins: dict[str, list[str]] = {}
    for _, message in messages:
        match = _REGISTER_RE.search(message)
        if match:
            origins.setdefault(match.group(1).strip(), []).append(match.group(2).strip())
    if network is not None:
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            nodes = _ONNX_LAYER_RE.findall(getattr(layer, "metadata", "") or "")
            if nodes:
                origins[layer.name] = list(dict.fromkeys(origins.get(layer.name, []) + nodes))
    return origins


def nodes_in_messages(texts, origins: dict[str, list[str]], ops: dict[str, str]) -> list[str]:
    """ONNX node names mentioned (directly or through a TensorRT layer name) in ``texts``."""
    found: list[str] = []
    names = sorted(set(origins) | set(ops), key=len, reverse=True)
    for text in texts:
        candidates = [m for pair in _FOREIGN_RE.findall(text) for m in pair]
        candidates += re.findall(r"'([^']+)'", text)
        candidates += [n for n in names if len(n) > 2 and re.search(
            r"(?<![\w./:-])" + re.escape(n) + r"(?![\w./:-])", text)]
        for name in candidates:
            for node in origins.get(name, [name] if name in ops else []):
                if node in ops and node not in found:
                    found.append(node)
    return found


def _describe_nodes(nodes: list[str], ops: dict[str, str]) -> str:
    if not nodes:
        return ""
    shown = ", ".join(f"'{n}' ({ops[n]})" if n in ops else f"'{n}'" for n in nodes[:5])
    more = f" and {len(nodes) - 5} more" if len(nodes) > 5 else ""
    return f"ONNX node{'s' if len(nodes) > 1 else ''} {shown}{more}"


def parse_error(mod, onnx_path: Path, parser, messages) -> WorkbenchError:
    """The parser's errors (each names its node) as one WorkbenchError."""
    ops = _onnx_ops(onnx_path)
    parts = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        name = err.node_name() or ""
        if not name and err.node() >= 0:
            node_list = list(ops)
            name = node_list[err.node()] if err.node() < len(node_list) else f"#{err.node()}"
        op = err.node_operator() or ops.get(name, "")
        where = f"ONNX node '{name}'" + (f" ({op})" if op else "") if name else "the model"
        parts.append(f"{where}: {clean_message(err.desc())}")
    if not parts:
        parts = [clean_message(m) for s, m in messages if s in _ERROR_LEVELS] or ["no error message"]
    return WorkbenchError(f"{mod.describe()} could not parse '{onnx_path}': " + "; ".join(parts))


def build_error(mod, onnx_path: Path, network, messages) -> WorkbenchError:
    """The builder's error messages, with the ONNX node(s) they concern, as one WorkbenchError."""
    errors = [clean_message(m) for s, m in messages if s in _ERROR_LEVELS]
    errors = list(dict.fromkeys(errors)) or ["the builder returned no engine and logged no error"]
    ops = _onnx_ops(onnx_path)
    nodes = nodes_in_messages(errors, _layer_origins(network, messages), ops)
    where = f" at {_describe_nodes(nodes, ops)}" if nodes else ""
    return WorkbenchError(f"{mod.describe()} could not build an engine from '{onnx_path}'{where}: "
                          + " | ".join(errors[:5]))
