"""Checks of user-given settings, run before any work and before any state changes.

The CLI argument groups and the Session call these first, so a bad value is refused with a
message naming the setting, instead of failing after a long collection or sticking in a
session's settings.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import WorkbenchError


def check_positive_int(value, what: str, *, allow_none: bool = False):
    """``value`` as an int > 0 (None passes with ``allow_none``); WorkbenchError naming ``what``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) <= 0:
        raise WorkbenchError(f"{what} must be a positive whole number, got {value!r}.")
    return int(value)


def check_nonnegative_int(value, what: str):
    """``value`` as an int >= 0; WorkbenchError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 0:
        raise WorkbenchError(f"{what} must be a whole number >= 0, got {value!r}.")
    return int(value)


def check_percentile(value, what: str = "The percentile (--percentile)", *, allow_none: bool = False):
    """``value`` as a float in (0, 100] (the percentile range method's p)."""
    if value is None and allow_none:
        return None
    try:
        p = float(value)
    except (TypeError, ValueError):
        p = math.nan
    if isinstance(value, bool) or not (0.0 < p <= 100.0):
        raise WorkbenchError(f"{what} must be a number in (0, 100], e.g. 99.99; got {value!r}.")
    return p


def check_choice(value, choices, what: str):
    """``value`` if it is one of ``choices``; WorkbenchError listing them."""
    if value not in tuple(choices):
        raise WorkbenchError(f"{what} must be one of {', '.join(map(str, choices))}; got {value!r}.")
    return value


def check_method(method, what: str = "The calibration method (--method)") -> str:
    """A range method name (see ``workbench.calib.registry``)."""
    from .calib.registry import method_names

    return check_choice(method, method_names(), what)


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
    meta = {p.key: p.value for p in quant_model.metadata_props}
    source = meta.get("workbench.source_fingerprint")
    if source and source != fp32_info.fingerprint():
        return [f"'{quant_name}' was exported from another model ('{meta.get('workbench.source_model', '?')}', "
                f"fingerprint {source[:12]}), not from the FP32 model '{fp32_name}' ({fp32_info.fingerprint()[:12]}): "
                "the comparison below is probably meaningless."]
    return []


def agreement_warning(summary: dict, fp32_name: str, quant_name: str) -> str | None:
    """A warning when the quantized model barely agrees with the FP32 model (``summary``: the
    first output's metrics with ``cosine``), naming both; None otherwise."""
    cosine = summary.get("cosine")
    if cosine is None or not math.isfinite(cosine) or cosine >= LOW_AGREEMENT_COSINE:
        return None
    return (f"'{quant_name}' agrees very little with the FP32 model '{fp32_name}' (cosine {cosine:.2f}): "
            "was it made from this FP32 model (or with very wrong ranges)?")


def check_path(value, what: str):
    """``value`` if it is a path (str or os.PathLike); WorkbenchError naming ``what`` otherwise."""
    import os

    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise WorkbenchError(f"{what} must be a file or folder path (a str or pathlib.Path), got {value!r}.")
    return value


def check_calibration_settings(method, percentile, batch_size) -> None:
    """The Session's calibration settings: a known method, p in (0, 100], a positive batch size."""
    check_method(method, "The calibration method (method)")
    check_percentile(percentile, "The percentile (percentile)")
    check_positive_int(batch_size, "The batch size (batch_size)")
