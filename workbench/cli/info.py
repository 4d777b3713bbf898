"""``workbench info``: what a model holds and what the default plan would quantize."""
from __future__ import annotations

import json


def cmd_info(args) -> int:
    from ..model import ModelInfo
    from ..plan import PrecisionPlan

    model = ModelInfo.from_path(args.model)
    summary = model.summary()
    summary["int8_in_default_plan"] = len(PrecisionPlan.default(model).int8_nodes())
    print(json.dumps(summary, indent=1))
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="summarise a model: inputs, outputs, ops, quantizable nodes")
    p.add_argument("model", help="ONNX model file")
    p.set_defaults(func=cmd_info)
