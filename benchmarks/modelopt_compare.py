"""workbench's default INT8 vs ONNX Runtime quantize_static vs NVIDIA ModelOpt's ONNX INT8 PTQ.

Usage:
    python benchmarks/modelopt_compare.py --modelopt-python /tmp/modelopt-venv/bin/python
    python benchmarks/modelopt_compare.py --skip-sample              # realistic models only (~3 min)
    python benchmarks/modelopt_compare.py --json modelopt.json

ModelOpt is NOT a dependency of workbench: it runs in another Python (a virtualenv of its own,
``--modelopt-python``) as a child process. Setting that virtualenv up on a CPU-only machine
(ModelOpt's ``[onnx]`` extra asks for cupy-cuda12x and onnxruntime-gpu, which are not needed for
INT8 calibration on the CPU)::

    python3 -m venv /tmp/modelopt-venv
    /tmp/modelopt-venv/bin/pip install torch==2.13.0          # the CPU wheel on this machine's disk
    /tmp/modelopt-venv/bin/pip install nvidia-modelopt "onnx~=1.21.0" "onnxruntime~=1.24.2" \\
        "onnx-graphsurgeon>=0.6.1" "onnxconverter-common~=1.16.0" "onnxslim>=0.1.76" lief ml_dtypes \\
        cppimport "polygraphy>=0.53.4" onnxscript

For each model, on the same calibration data and judged on the same held-out data:

* **workbench default**: ``workbench quantize MODEL --data CALIB -o OUT.onnx`` (the CLI as a user
  runs it, calibration data alone: ``auto`` ranges + the accuracy steps kept where its own
  hold-out gains; the sample also gets ``--preset efficientnet-lite``); OUT.onnx (the TensorRT
  file) is scored;
* **ORT best**: the best of the 12 ``quantize_static`` settings of benchmarks/quantization.py
  (QDQ; MinMax / Entropy / Percentile x per-channel on/off x QInt8 symmetric / QUInt8
  activations), chosen by the task metric then SQNR *on the held-out data* (an oracle choice:
  it favours ORT); the winning setting is printed;
* **ModelOpt int8 max / entropy**: ``modelopt.onnx.quantization.quantize(onnx_path,
  quantize_mode="int8", calibration_data={input: stacked samples}, calibration_method=...,
  calibration_eps=["cpu"], high_precision_dtype=..., output_path=...)``. Its own default for
  ``high_precision_dtype`` is "fp16" (everything it does not quantize goes to FP16); we pass
  "fp32" by default so that the three contenders differ only in their INT8 (``--modelopt-fp16``
  adds ModelOpt's defaults, entropy + fp16, as a further column).

Every number uses **exact ONNX semantics** (ONNX Runtime with graph optimizations off,
``ORT_DISABLE_ALL``, via ``Evaluator.run``): the task metric of the model kind (top-1 agreement,
mask IoU, exact match of the greedy CTC decoding, cosine) and the output SQNR vs FP32 in dB.

Data: the realistic models of tests/realistic_models.py take 32 calibration samples (generator
seed 1) and 32 held-out samples (seed 3), as ``quantization.py --realistic-only``; the sample
EfficientNet-Lite0 takes the 64 photos of sample_data/calib and is judged on the 41 of
sample_data/eval (preset efficientnet-lite). Calibration data is written once into a temp folder
as .npz files (one per sample for the workbench CLI, one stacked file per model for ModelOpt).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

DEFAULT_MODELOPT_PYTHON = "/tmp/modelopt-venv/bin/python"
REALISTIC_SAMPLES = 32

# Run by the ModelOpt interpreter: quantize every job of a JSON list, one result per job, never
# stopping at a failed job (its error text and the tail of the traceback are reported instead).
CHILD_SOURCE = r'''
import json, sys, time, traceback
import numpy as np

jobs = json.load(open(sys.argv[1]))
results = []
try:
    import modelopt
    from modelopt.onnx.quantization import quantize
    import onnxruntime
    versions = {"modelopt": modelopt.__version__, "onnxruntime": onnxruntime.__version__,
                "python": sys.version.split()[0]}
except Exception as exc:
    json.dump({"import_error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]},
              open(sys.argv[2], "w"))
    raise SystemExit(0)
for job in jobs:
    data = dict(np.load(job["calib_npz"]))
    t0 = time.perf_counter()
    try:
        quantize(job["model"], quantize_mode="int8", calibration_data=data,
                 calibration_method=job["method"], calibration_eps=["cpu"],
                 high_precision_dtype=job["high_precision_dtype"], output_path=job["output"],
                 log_level="WARNING")
        results.append({"name": job["name"], "ok": True, "seconds": time.perf_counter() - t0})
    except BaseException as exc:  # noqa: BLE001 - report it and go on with the next job
        results.append({"name": job["name"], "ok": False, "seconds": time.perf_counter() - t0,
                        "error": f"{type(exc).__name__}: {exc}"[:2000],
                        "traceback": traceback.format_exc()[-3000:]})
json.dump({"versions": versions, "results": results}, open(sys.argv[2], "w"), indent=1)
'''


def modelopt_variants(args) -> list:
    """(column label, calibration method, high_precision_dtype) of the ModelOpt runs."""
    out = [("ModelOpt max", "max", args.high_precision), ("ModelOpt entropy", "entropy", args.high_precision)]
    if args.modelopt_fp16 and args.high_precision != "fp16":
        out.append(("ModelOpt defaults (entropy, fp16)", "entropy", "fp16"))
    return out


def run_modelopt(python: str, model_path: Path, calib_npz: Path, work: Path, variants: list,
                 timeout: float) -> tuple:
    """Quantize ``model_path`` with each ModelOpt variant in the ModelOpt interpreter.

    Returns ({label: {"path", "seconds"} or {"error"}}, versions dict or None)."""
    work.mkdir(parents=True, exist_ok=True)
    child = work / "modelopt_child.py"
    child.write_text(CHILD_SOURCE)
    jobs = [{"name": label, "model": str(model_path), "calib_npz": str(calib_npz), "method": method,
             "high_precision_dtype": hp, "output": str(work / f"modelopt_{method}_{hp}.onnx")}
            for label, method, hp in variants]
    jobs_path, out_path, log_path = work / "jobs.json", work / "modelopt_result.json", work / "modelopt.log"
    jobs_path.write_text(json.dumps(jobs))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    try:
        with open(log_path, "w") as log:
            proc = subprocess.run([python, str(child), str(jobs_path), str(out_path)], stdout=log,
                                  stderr=subprocess.STDOUT, timeout=timeout, env=env, cwd=str(work))
    except subprocess.TimeoutExpired:
        return {label: {"error": f"ModelOpt timed out after {timeout:.0f} s"} for label, _, _ in variants}, None
    except OSError as exc:
        return {label: {"error": f"cannot start {python}: {exc}"} for label, _, _ in variants}, None
    if not out_path.exists():
        tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-4:])
        return {label: {"error": f"ModelOpt child exit code {proc.returncode}: {tail}"} for label, _, _ in variants}, None
    res = json.loads(out_path.read_text())
    if "import_error" in res:
        return {label: {"error": f"importing ModelOpt failed: {res['import_error']}"} for label, _, _ in variants}, None
    out = {}
    for job, r in zip(jobs, res["results"]):
        if r["ok"] and Path(job["output"]).exists():
            out[r["name"]] = {"path": job["output"], "seconds": r["seconds"]}
        else:
            out[r["name"]] = {"error": r.get("error", "no output file written"), "traceback": r.get("traceback", "")}
    return out, res.get("versions")


def run_workbench_cli(model_path: Path, calib_dir: Path, out: Path, extra: list, timeout: float) -> dict:
    """``workbench quantize MODEL --data CALIB -o OUT`` with the default settings (no eval data)."""
    cmd = [sys.executable, "-m", "workbench.cli", "quantize", str(model_path), "--data", str(calib_dir),
           *extra, "-o", str(out), "--no-eval"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    seconds = time.perf_counter() - t0
    (out.parent / f"{out.stem}.cli.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    if proc.returncode != 0 or not out.exists():
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        return {"error": f"exit code {proc.returncode}: {tail}"}
    return {"path": str(out), "seconds": seconds}


def qdq_counts(path) -> dict:
    """QuantizeLinear nodes, and how many Conv/ConvTranspose/Gemm/MatMul nodes run in INT8 (both
    their data and weight inputs come out of a DequantizeLinear) of how many there are."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    producer = {o: n.op_type for n in m.graph.node for o in n.output}
    compute = [n for n in m.graph.node if n.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul")]
    int8 = [n for n in compute if len(n.input) > 1
            and producer.get(n.input[0]) == producer.get(n.input[1]) == "DequantizeLinear"]
    return {"quantize_linear": sum(n.op_type == "QuantizeLinear" for n in m.graph.node),
            "int8_compute": len(int8), "compute": len(compute),
            "fp16_initializers": sum(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer)}


def score(evaluator, path, metric) -> dict:
    """Task metric and SQNR of the first output vs FP32, exact ONNX semantics (graph optimizations off)."""
    from workbench.evaluate.metrics import sqnr_db
    from workbench.graph.semantics import EXACT

    name = evaluator.output_names[0]
    ref = evaluator.reference[name]
    got = evaluator.run(str(path), optimization=EXACT)[name]
    return {"task": float(metric(ref, got)), "sqnr_db": float(sqnr_db(ref, got))}


def stack_npz(calib, path: Path) -> Path:
    """All calibration samples stacked per input into one .npz (ModelOpt's ``calibration_data``)."""
    parts: dict = {}
    for batch in calib.iter_batches(C.BATCH_SIZE):
        for k, v in batch.items():
            parts.setdefault(k, []).append(np.asarray(v))
    np.savez(path, **{k: np.concatenate(v) for k, v in parts.items()})
    return path


def compare_one(name, metric_name, metric, info, model_path, calib, calib_dir, evaluator, work: Path,
                args, cli_extra=(), ort_model_path=None) -> dict:
    """Every contender on one model; returns the row of the summary table (and details)."""
    from quantization import best_ort, run_ort_quantize

    entry = {"model": name, "metric": metric_name, "calib_samples": len(calib),
             "eval_samples": evaluator.num_samples, "contenders": {}}
    cont = entry["contenders"]

    # 1. workbench default, as the CLI runs it with calibration data alone
    print(f"[{name}] workbench quantize (default settings) ...", flush=True)
    wb = run_workbench_cli(model_path, calib_dir, work / "workbench.onnx", list(cli_extra), args.timeout)
    if "path" in wb:
        wb.update(score(evaluator, wb["path"], metric), **qdq_counts(wb["path"]))
    cont["workbench default"] = wb

    # 2. ONNX Runtime quantize_static, its best of 12 settings on the held-out data
    print(f"[{name}] ONNX Runtime quantize_static (12 settings) ...", flush=True)
    ort_dir = work / "ort"
    ort_dir.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    rows = run_ort_quantize(calib, evaluator, ort_dir, False, model_path=ort_model_path or model_path, metric=metric)
    ort_s = time.perf_counter() - t0
    for r in rows:
        if "error" not in r:
            if "task" not in r:  # the sample: run_ort_quantize has top-1 agreement already
                r["task"] = r.get("top1_agreement")
    best = best_ort(rows, key=("task", "sqnr_db"))
    sym = best_ort([r for r in rows if "QInt8-sym" in r["setting"]], key=("task", "sqnr_db"))
    if best is not None:
        cont["ORT best"] = {"setting": best["setting"], "task": best["task"], "sqnr_db": best["sqnr_db"],
                            "seconds": ort_s, **qdq_counts(best["path"])}
        if sym is not None:
            entry["ort_best_symmetric"] = {"setting": sym["setting"], "task": sym["task"], "sqnr_db": sym["sqnr_db"]}
    else:
        cont["ORT best"] = {"error": "every quantize_static setting failed"}
    entry["ort_rows"] = [{k: v for k, v in r.items() if k != "path"} for r in rows]

    # 3. ModelOpt, in its own interpreter
    print(f"[{name}] ModelOpt int8 in {args.modelopt_python} ...", flush=True)
    calib_npz = stack_npz(calib, work / "calib_stacked.npz")
    mo, versions = run_modelopt(args.modelopt_python, model_path, calib_npz, work / "modelopt",
                                modelopt_variants(args), args.timeout)
    entry["modelopt_versions"] = versions
    for label, r in mo.items():
        if "path" in r:
            try:
                r.update(score(evaluator, r["path"], metric), **qdq_counts(r["path"]))
            except Exception as exc:  # noqa: BLE001 - a model ONNX Runtime cannot run is a result too
                r = {"error": f"scoring failed: {type(exc).__name__}: {str(exc)[:300]}"}
        cont[label] = r
    for label, r in cont.items():
        if "error" in r:
            print(f"  {label}: FAILED: {r['error'][:400]}")
        else:
            print(f"  {label}: {metric_name} {r['task']:.3f}, SQNR {r['sqnr_db']:.1f} dB "
                  f"({r.get('seconds', 0):.1f} s; INT8 Conv/Gemm/MatMul {r.get('int8_compute')}/{r.get('compute')})")
    return entry


def realistic(args, root: Path) -> list:
    import onnx

    sys.path.insert(0, str(C.REPO / "tests"))
    import realistic_models as R  # noqa: E402

    from workbench.evaluate.evaluator import Evaluator
    from workbench.graph.model import ModelInfo

    out = []
    kinds = [k for k in R.MODELS if not args.models or k in args.models.split(",")]
    for kind in kinds:
        spec = R.MODELS[kind]
        work = root / kind
        work.mkdir()
        info = ModelInfo(spec.build())
        model_path = work / f"{kind}.onnx"
        onnx.save(info.model, str(model_path))
        samples = spec.data(REALISTIC_SAMPLES, seed=1)
        calib = R.ArrayData(info, samples)
        calib_dir = R.write_npz(work / "calib", samples)
        evaluator = Evaluator(info, R.ArrayData(info, spec.data(REALISTIC_SAMPLES, seed=3)))
        out.append(compare_one(kind, spec.metric_name, spec.metric, info, model_path, calib, calib_dir,
                               evaluator, work, args))
    return out


def sample(args, root: Path) -> dict:
    from workbench.data import PRESETS, open_data
    from workbench.evaluate.evaluator import Evaluator
    from workbench.graph.model import ModelInfo
    from realistic_eval import top1_agreement  # noqa: F401 (tests/ is on sys.path after realistic())

    work = root / "efficientnet_lite0"
    work.mkdir()
    model = ModelInfo.from_path(C.SAMPLE_MODEL)
    pre = PRESETS[C.PRESET]
    calib = open_data(C.CALIB_DIR, model, preprocess=pre)
    evaluator = Evaluator(model, open_data(C.EVAL_DIR, model, preprocess=pre))
    return compare_one("efficientnet-lite0", "top-1 agreement", top1_agreement, model, C.SAMPLE_MODEL, calib,
                       C.CALIB_DIR, evaluator, work, args, cli_extra=["--preset", C.PRESET])


def cell(r: dict) -> str:
    if "error" in r:
        return "failed"
    return f"{r['task']:.3f} / {r['sqnr_db']:.1f} dB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modelopt-python", default=DEFAULT_MODELOPT_PYTHON,
                    help=f"Python of the virtualenv where nvidia-modelopt is installed (default {DEFAULT_MODELOPT_PYTHON})")
    ap.add_argument("--high-precision", choices=("fp32", "fp16"), default="fp32",
                    help="ModelOpt's high_precision_dtype for what it leaves unquantized (default fp32; "
                         "ModelOpt's own default is fp16)")
    ap.add_argument("--modelopt-fp16", action="store_true",
                    help="also run ModelOpt with its own defaults (entropy, high_precision_dtype fp16)")
    ap.add_argument("--models", default="", help="comma-separated realistic models (default: all five)")
    ap.add_argument("--skip-sample", action="store_true", help="skip the sample EfficientNet-Lite0")
    ap.add_argument("--skip-realistic", action="store_true", help="only the sample EfficientNet-Lite0")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per child process (default 900)")
    ap.add_argument("--keep", default=None, help="write the models and data into this new folder and keep them")
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args()

    import logging
    logging.getLogger().setLevel(logging.ERROR)
    machine = C.machine_line()
    print(f"Machine: {machine}; load average {os.getloadavg()[0]:.1f} (shared: seconds are indicative)")
    t_start = time.perf_counter()
    report: dict = {"machine": machine, "modelopt_python": args.modelopt_python,
                    "high_precision_dtype": args.high_precision, "models": []}
    if args.keep:
        root = Path(args.keep)
        root.mkdir(parents=True)
        ctx = None
    else:
        ctx = tempfile.TemporaryDirectory(prefix="wb_modelopt_")
        root = Path(ctx.name)
    try:
        if not args.skip_realistic:
            report["models"] += realistic(args, root)
        if not args.skip_sample:
            sys.path.insert(0, str(C.REPO / "tests"))
            report["models"].append(sample(args, root))
    finally:
        if ctx is not None:
            ctx.cleanup()
    versions = next((m["modelopt_versions"] for m in report["models"] if m.get("modelopt_versions")), None)
    report["modelopt_versions"] = versions
    report["wall_s"] = time.perf_counter() - t_start

    labels = ["workbench default", "ORT best"] + [label for label, _, _ in modelopt_variants(args)]
    rows = [{"model": m["model"], "metric": f"{m['metric']} / SQNR",
             **{label: cell(m["contenders"].get(label, {"error": "not run"})) for label in labels}}
            for m in report["models"]]
    import onnxruntime
    title = (f"\nTask metric / output SQNR vs FP32, exact ONNX semantics (ORT {onnxruntime.__version__}, "
             f"graph optimizations off). Realistic models: {REALISTIC_SAMPLES} calibration + "
             f"{REALISTIC_SAMPLES} held-out samples; efficientnet-lite0: 64 calibration + 41 held-out photos. "
             f"ModelOpt {versions['modelopt'] if versions else '?'} with calibration_eps=['cpu'], "
             f"high_precision_dtype={args.high_precision}.")
    C.print_table(rows, ["model", "metric", *labels], title)
    print("\nORT best setting (chosen on the held-out data); per contender: seconds, Conv/ConvTranspose/Gemm/MatMul "
          "nodes in INT8 of all such nodes in its file")
    for m in report["models"]:
        c = m["contenders"]
        parts = []
        for label in labels:
            r = c.get(label, {})
            if "error" in r:
                parts.append(f"{label} failed: {r['error'][:200]}")
            else:
                parts.append(f"{label} {r.get('seconds', float('nan')):.1f} s, INT8 {r.get('int8_compute')}/{r.get('compute')}")
        ort = c.get("ORT best", {})
        sym = m.get("ort_best_symmetric")
        print(f"  {m['model']}: ORT best = {ort.get('setting', '-')}"
              + (f" (best symmetric: {sym['setting']} {sym['task']:.3f} / {sym['sqnr_db']:.1f} dB)" if sym else ""))
        print("    " + "; ".join(parts))
    print(f"\nTotal {report['wall_s']:.0f} s; load average {os.getloadavg()[0]:.1f}")
    if args.json:
        C.write_json(args.json, report)


if __name__ == "__main__":
    main()
