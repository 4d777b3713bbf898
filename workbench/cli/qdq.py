"""``workbench inspect``: what an already-quantized (Q/DQ) model holds and what TensorRT would
make of it; plus the notes ``info``, ``calibrate`` and ``quantize`` print for such models."""
from __future__ import annotations

from .args import DataArgs

_data = DataArgs(required=False, title="calibration data (optional: compares the model's scales with it)")
SEVERITY_ORDER = ("error", "warning", "info")


def read_if_quantized(path):
    """(ModelInfo to work on, QuantizedModel or None): the recovered FP32 graph of a Q/DQ model,
    else the model itself."""
    from ..imported import is_qdq_model, read_qdq_model
    from ..graph.model import ModelInfo

    info = ModelInfo.from_path(path)
    if not is_qdq_model(info):
        return info, None
    qm = read_qdq_model(info)
    return qm.fp32, qm


def quantized_note(qm) -> str:
    """Two lines for commands that work on the recovered FP32 graph of ``qm``."""
    s = qm.summary()
    errors = s["findings"].get("error", 0)
    return (f"note: '{qm.name}' is already quantized (Q/DQ); working on its recovered FP32 graph. "
            f"{qm.recovered_note}\nnote: its plan: {s['plan']['int8']} INT8, {s['plan']['fp16']} FP16 nodes; "
            f"{errors} TensorRT error(s) found; details: workbench inspect {qm.source.path or qm.name}")


class ModelScaleArgs:
    """``--model-scales``: what ``quantize`` does with a Q/DQ input model's own thresholds."""

    def add(self, parser) -> None:
        g = parser.add_argument_group("already-quantized (Q/DQ) input models")
        g.add_argument("--model-scales", choices=("keep", "calibrate"), default="keep",
                       help="for a Q/DQ input (PyTorch QAT, ModelOpt, ONNX Runtime quantize_static): keep "
                            "its own activation thresholds (default; uint8/asymmetric ones become symmetric "
                            "INT8 covering the same range) or replace them with calibrated ones. Either way "
                            "the plan starts from its precisions, its weight scales are kept and the output "
                            "is TensorRT-ready; --allow-existing-qdq passes its Q/DQ through instead")

    def open(self, args):
        """(ModelInfo to quantize, QuantizedModel or None); prints the note for a Q/DQ model."""
        if getattr(args, "allow_existing_qdq", False):
            from ..graph.model import ModelInfo

            return ModelInfo.from_path(args.model), None
        model, qm = read_if_quantized(args.model)
        if qm is not None:
            print(quantized_note(qm))
        return model, qm

    @staticmethod
    def tensors(qm):
        """What calibration observes (the model's quantized tensors too)."""
        return "default" if qm is None else qm.tensors_to_observe()

    @staticmethod
    def start_plan(args, qm):
        """The plan to start from: the model's (with its thresholds when kept), None for FP32 models."""
        if qm is None:
            return None
        from ..imported.reexport import model_plan

        return model_plan(qm) if args.model_scales == "keep" else qm.plan.copy()

    @staticmethod
    def ranges(qm, ranges):
        """``ranges`` with the model's thresholds as method "model" and its weight scales."""
        if qm is None:
            return ranges
        from ..imported.reexport import with_model_thresholds

        return with_model_thresholds(qm, ranges)


def clipping_summary(qm, stats, max_clipped: float | None = None) -> list:
    """Lines about the model's scales that clip calibration values (for ``calibrate``)."""
    from ..imported import MAX_CLIPPED

    share = MAX_CLIPPED if max_clipped is None else max_clipped
    found = qm.clipping_findings(stats, share)
    return [f"WARNING: {f.message}" for f in found] or [
        f"The model's own scales clip no more than {100 * share:g} % of any tensor's calibration values."]


def _print_findings(findings: list, limit: int | None) -> None:
    by_code: dict = {}
    for f in findings:
        by_code.setdefault(f.code, []).append(f)
    for sev in SEVERITY_ORDER:
        for code, group in by_code.items():
            group = [f for f in group if f.severity == sev]
            shown = group if limit is None else group[:limit]
            for f in shown:
                print(f"{sev.upper()}: {f.message}")
            if len(group) > len(shown):
                print(f"{sev.upper()}: ... {len(group) - len(shown)} more '{code}' finding(s) "
                      f"({', '.join(f.tensor or f.node or '?' for f in group[len(shown):][:6])}"
                      f"{' ...' if len(group) - len(shown) > 6 else ''}); --all shows every one")


