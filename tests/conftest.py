import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]
SAMPLE_MODEL = REPO / "sample_data" / "efficientnet_lite0.onnx"


def pytest_collection_modifyitems(config, items):
    try:
        import tensorrt  # noqa: F401
        have_trt = True
    except Exception:
        have_trt = False
    skip_trt = pytest.mark.skip(reason="needs the 'tensorrt' package and an NVIDIA GPU")
    for item in items:
        if "trt" in item.keywords and not have_trt:
            item.add_marker(skip_trt)


@pytest.fixture
def sample_model_path():
    if not SAMPLE_MODEL.exists():
        pytest.fail(f"sample model missing: {SAMPLE_MODEL} (run sample_data/make_sample_model.py)")
    return SAMPLE_MODEL


# ----------------------------------------------------------------------------- exact semantics
# Every numeric judgement of a quantized model uses exact ONNX semantics (ONNX Runtime with graph
# optimizations off). ONNX Runtime's optimized CPU path fuses Q/DQ into u8s8 kernels whose results
# depend on the CPU (they saturate without VNNI), so a test judged on it passes on one machine and
# fails on another. This guard fails any test that opens a quantized model with optimizations on,
# unless the session is deliberately on the deployed path (workbench.graph.semantics.deployed_path:
# latency, the cpu_uint8 file as deployed).
QUANT_OPS = {
    # ONNX
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
    "ConvInteger", "MatMulInteger",
    # com.microsoft (ONNX Runtime contrib ops)
    "QGemm", "QLinearAdd", "QLinearMul", "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu",
    "QLinearSoftmax", "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearReduceMean",
    "QLinearWhere", "QAttention", "QEmbedLayerNormalization", "MatMulIntegerToFloat", "MatMulInteger16",
    "DynamicQuantizeMatMul", "DynamicQuantizeLSTM",
}


def _graph_ops(graph) -> set:
    """Op types of ``graph`` and of the subgraphs of its nodes (If / Loop / Scan bodies)."""
    from onnx import AttributeProto

    ops = set()
    for n in graph.node:
        ops.add(n.op_type)
        for a in n.attribute:
            if a.type == AttributeProto.GRAPH:
                ops |= _graph_ops(a.g)
            elif a.type == AttributeProto.GRAPHS:
                for g in a.graphs:
                    ops |= _graph_ops(g)
    return ops


def quantized_ops(model) -> set:
    """The quantization ops of ``model`` (a path, serialized bytes or ModelProto), in subgraphs
    (the emulation's If branches) and model-local functions too."""
    import onnx

    if isinstance(model, (bytes, bytearray)):
        proto = onnx.load_from_string(bytes(model))
    elif isinstance(model, onnx.ModelProto):
        proto = model
    else:
        proto = onnx.load(str(model), load_external_data=False)
    ops = _graph_ops(proto.graph)
    for f in proto.functions:
        ops |= _graph_ops(f)
    return ops & QUANT_OPS


def optimized_judgement(model, sess_options) -> str | None:
    """Why opening ``model`` with ``sess_options`` outside the deployed path is refused, or None."""
    import onnxruntime as ort

    from workbench.graph.semantics import deployed_path_active

    level = sess_options.graph_optimization_level if sess_options is not None else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL or deployed_path_active():
        return None
    ops = quantized_ops(model)
    if not ops:
        return None
    return (f"a quantized model ({', '.join(sorted(ops))}) was opened with ONNX Runtime optimizations on "
            f"({level}): its numbers depend on the CPU's kernels. Judge with exact semantics "
            "(ORT_DISABLE_ALL) or open it inside workbench.graph.semantics.deployed_path().")


@pytest.fixture(autouse=True)
def _exact_semantics_guard(monkeypatch):
    import onnxruntime as ort

    original = ort.InferenceSession.__init__

    def guarded(self, path_or_bytes, sess_options=None, *args, **kwargs):
        why = optimized_judgement(path_or_bytes, sess_options)
        if why:  # pytest's Failed is a BaseException: no ``except Exception`` in the code under test hides it
            pytest.fail(why)
        return original(self, path_or_bytes, sess_options, *args, **kwargs)

    monkeypatch.setattr(ort.InferenceSession, "__init__", guarded)
    yield
