"""Whether the workbench can run a model at all: its opset and the domains of its ops.

Checked when a model is read (:func:`workbench.graph.model.load_model`), so that an opset newer
than the installed ONNX package, or an op of a custom domain that ONNX Runtime does not
implement, is refused with the file, the op, its node, the domain and the opset named, instead
of ONNX Runtime's raw text at the first run (:mod:`workbench.backends.ort_errors` translates
what ONNX Runtime itself refuses later, e.g. an opset the ONNX package knows but it does not).
"""
from __future__ import annotations

import onnx

from ..errors import WorkbenchError

#: Op domains the workbench runs: standard ONNX, ONNX-ML and ONNX Runtime's contrib ops.
KNOWN_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft")


def check_supported(model: onnx.ModelProto, path) -> None:
    """Raise WorkbenchError naming ``path`` when ``model`` uses an opset newer than this ONNX
    package knows, or ops of a custom domain (other than the model's own local functions)."""
    newest = onnx.defs.onnx_opset_version()
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version > newest:
            raise WorkbenchError(
                f"'{path}' uses opset {imp.version} of domain 'ai.onnx'; the installed ONNX package "
                f"({onnx.__version__}) knows opsets up to {newest}. Export the model "
                f"with opset {newest} or lower (e.g. torch.onnx.export(..., opset_version=17)) or convert "
                "it with onnx.version_converter.convert_version.")
    local = {(f.domain, f.name) for f in model.functions}
    custom: dict = {}
    for i, node in enumerate(model.graph.node):
        if node.domain not in KNOWN_DOMAINS and (node.domain, node.op_type) not in local:
            custom.setdefault((node.domain, node.op_type), []).append(node.name or f"#{i}")
    if custom:
        (domain, op), nodes = next(iter(custom.items()))
        more = f" (and {len(custom) - 1} other custom op type(s))" if len(custom) > 1 else ""
        raise WorkbenchError(
            f"'{path}' uses the op '{op}' of the custom domain '{domain}' (node "
            f"{', '.join(repr(n) for n in nodes[:3])}){more}, which ONNX Runtime does not implement. "
            "The workbench runs standard ONNX ops (domains ai.onnx and ai.onnx.ml) and ONNX Runtime's "
            "com.microsoft ops; export the model without custom ops (replace the op with standard ONNX ops).")


__all__ = ["KNOWN_DOMAINS", "check_supported"]