def cmd_inspect(args) -> int:
    from ..errors import WorkbenchError
    from ..imported import read_qdq_model
    from ..calib.ranges import check_histogram_method
    from .common import print_table, result_for, write_json

    _data.validate(args)
    check_histogram_method(args.method)
    if not 0.0 <= args.max_clipped < 1.0:
        raise WorkbenchError(f"--max-clipped is a share of the values in [0, 1), got {args.max_clipped}.")
    with result_for(args, [args.json] if args.json else [], "inspection report") as out:
        qm = read_qdq_model(args.model)
        stats = None
        if _data.given(args):
            from ..calib.collect import collect_statistics

            data = _data.parse(args, qm.fp32)
            stats = collect_statistics(qm.fp32, data, tensors=qm.tensors_to_observe(),
                                       batch_size=args.batch_size, progress=not args.quiet)
        s = qm.summary()
        kinds = "; ".join(f"{k}: " + ", ".join(f"{n} {d}" for d, n in v.items())
                          for k, v in s["quantized_tensors"].items())
        print(f"{args.model}: {len(qm.tensors)} quantized tensors ({kinds}).")
        print(f"Plan it implies: {s['plan']['int8']} INT8, {s['plan']['fp16']} FP16, "
              f"{s['plan']['fp32']} FP32 nodes. {qm.recovered_note}")
        table = qm.table(stats, args.method)
        print_table(table, "Quantized tensors (amax = scale x qmax; per-channel rows show the range)")
        findings = list(qm.findings)
        if stats is not None:
            findings += qm.clipping_findings(stats, args.max_clipped)
            print(f"Calibration: {stats.num_samples} samples ({stats.data_description}); "
                  f"clipping warned above {100 * args.max_clipped:g} % of a tensor's values.")
        counts = {sev: sum(f.severity == sev for f in findings) for sev in SEVERITY_ORDER}
        print(f"Findings: {counts['error']} error(s) (TensorRT rejects or changes it), "
              f"{counts['warning']} warning(s), {counts['info']} note(s).")
        _print_findings(findings, None if args.all else 3)
        if args.json:
            write_json(out.path(args.json), {
                "summary": s, "tensors": table.to_dict(orient="records"),
                "findings": [{"code": f.code, "severity": f.severity, "tensor": f.tensor, "node": f.node,
                              "message": f.message} for f in findings]})
    if args.json:
        print(f"Wrote {args.json}")
    fail = SEVERITY_ORDER[: SEVERITY_ORDER.index(args.fail_on) + 1] if args.fail_on else ()
    return 1 if any(f.severity in fail for f in findings) else 0


def register(sub) -> None:
    from ..calib.ranges import DEFAULT_METHOD, METHODS
    from ..imported import MAX_CLIPPED

    p = sub.add_parser(
        "inspect", help="read an already-quantized (Q/DQ) model: scales, precisions, TensorRT issues",
        description="Read a Q/DQ model (PyTorch QAT export, ModelOpt, ONNX Runtime quantize_static): "
                    "a table of every quantized tensor (consumer, scale, amax = scale x qmax, zero point, "
                    "axis, type) and what TensorRT expects instead (zero points, uint8, Q/DQ on outputs, "
                    "missing residual Q/DQ, weight axes). With --data, the model's scales are compared "
                    "with calibration statistics of its recovered FP32 graph.")
    p.add_argument("model", help="Q/DQ ONNX model")
    _data.add(p)
    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                   help=f"calibration method shown next to the model's amax with --data (default {DEFAULT_METHOD})")
    p.add_argument("--max-clipped", type=float, default=MAX_CLIPPED, metavar="SHARE",
                   help=f"warn when a model scale clips more than this share of a tensor's calibration "
                        f"values (default {MAX_CLIPPED:g} = {100 * MAX_CLIPPED:g} %%)")
    p.add_argument("--all", action="store_true", help="print every finding (default: 3 per kind)")
    p.add_argument("--fail-on", choices=SEVERITY_ORDER[:2], default=None,
                   help="exit with status 1 when there is a finding of this severity or worse")
    p.add_argument("--json", metavar="OUT.json", help="also write the table and findings as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_inspect)
