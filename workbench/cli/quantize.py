"""``workbench quantize`` (write the Q/DQ model) and ``workbench evaluate`` (judge one)."""
from __future__ import annotations

from .args import BackendArgs, CalibArgs, DataArgs, EvalArgs, ExecutorArgs, MetricArgs, OutputArgs, PlanArgs
from .recipe_args import cli_recipe, write_recipe
from .common import cli_inputs, output_stem, print_table, report_written_files, result_for, write_json
from .improve_args import ImproveArgs
from .qdq import ModelScaleArgs

_data = DataArgs()
_calib = CalibArgs()
_plan = PlanArgs()
_metric = MetricArgs()
_backend = BackendArgs()
_model_scales = ModelScaleArgs()
_eval = EvalArgs()
_improve = ImproveArgs()
_executor = ExecutorArgs()


def cmd_quantize(args) -> int:
    from ..export import export_result, export_result_files, export_result_stale

    _data.validate(args)
    _eval.data.validate(args)
    _calib.validate(args)
    _improve.validate(args)
    _executor.validate(args)
    stem = output_stem(args)
    kinds = ["qdq"] + ([] if args.no_eval_variant else ["ort"]) + (["cpu_uint8"] if args.cpu_uint8 else [])
    from ..outputs.names import recipe_path

    files = export_result_files(stem, kinds)
    written = files + [recipe_path(stem)]
    with result_for(args, written, "quantized model",
                    optional=export_result_stale(stem, kinds, written=written, inputs=cli_inputs(args))) as result:
        model, qm = _model_scales.open(args)  # a Q/DQ model: its recovered FP32 graph
        with _executor.parse(args) as executor:  # the auto range search's runs
            ranges = _calib.parse(args, model, _data, tensors=_model_scales.tensors(qm), eval_args=_eval,
                                  plan_args=_plan, executor=executor)
        _executor.print_reruns(executor)
        plan = _plan.parse(args, model, ranges, start=_model_scales.start_plan(args, qm))
        ranges = _model_scales.ranges(qm, ranges)
        improved = _improve.run(args, model, ranges, plan, _calib, _eval, _data, imported=qm)
        if improved is not None:  # the improved graph (same nodes, changed initializers) and its ranges
            model_out, ranges = improved.model, improved.ranges
        else:
            model_out = model
        results = export_result(model_out, ranges, plan, stem, kinds=kinds, result=result,
                                allow_existing_qdq=args.allow_existing_qdq)
        write_recipe(result, recipe_path(stem), cli_recipe(args, stem, model, ranges, plan, _data, _eval, _calib),
                     files)
    print(f"Recipe: {recipe_path(stem)} (replay it with `workbench replay {recipe_path(stem)}`)")
    print(f"INT8 nodes: {len(plan.int8_nodes())}, FP16: {len(plan.fp16_nodes())}, "
          f"FP32: {len(plan.nodes_with('fp32'))}")
    print(results["qdq"].describe())
    if "ort" in results:
        print(f"For ONNX Runtime evaluation (FP16 emulated on CPU): {results['ort'].onnx_path}")
    if "cpu_uint8" in results:
        print(f"For ONNX Runtime CPU deployment (uint8 activations): {results['cpu_uint8'].onnx_path}")
    if not args.no_eval:
        report_written_files(_eval.parse(args, model), results)
    return 0


