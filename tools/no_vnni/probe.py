"""Does ONNX Runtime's optimized (fused QDQ -> u8s8 MLAS kernel) path saturate on this CPU?

Builds tiny Q/DQ MatMul and Gemm models (int8 activations, symmetric int8 per-channel weights,
like workbench's export), runs them with ORT_DISABLE_ALL (reference DQ->float op semantics)
and ORT_ENABLE_ALL (QDQ fused into QGemm/MatMulIntegerToFloat/QLinearMatMul, s8 activations
shifted to u8, MLAS U8S8 kernel), and compares both with exact numpy math.
Prints one line per case; exit status 0 either way (it is a probe, not a test)."""
import os
import sys
import tempfile
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def qdq_model(op, k, n, trans_b, w_q, w_scale, x_scale):
    w_shape = (n, k) if trans_b else (k, n)
    axis = 0 if trans_b else 1
    inits = [numpy_helper.from_array(w_q.reshape(w_shape), "Wq"),
             numpy_helper.from_array(w_scale.astype(np.float32), "Ws"),
             numpy_helper.from_array(np.zeros(n, np.int8), "Wz"),
             numpy_helper.from_array(np.float32(x_scale), "xs"),
             numpy_helper.from_array(np.int8(0), "xz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["Wq", "Ws", "Wz"], ["W"], axis=axis)]
    if op == "Gemm":
        nodes.append(helper.make_node("Gemm", ["xd", "W"], ["y"], transB=trans_b))
    else:
        nodes.append(helper.make_node("MatMul", ["xd", "W"], ["y"]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, k])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, n])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def run(model, level, dump=None):
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    if dump:
        so.optimized_model_filepath = dump
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s


def main():
    rng = np.random.default_rng(0)
    k, n = 64, 8
    print(f"onnxruntime {ort.__version__}")
    for label, make_x, make_w in (
        ("worst-case (|x_q|=127, |w_q|=127)",
         lambda: np.full((2, k), 127.0, np.float32) * np.array([[1], [-1]], np.float32),
         lambda: np.where(rng.random((k, n)) < 0.5, 127, -127).astype(np.int8)),
        ("random (x ~ N(0,1)*3, w_q uniform)",
         lambda: (rng.standard_normal((2, k)) * 3).astype(np.float32),
         lambda: rng.integers(-127, 128, (k, n)).astype(np.int8)),
    ):
        x = make_x()
        wq_kn = make_w()
        x_scale = float(np.abs(x).max() / 127)
        w_scale = np.full(n, 0.01, np.float32)
        xq = np.clip(np.round(x / x_scale), -128, 127)
        exact = (xq * x_scale) @ (wq_kn.astype(np.float64) * w_scale)
        for op, tb in (("MatMul", 0), ("Gemm", 0), ("Gemm", 1)):
            w_q = wq_kn.T.copy() if tb else wq_kn
            m = qdq_model(op, k, n, tb, w_q, w_scale, x_scale)
            dump = os.path.join(tempfile.mkdtemp(), "optimized.onnx")
            y0 = run(m, ort.GraphOptimizationLevel.ORT_DISABLE_ALL).run(None, {"x": x})[0]
            y1 = run(m, ort.GraphOptimizationLevel.ORT_ENABLE_ALL, dump).run(None, {"x": x})[0]
            fused = [nd.op_type for nd in onnx.load(dump).graph.node]
            scale = np.abs(exact).max()
            print(f"{label:38s} {op}{' transB=%d' % tb if op == 'Gemm' else '':9s} "
                  f"rel.err DISABLE_ALL={np.abs(y0 - exact).max() / scale:.2e} "
                  f"ENABLE_ALL={np.abs(y1 - exact).max() / scale:.2e}  optimized graph: {fused}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
