"""ONNX Runtime's load failures in words: which op, domain or opset, and what is supported.

ONNX Runtime reports a model it cannot load with C++ source paths and function signatures. The
two cases users meet most, an opset newer than the installed ONNX Runtime and an op of a custom
domain (or an unknown op), are translated into a message naming the op, its node, the domain,
the opset and what to do; anything else keeps ONNX Runtime's first line.
"""
from __future__ import annotations

import os
import re

from ..graph.support import KNOWN_DOMAINS

_OPSET = re.compile(r"Opset (\d+) is under development.*?domain (\S+) is till opset (\d+)", re.S)
_OPSET_SUPPORT = re.compile(r"support for domain (\S+) is till opset (\d+)")
_UNKNOWN_OP = re.compile(r"(?:([\w.]+):)?(\w+)\((-?\d+)\) is not a registered function/op")
_NO_DOMAIN = re.compile(r"No opset import for domain '?([\w.]+)'?")


def _nodes_of(model, op: str, domain: str | None) -> list:
    """Names of the nodes running ``op`` (of ``domain``) in ``model`` (a path or ModelProto), if readable."""
    try:
        import onnx

        proto = onnx.load(str(model), load_external_data=False) if isinstance(model, (str, os.PathLike)) else model
        return [n.name or f"#{i}" for i, n in enumerate(proto.graph.node)
                if n.op_type == op and (domain is None or n.domain == domain)]
    except Exception:  # only for a nicer message
        return []


def load_failure(where: str, exc: BaseException, model=None) -> str:
    """The message for ONNX Runtime failing to load ``model`` (named ``where``) with ``exc``."""
    import onnxruntime as ort

    text = str(exc)
    version = ort.__version__
    m = _OPSET.search(text)
    if m or _OPSET_SUPPORT.search(text):
        asked = m.group(1) if m else "?"
        domain, most = (m.group(2), m.group(3)) if m else _OPSET_SUPPORT.search(text).groups()
        domain = domain.rstrip(".") or "ai.onnx"
        return (f"{where} uses opset {asked} of domain '{domain}', newer than this ONNX Runtime ({version}) "
                f"supports (up to opset {most}). Export the model with opset {most} or lower (e.g. "
                f"torch.onnx.export(..., opset_version={min(int(most), 17)})) or convert it with "
                "onnx.version_converter.convert_version.")
    m = _UNKNOWN_OP.search(text)
    if m:
        domain, op = m.group(1) or "", m.group(2)
        nodes = _nodes_of(model, op, domain if m.group(1) else None) if model is not None else []
        at = f" (node {', '.join(repr(n) for n in nodes[:3])})" if nodes else ""
        if domain not in KNOWN_DOMAINS:
            return (f"{where} uses the op '{op}' of the custom domain '{domain}'{at}, which ONNX Runtime "
                    f"({version}) does not implement. The workbench runs standard ONNX ops (domains "
                    "ai.onnx and ai.onnx.ml) and ONNX Runtime's com.microsoft ops; export the model "
                    "without custom ops (replace the op with standard ONNX ops).")
        return (f"{where} uses the op '{op}'{at}, which is not an op of domain '{domain or 'ai.onnx'}' at "
                f"opset {m.group(3)} in ONNX Runtime {version}. Check the op name and the model's opset.")
    m = _NO_DOMAIN.search(text)
    if m:
        return (f"{where} uses ops of domain '{m.group(1)}' but does not import that domain (no opset "
                "import for it); the file is malformed. Re-export the model.")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"ONNX Runtime could not load {where}: {first}"


__all__ = ["KNOWN_DOMAINS", "load_failure"]
