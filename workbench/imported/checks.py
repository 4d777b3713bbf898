"""What TensorRT would make of a Q/DQ model: per-tensor type checks, placement checks
against the exporter's own rule, and clipping against calibration statistics.

TensorRT's explicit quantization (DESIGN.md): signed INT8 (or FP8 E4M3FN) with zero point 0;
per-tensor activation scales; per-output-channel weight scales (Conv axis 0, ConvTranspose
axis 1, Gemm/MatMul the output-feature axis); Q/DQ on the *inputs* of the ops that run in
INT8, with a residual Add's non-residual input left unquantized so the Add fuses into the
conv. The placement check does not restate that rule: it asks the exporter
(:func:`workbench.export.qdq_placement`) where a TensorRT-ready model has Q/DQ for the
model's own plan and compares.
"""
from __future__ import annotations

from ..graph.model import WEIGHTED_OPS
from ..precision.plan import Precision
from .records import Finding

#: Ops that only move data: Q/DQ in front of them is propagated by TensorRT, so a pair
#: there costs little (info); in front of compute ops it is a requantization (warning).
_DATA_MOVEMENT = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Slice",
                  "Gather", "Split", "Pad", "Resize", "Identity", "Expand", "Tile",
                  "DepthToSpace", "SpaceToDepth", "MaxPool", "GlobalMaxPool"}


def _trt_note(t) -> str:
    amax = t.amax
    if amax is None:
        return "a TensorRT-ready export quantizes it symmetrically (zero point 0)"
    return (f"a TensorRT-ready export uses amax {amax:.6g} (the largest |x| of the model's "
            f"range), scale {amax / 127:.6g}, zero point 0")


def tensor_findings(qm) -> list:
    """Type, zero point and axis checks for every quantized tensor."""
    out = []
    targets = {t.node: t for t in qm.fp32.quantizable_nodes()}
    int32_bias, per_tensor_w = [], []
    for t in qm.tensors:
        name, qt = t.tensor, t.qtype
        what = t.kind
        if t.kind != "activation" and t.dtype == "INT32":  # ORT's bias convention (also BN's bias)
            int32_bias.append(name)
            continue
        if qt.is_float:
            if t.dtype == "FLOAT8E4M3FN":
                out.append(Finding("fp8", "info", (
                    f"{what.capitalize()} '{name}' is FP8 E4M3FN: TensorRT builds FP8 Q/DQ on GPUs "
                    "with FP8 support; the workbench plans INT8/FP16/FP32 only, so its reader is "
                    "planned FP32 and a re-export does not keep FP8."), tensor=name))
            else:
                out.append(Finding("fp8_type", "error", (
                    f"{what.capitalize()} '{name}' is {t.dtype}; TensorRT's FP8 Q/DQ is "
                    "FLOAT8E4M3FN (E4M3, finite-only, zero point 0)."), tensor=name))
            continue
        if t.dtype == "INT4" and t.kind == "weight":
            out.append(Finding("int4_weight", "info", (
                f"Weight '{name}' is INT4{f' (block size {t.block_size})' if t.block_size else ''}: "
                "TensorRT runs INT4 weight-only quantization for MatMul/Gemm; the workbench's plans "
                "have no INT4, so a re-export writes INT8 weights for INT8 nodes."), tensor=name))
        elif t.dtype not in ("INT8", "UINT8"):
            out.append(Finding("quant_type", "error", (
                f"{what.capitalize()} '{name}' is quantized to {t.dtype}; TensorRT's explicit "
                "quantization takes INT8 (or FP8 E4M3FN) only."), tensor=name))
        if not qt.signed:
            out.append(Finding("unsigned", "error", (
                f"{what.capitalize()} '{name}' is {t.dtype} with zero point {t.zero_point_text()} "
                "(ONNX Runtime's default for activations); TensorRT takes signed INT8 with zero "
                f"point 0: {_trt_note(t)}."), tensor=name))
        elif not t.symmetric:
            out.append(Finding("zero_point", "error", (
                f"{what.capitalize()} '{name}' has zero point {t.zero_point_text()} (asymmetric "
                f"{t.dtype}); TensorRT needs symmetric quantization, zero point 0: {_trt_note(t)}."),
                tensor=name))
        if t.kind == "activation" and t.per_channel:
            out.append(Finding("activation_per_channel", "error", (
                f"Activation '{name}' has per-channel scales (axis {t.axis}); TensorRT takes one "
                "scale per activation tensor."), tensor=name))
        if t.kind == "weight":
            direct = [(n, targets[n]) for n, i in t.consumers
                      if n in targets and i == 1 and targets[n].weight_input == name]
            if not t.per_channel:
                per_tensor_w.append(name)
            elif t.axis is not None and direct:
                rank = qm.fp32.constants[name].ndim
                axis = t.axis + rank if t.axis < 0 else t.axis
                for node, target in direct:
                    if target.weight_axis is not None and axis != target.weight_axis:
                        out.append(Finding("weight_axis", "error", (
                            f"Weight '{name}' of {target.op_type} '{node}' has per-channel scales "
                            f"along axis {axis}; TensorRT expects the output-channel axis "
                            f"{target.weight_axis}."), tensor=name, node=node))
    seen: dict = {}
    for t in qm.tensors:
        if t.kind == "activation":
            seen.setdefault(t.tensor, []).append(t)
    for name, recs in seen.items():
        if len({(r.scale.tobytes(), r.zero_point.tobytes()) for r in recs}) > 1:
            out.append(Finding("conflicting_qdq", "warning", (
                f"'{name}' has {len(recs)} Q/DQ pairs with different scales ({', '.join(r.q_node for r in recs)}); "
                "TensorRT needs one scale per tensor where its readers fuse. The workbench uses the "
                f"first ({recs[0].q_node}, scale {recs[0].scale_text()})."), tensor=name))
    if int32_bias:
        out.append(Finding("int32_bias", "info", (
            f"{len(int32_bias)} bias(es) are stored as INT32 codes ({', '.join(int32_bias[:3])}"
            f"{' ...' if len(int32_bias) > 3 else ''}; ONNX Runtime's convention, scale = input "
            "scale x weight scale); TensorRT quantizes biases itself and expects float biases: "
            "the recovered graph has the dequantized float values.")))
    if per_tensor_w:
        out.append(Finding("weight_per_tensor", "info", (
            f"{len(per_tensor_w)} weight(s) have one scale for the whole tensor "
            f"({', '.join(per_tensor_w[:3])}{' ...' if len(per_tensor_w) > 3 else ''}); TensorRT "
            "accepts it, but per-output-channel scales (what the workbench exports) lose less.")))
    return out


