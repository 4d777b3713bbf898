"""Layer 6, precision plans: which node runs in INT8, FP16 or FP32, and with which manual amax.

Owns: the precision kinds and their colours (``kinds``), the plan and its default rule (``plan``),
its JSON/table form (``plan_io``) and the FP16 safety rule (``safety``).
May import: graph, calib (amax, rangemap), outputs and the top-level helpers.
"""
from .kinds import PRECISIONS, Precision
from .plan import PrecisionPlan, default_precision

__all__ = ["PRECISIONS", "Precision", "PrecisionPlan", "default_precision"]