def cmd_evaluate(args) -> int:
    import sys

    from ..evaluate.evaluator import Evaluator
    from ..graph.model import ModelInfo, load_model
    from contextlib import nullcontext

    from ..graph.semantics import DEPLOYED, DEPLOYED_GAP_DB, EXACT, SATURATION_HINT, deployed_path
    from ..evaluate.model_pair import agreement_warning, check_model_pair

    _data.validate(args)
    with result_for(args, [args.json] if args.json else [], "evaluation report") as out:
        fp32 = ModelInfo.from_path(args.fp32_model)
        quant = load_model(args.quant_model)
        warnings_ = check_model_pair(fp32, quant, args.quant_model)
        for w in warnings_:
            print(f"WARNING: {w}", file=sys.stderr)
        data = _data.parse(args, fp32)
        evaluator = Evaluator(fp32, data, batch_size=args.batch_size, metric_fn=_metric.parse(args))
        if _backend.parse(args) == "trt":
            from ..backends import get_runner
            from ..evaluate.rows import concat_rows

            runner = get_runner(args.quant_model, backend="trt")
            chunks = [runner.infer(feed) for feed in evaluator.batches]  # batches are grouped by image shape
            outputs = {n: concat_rows([c[n] for c in chunks]) for n in evaluator.output_names}
            table = evaluator.compare(outputs)
            result = {"backend": "trt", "outputs": table.to_dict(orient="records")}
            print_table(table, f"TensorRT outputs vs FP32 (ONNX Runtime) on {evaluator.num_samples} samples")
            first = table.iloc[0].to_dict()
        else:
            with deployed_path() if args.ort_fused else nullcontext():  # --ort-fused: asked for by name
                res = evaluator.evaluate_model(quant, latency=args.latency,
                                               optimization=DEPLOYED if args.ort_fused else EXACT)
            print_table(res.outputs, f"Quantized vs FP32 on {evaluator.num_samples} samples ({res.semantics})")
            result = {"backend": "ort", "samples": evaluator.num_samples, "semantics": res.semantics,
                      "outputs": res.outputs.to_dict(orient="records")}
            first = res.summary()
            if args.ort_fused:  # say so when the deployed path departs from the exact numbers
                exact = evaluator.evaluate_model(quant).summary()
                result["exact_semantics"] = exact
                if exact["sqnr_db"] - first["sqnr_db"] > DEPLOYED_GAP_DB:
                    gap = (f"ONNX Runtime's optimized path loses {exact['sqnr_db'] - first['sqnr_db']:.1f} dB "
                           f"against exact ONNX semantics ({first['sqnr_db']:.1f} vs {exact['sqnr_db']:.1f} dB); "
                           f"likely cause: {SATURATION_HINT}")
                    print(f"WARNING: {gap}", file=sys.stderr)
                    warnings_.append(gap)
            if args.latency:
                fp = evaluator.fp32_latency()
                result["latency"] = {}
                for b, lat in res.latency.items():
                    ratio = fp[b].median_ms / lat.median_ms
                    speed = f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"
                    print(f"batch {b}: quantized {lat.median_ms:.2f} ms, FP32 {fp[b].median_ms:.2f} ms "
                          f"(quantized {speed} than FP32); {lat.note}")
                    result["latency"][b] = {"quantized": lat.to_dict(), "fp32": fp[b].to_dict()}
        low = agreement_warning(first, args.fp32_model, args.quant_model)
        warnings_ += [low] if low else []
        if low:
            print(f"WARNING: {low}", file=sys.stderr)
        if warnings_:
            result["warnings"] = warnings_
        if args.json:
            write_json(out.path(args.json), result)
    if args.json:
        print(f"Wrote {args.json}")
    return 0


def register(sub) -> None:
    """Add ``quantize`` and ``evaluate`` to the ``workbench`` CLI."""
    p = sub.add_parser("quantize", help="write a Q/DQ ONNX model for TensorRT (plus plan and cache)",
                       description="Calibrate (or reuse --ranges), apply the precision plan and write "
                                   "OUT.onnx with explicit Q/DQ and FP16 layers for TensorRT, "
                                   "OUT.ort.onnx for ONNX Runtime evaluation, OUT.plan.json and the "
                                   "calibration cache.")
    p.add_argument("model", help="FP32 ONNX model")
    _data.add(p)
    _calib.add(p)
    _executor.add(p)
    _plan.add(p)
    p.add_argument("--cpu-uint8", action="store_true", help="also write the uint8 CPU deployment variant")
    p.add_argument("--no-eval-variant", action="store_true", help="do not write OUT.ort.onnx")
    p.add_argument("--allow-existing-qdq", action="store_true",
                   help="the model already has Q/DQ nodes: keep them and quantize only the tensors they "
                        "do not cover (refused by default)")
    _model_scales.add(p)
    _improve.add(p)
    _eval.add(p, _data)
    p.add_argument("--no-eval", action="store_true",
                   help="do not evaluate the written files (default: each file vs FP32 on --eval-data, "
                        "or on the calibration data when none is given)")
    OutputArgs("OUT.onnx", "output model path (new file)").add(p)
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("evaluate", help="compare a quantized model with its FP32 model",
                       description="Run both models on the data and report cosine, SQNR, max abs error "
                                   "and top-1 agreement per output (and CPU latency with --latency).")
    p.add_argument("fp32_model")
    p.add_argument("quant_model")
    _data.add(p)
    _backend.add(p)
    p.add_argument("--latency", action="store_true", help="measure median latency at batch 1 and 8")
    _metric.add(p)
    p.add_argument("--json", metavar="OUT.json", help="also write the results as JSON")
    p.add_argument("--ort-fused", action="store_true",
                   help="compute accuracy with ONNX Runtime's fused QDQ kernels, as a CPU deployment runs "
                        "the model (use for *.cpu_uint8.onnx); default: the Q/DQ graph's exact ONNX "
                        "semantics, which is what TensorRT computes")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=cmd_evaluate)
