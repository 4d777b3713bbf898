"""``workbench info``: what a model holds and what the default plan would quantize."""
from __future__ import annotations

import json


def cmd_info(args) -> int:
    from ..precision.plan import PrecisionPlan
    from .qdq import read_if_quantized

    model, qm = read_if_quantized(args.model)  # a Q/DQ model: its recovered FP32 graph
    summary = model.summary() if qm is None else qm.source.summary()
    summary["int8_in_default_plan"] = len(PrecisionPlan.default(model).int8_nodes())
    if qm is not None:
        summary["already_quantized"] = qm.summary()
        summary["note"] = (f"already quantized (Q/DQ); `workbench inspect {args.model}` lists every "
                           "scale and what TensorRT expects instead")
    print(json.dumps(summary, indent=1))
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="summarise a model: inputs, outputs, ops, quantizable nodes")
    p.add_argument("model", help="ONNX model file")
    p.set_defaults(func=cmd_info)