def placement_findings(qm) -> list:
    """Where the model's Q/DQ differ from where a TensorRT-ready export puts them for the
    model's own plan (plus every residual Add, to find missing residual Q/DQ)."""
    from ..export import qdq_placement

    info, plan = qm.fp32, qm.plan
    targets = {t.node: t for t in info.quantizable_nodes()}
    nodes = info.node_by_name
    trial = plan.copy()
    adds = [n for n, t in targets.items() if t.op_type == "Add" and len(t.activation_inputs) >= 2
            and plan.precision(n) is not Precision.INT8]
    for n in adds:
        trial.set_node(n, Precision.INT8, reason="default")
    expected = qdq_placement(info, trial, "trt")
    actual = qm.activation_inputs()
    weights = {s: t for t in qm.tensors if t.kind == "weight" for s in t.consumers}
    out = []

    def src(t: str) -> str:
        p = info.producers.get(t)
        return f"{nodes[p].op_type} '{p}'" if p else "a model input"

    for node in trial.int8_nodes():
        target = targets[node]
        exp, act = expected.get(node, []), actual.get(node, [])
        if node in adds:
            if len(exp) == 1:
                fused = next(t for t in target.activation_inputs if t != exp[0])
                out.append(Finding("missing_residual_qdq", "warning", (
                    f"Residual Add '{node}' adds '{fused}' (from {src(fused)}) and '{exp[0]}', "
                    f"which has no Q/DQ: TensorRT fuses a residual Add into the INT8 layer before "
                    "it only when the residual input carries Q/DQ (the other input stays "
                    "unquantized); here the Add runs in float after that layer."),
                    tensor=exp[0], node=node))
            continue
        for t in exp:
            if t not in act:
                code = "missing_residual_qdq" if target.op_type == "Add" else "missing_input_qdq"
                out.append(Finding(code, "warning", (
                    f"{target.op_type} '{node}' has Q/DQ on {', '.join(repr(a) for a in act)} but "
                    f"not on '{t}' (from {src(t)}): TensorRT expects Q/DQ on "
                    + ("the residual input of an INT8 Add." if code == "missing_residual_qdq"
                       else "every data input of an INT8 layer.")), tensor=t, node=node))
        for t in act:
            if t not in exp and target.op_type == "Add":
                out.append(Finding("fused_input_qdq", "info", (
                    f"Add '{node}' has Q/DQ on '{t}', which comes straight from {src(t)}: TensorRT "
                    "fuses the Add into that layer when only the residual input carries Q/DQ; with "
                    "Q/DQ here that layer's output is rounded to INT8 first. A TensorRT-ready "
                    "export leaves it unquantized."), tensor=t, node=node))
        if target.op_type in WEIGHTED_OPS and target.weight_input and (node, 1) not in weights:
            out.append(Finding("float_weight", "warning", (
                f"{target.op_type} '{node}' has Q/DQ on its input but its weight "
                f"'{target.weight_input}' is float: TensorRT runs it in INT8 only with Q/DQ on "
                "the weight too (per output channel); a TensorRT-ready export adds it."), node=node))
    for (node, i), w in weights.items():
        if node in targets and plan.precision(node) is not Precision.INT8 and i == 1 \
                and w.dtype in ("INT8", "UINT8"):
            out.append(Finding("weight_only", "info", (
                f"{targets[node].op_type} '{node}' has a quantized weight '{w.tensor}' but a float "
                "input: weight-only quantization, which TensorRT runs in float. It is planned "
                "FP32."), tensor=w.tensor, node=node))
    int8 = set(plan.int8_nodes())
    extra = [n for n in plan.int8_nodes() if n not in info.facts.default_int8]
    if extra:
        ops = sorted({targets[n].op_type for n in extra})
        out.append(Finding("non_default_int8", "info", (
            f"The model runs {len(extra)} {'/'.join(ops)} node(s) in INT8 ({', '.join(extra[:4])}"
            f"{' ...' if len(extra) > 4 else ''}) that the workbench's default plan keeps float: TensorRT "
            "fuses a Clip/Relu after a conv into its epilogue and folds BatchNormalization, so Q/DQ on "
            "their inputs requantizes the conv output (and a calibrated range there is the raw conv "
            "output's); Mul and bias Adds gain little from INT8. Set them to FP32 to compare."),
            node=extra[0]))
    for t in qm.activations.values():
        readers = [(n, i) for n, i in t.consumers if n in int8 and n in targets
                   and nodes[n].input[i] in targets[n].activation_inputs]
        if t.graph_output:
            out.append(Finding("output_qdq", "warning", (
                f"Q/DQ on the model output '{t.tensor}' (from {src(t.tensor)}): TensorRT expects "
                "Q/DQ on the inputs of INT8 layers, not on outputs; this rounds the result to "
                "the INT8 grid. A TensorRT-ready export leaves it float."), tensor=t.tensor))
        elif not readers and t.consumers:
            ops = sorted({nodes[n].op_type for n, _ in t.consumers})
            light = all(op in _DATA_MOVEMENT for op in ops)
            out.append(Finding("output_qdq", "info" if light else "warning", (
                f"Q/DQ on '{t.tensor}' (output of {src(t.tensor)}) is read only by "
                f"{', '.join(ops)}, which {'move data (TensorRT propagates the Q/DQ)' if light else 'TensorRT does not run in INT8'}: "
                "Q/DQ belongs on the inputs of Conv/Gemm/MatMul (and residual Add and pooling "
                "inputs), not on outputs. A TensorRT-ready export does not keep it."),
                tensor=t.tensor))
    return out


