"""Is a quantized model comparable with an FP32 model? (the ``evaluate`` command's pre-check)."""
from __future__ import annotations

import math

from ..errors import WorkbenchError

#: Below this cosine (first output) a quantized model is suspected to come from another model.
LOW_AGREEMENT_COSINE = 0.5


def check_model_pair(fp32_info, quant_model, quant_name: str) -> list:
    """Check that ``quant_model`` (an onnx.ModelProto named ``quant_name``) can be compared with
    the FP32 model ``fp32_info``; return warnings (strings) naming both.

    Raises WorkbenchError when their input or output names differ (outputs are compared by
    name). Warns when the quantized model records another source model (see
    ``workbench.export``'s ``workbench.source_fingerprint`` metadata).
    """
    fp32_name = fp32_info.name
    for what, a, b in (("inputs", [s.name for s in fp32_info.inputs],
                        [i.name for i in quant_model.graph.input
                         if i.name not in {t.name for t in quant_model.graph.initializer}]),
                       ("outputs", [s.name for s in fp32_info.outputs], [o.name for o in quant_model.graph.output])):
        if set(a) != set(b):
            raise WorkbenchError(
                f"'{quant_name}' and the FP32 model '{fp32_name}' have different {what}: "
                f"{', '.join(map(repr, b)) or '-'} vs {', '.join(map(repr, a)) or '-'}. Was '{quant_name}' "
                f"made from another model? Evaluate it against its own FP32 model.")
    notes = []
    quant_has_qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in quant_model.graph.node)
    if fp32_info.has_qdq() and not quant_has_qdq:
        notes.append(f"The models look swapped: the FP32 model '{fp32_name}' has Q/DQ nodes and '{quant_name}' has "
                     "none. The order is FP32_MODEL QUANT_MODEL (the reference first); the figures below treat "
                     f"'{fp32_name}' as the reference.")
    meta = {p.key: p.value for p in quant_model.metadata_props}
    source = meta.get("workbench.source_fingerprint")
    if source and source != fp32_info.fingerprint():
        return notes + [f"'{quant_name}' was exported from another model ('{meta.get('workbench.source_model', '?')}', "
                f"fingerprint {source[:12]}), not from the FP32 model '{fp32_name}' ({fp32_info.fingerprint()[:12]}): "
                "the comparison below is probably meaningless."]
    return notes


def agreement_warning(summary: dict, fp32_name: str, quant_name: str) -> str | None:
    """A warning when the quantized model barely agrees with the FP32 model (``summary``: the
    first output's metrics with ``cosine``), naming both; None otherwise."""
    cosine = summary.get("cosine")
    if cosine is None or not math.isfinite(cosine) or cosine >= LOW_AGREEMENT_COSINE:
        return None
    return (f"'{quant_name}' agrees very little with the FP32 model '{fp32_name}' (cosine {cosine:.2f}): "
            "was it made from this FP32 model (or with very wrong ranges)?")
