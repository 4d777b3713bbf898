"""Audit: log every ONNX Runtime session that opens a quantized model with graph optimizations on.

Put this folder on PYTHONPATH and set NOVNNI_AUDIT_LOG=/path/log.jsonl; every python process
(pytest and its subprocesses: CLI tests, notebooks...) then appends one JSON line per such session:
the optimization level, the model's quantization ops, whether workbench.graph.semantics.deployed_path
was active, the pytest test and the workbench/tests frames of the call stack. Nothing is changed
in what the session computes.
"""
import json
import os
import sys
import traceback

_LOG = os.environ.get("NOVNNI_AUDIT_LOG")
_QUANT = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QGemm", "MatMulInteger",
          "ConvInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QAttention"}


def _quant_ops(model_path, model_bytes):
    try:
        import onnx

        proto = (onnx.load_from_string(model_bytes) if model_bytes is not None
                 else onnx.load(model_path, load_external_data=False))
    except Exception as exc:  # noqa: BLE001 - an audit never breaks the run
        return [f"<unreadable: {type(exc).__name__}>"]
    ops = {n.op_type for n in proto.graph.node}
    for f in proto.functions:
        ops |= {n.op_type for n in f.node}
    return sorted(o for o in ops if o in _QUANT or o.startswith("QLinear"))


def _patch(mod):
    cls = mod.InferenceSession
    original = cls._create_inference_session
    if getattr(original, "_novnni_audit", False):
        return

    def audited(self, *args, **kwargs):
        try:
            import onnxruntime as ort

            so = getattr(self, "_sess_options", None)
            level = so.graph_optimization_level if so is not None else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if level != ort.GraphOptimizationLevel.ORT_DISABLE_ALL:
                ops = _quant_ops(getattr(self, "_model_path", None), getattr(self, "_model_bytes", None))
                if ops:
                    sem = sys.modules.get("workbench.graph.semantics")
                    deployed = bool(sem and sem.deployed_path_active())
                    frames = [f"{os.path.relpath(f.filename, os.environ.get('NOVNNI_ROOT', os.getcwd()))}:{f.lineno} {f.name}"
                              for f in traceback.extract_stack()[:-1]
                              if ("/workbench/" in f.filename or "/tests/" in f.filename)]
                    rec = {"pid": os.getpid(), "test": os.environ.get("PYTEST_CURRENT_TEST", ""),
                           "argv": " ".join(sys.argv[:4])[:200], "level": str(level), "ops": ops,
                           "deployed_path": deployed, "stack": frames[-8:]}
                    with open(_LOG, "a") as fh:
                        fh.write(json.dumps(rec) + "\n")
        except Exception:  # noqa: BLE001
            pass
        return original(self, *args, **kwargs)

    audited._novnni_audit = True
    cls._create_inference_session = audited


class _Finder:
    """Patches onnxruntime's InferenceSession right after onnxruntime is imported."""

    def find_spec(self, name, path=None, target=None):
        if name != "onnxruntime.capi.onnxruntime_inference_collection":
            return None
        import importlib.machinery

        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                loader = spec.loader
                exec_module = loader.exec_module

                def exec_and_patch(module, _exec=exec_module):
                    _exec(module)
                    _patch(module)

                loader.exec_module = exec_and_patch
                return spec
        return None


if _LOG:
    sys.meta_path.insert(0, _Finder())