def clipping_findings(qm, stats, max_clipped: float) -> list:
    """Model scales that clip more than ``max_clipped`` of the calibration values, and
    asymmetric ranges that start above the observed minimum."""
    from ..calib.algorithms import clipped_fraction
    from ..calib.ranges import DEFAULT_METHOD, compute_ranges

    ranges = compute_ranges(stats, DEFAULT_METHOD)
    out = []
    for name, t in qm.activations.items():
        c = stats.collectors.get(name)
        if c is None or t.amax is None or not c.finite_count:
            continue
        share = clipped_fraction(c.hist, c.bin_width, t.amax) if c.bin_width else 0.0
        if share > max_clipped:
            out.append(Finding("clipping", "warning", (
                f"The model's scale for '{name}' clips {100 * share:.3g} % of the calibration "
                f"values (amax {t.amax:.6g}, observed max |x| {float(c.absmax):.6g}; "
                f"{DEFAULT_METHOD} would choose {ranges[name].amax:.6g})."), tensor=name))
        lo = float(t.lo)
        if lo - float(c.min) > 1e-6 * max(1.0, abs(float(c.min))):
            out.append(Finding("clipping_low", "warning", (
                f"The model's range for '{name}' starts at {lo:.6g} but the calibration values "
                f"reach {float(c.min):.6g}: values below it are clipped (asymmetric range)."),
                tensor=name))
    return out
