"""Q/DQ models made in the tests, in the shapes users bring them (no downloads, no torch).

* :func:`fake_quant`: an FP32 model with QuantizeLinear -> DequantizeLinear pairs written with
  ``onnx.helper`` the way PyTorch's QAT export (``torch.onnx`` of fake-quant modules, opset 13)
  writes them: a pair on each chosen activation, and a per-channel pair on each chosen float
  weight (the float weight stays in the file); scales/zero points as initializers or as
  Constant nodes.
* :func:`ort_quantized`: ONNX Runtime's ``quantize_static`` (QDQ format) of an FP32 model.
* :func:`fp8_model`, :func:`int4_matmul`: FP8 E4M3FN activations/weights and blocked INT4 weights.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _node_readers(model, tensor):
    return [(n, i) for n in model.graph.node for i, t in enumerate(n.input) if t == tensor]


def fake_quant(model: onnx.ModelProto, activations: dict, weights: dict, *, dtype: int = TensorProto.INT8,
               constants: bool = False, opset: int = 13, readers: dict | None = None) -> onnx.ModelProto:
    """``model`` with Q/DQ pairs, PyTorch QAT export style.

    Args:
        activations: tensor -> (scale float32, zero point int) of a per-tensor pair inserted on
            that tensor for every reader (a graph output gets the pair in front of it).
        weights: float initializer -> (per-channel float32 scales, axis), symmetric INT8.
        dtype: activation element type (INT8 or UINT8); weights are always INT8.
        constants: scales and zero points as Constant nodes (as ``torch.onnx`` often writes
            them) instead of initializers.
        readers: tensor -> names of the nodes that read the pair's output (default: all readers).
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.opset_import[:]
    m.opset_import.extend([helper.make_opsetid("", max(opset, model.opset_import[0].version))])
    g = m.graph
    new_nodes, new_inits = [], []
    zp_np = {TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8}

    def param(name, value):
        if constants:
            new_nodes.append(helper.make_node("Constant", [], [name], name=f"{name}_Constant",
                                              value=numpy_helper.from_array(np.asarray(value), name)))
        else:
            new_inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    outputs = [o.name for o in g.output]

    def pair(t, scale, zp, zdtype, axis=None):
        s = param(f"{t}_qscale", np.asarray(scale, np.float32))
        z = param(f"{t}_qzero", np.asarray(zp, zp_np[zdtype]))
        attrs = {"axis": axis} if axis is not None else {}
        # a quantized graph output: the producer writes "<name>_pre", the DQ writes the output
        src, out = (f"{t}_pre", t) if t in outputs else (t, f"{t}_dq")
        q = helper.make_node("QuantizeLinear", [src, s, z], [f"{t}_q"], name=f"{t}_QuantizeLinear", **attrs)
        dq = helper.make_node("DequantizeLinear", [f"{t}_q", s, z], [out], name=f"{t}_DequantizeLinear",
                              **attrs)
        return q, dq, out
    inserts: dict = {}  # tensor -> (q, dq)
    for t, (scale, zp) in activations.items():
        inserts[t] = pair(t, scale, zp, dtype)
    for w, (scales, axis) in weights.items():
        inserts[w] = pair(w, scales, np.zeros(np.shape(scales), np.int8), TensorProto.INT8, axis)
    for t, (_, _, dq_out) in inserts.items():
        for node, i in _node_readers(m, t):
            if readers is None or t not in readers or node.name in readers[t]:
                node.input[i] = dq_out
        if t in outputs:
            for n in g.node:
                for j, y in enumerate(n.output):
                    if y == t:
                        n.output[j] = f"{t}_pre"
    ordered = []
    pending = dict(inserts)
    avail = {i.name for i in g.input} | {i.name for i in g.initializer}

    def flush():
        for t in list(pending):
            q, dq, _ = pending[t]
            if q.input[0] in avail:
                ordered.extend([q, dq])
                avail.update([q.output[0], dq.output[0]])
                del pending[t]

    ordered.extend(n for n in new_nodes)  # Constant nodes first
    flush()
    for n in list(g.node):
        ordered.append(n)
        avail.update(n.output)
        flush()
    del g.node[:]
    g.node.extend(ordered)
    g.initializer.extend(new_inits)
    onnx.checker.check_model(m)
    return m


def ort_quantized(model: onnx.ModelProto, samples: list, tmp_path, *, activation_type: str = "QUInt8",
                  per_channel: bool = True, symmetric: bool = False, name: str = "m") -> onnx.ModelProto:
    """ONNX Runtime ``quantize_static`` (QDQ format, MinMax) of ``model`` on ``samples`` (feeds
    with a batch axis of 1 added here). ``symmetric``: ActivationSymmetric and WeightSymmetric."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    src, dst = tmp_path / f"{name}_fp32.onnx", tmp_path / f"{name}_ort_qdq.onnx"
    onnx.save(model, str(src))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{k: v[None] for k, v in s.items()} for s in samples])

        def get_next(self):
            return next(self.it, None)

    extra = {"ActivationSymmetric": True, "WeightSymmetric": True} if symmetric else {}
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=getattr(QuantType, activation_type), weight_type=QuantType.QInt8,
                    per_channel=per_channel, extra_options=extra)
    return onnx.load(str(dst))


def fp8_model(seed: int = 0, kind: str = "FLOAT8E4M3FN") -> tuple:
    """input -> Q/DQ (``kind``: FLOAT8E4M3FN or FLOAT8E5M2) -> MatMul with a stored FP8 weight
    (DQ) -> output, opset 19. Returns (model, float32 weight the codes dequantize to, activation scale)."""
    rng = np.random.default_rng(seed)
    import ml_dtypes

    np_type, peak = {"FLOAT8E4M3FN": (ml_dtypes.float8_e4m3fn, 448.0),
                     "FLOAT8E5M2": (ml_dtypes.float8_e5m2, 57344.0)}[kind]
    w = rng.standard_normal((8, 4)).astype(np.float32)
    w_scale = np.float32(np.abs(w).max() / peak)
    codes = (w / w_scale).astype(np_type)
    deq = codes.astype(np.float32) * w_scale
    a_scale = np.float32(3.0 / peak)
    inits = [numpy_helper.from_array(codes, "w_fp8"), numpy_helper.from_array(np.array(w_scale), "w_scale"),
             numpy_helper.from_array(np.array(a_scale), "x_scale"),
             helper.make_tensor("x_zero", getattr(TensorProto, kind), [], [0.0])]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"], name="x_q"),
             helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xdq"], name="x_dq"),
             helper.make_node("DequantizeLinear", ["w_fp8", "w_scale"], ["w"], name="w_dq"),
             helper.make_node("MatMul", ["xdq", "w"], ["y"], name="mm")]
    g = helper.make_graph(nodes, "fp8", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m, deq, a_scale


def int4_matmul(seed: int = 0, block: int = 4) -> tuple:
    """input [N, 8] -> MatMul with a blocked INT4 weight [8, 3] (DQ, axis 0, block ``block``),
    opset 21. Returns (model, the float32 weight the codes dequantize to, block scales)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(-8, 8, size=(8, 3))
    scales = rng.uniform(0.01, 0.1, size=(8 // block, 3)).astype(np.float32)
    deq = (codes.astype(np.float32) * np.repeat(scales, block, axis=0)).astype(np.float32)
    inits = [helper.make_tensor("w_int4", TensorProto.INT4, [8, 3], codes.flatten().tolist()),
             numpy_helper.from_array(scales, "w_scale")]
    nodes = [helper.make_node("DequantizeLinear", ["w_int4", "w_scale"], ["w"], name="w_dq", axis=0,
                              block_size=block),
             helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    g = helper.make_graph(nodes, "int4", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    onnx.checker.check_model(m)
    return m, deq, scales


# ----------------------------------------------------------------------------- shared by the imported/ tests
def run_exact(model, feed: dict, outputs=None) -> dict:
    """``model`` run with exact ONNX semantics (ONNX Runtime, graph optimizations off)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = outputs or [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feed)))


def cnn_feed(n=4, seed=1, size=16):
    return {"input": np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)}


def qat_small_cnn(*, dtype=TensorProto.INT8, constants=False, seed=0, zero_points=None):
    """small_cnn with fake-quant pairs on the inputs of its INT8 nodes and per-channel weights."""
    import tiny_models

    rng = np.random.default_rng(seed)
    model = tiny_models.small_cnn(opset=13)
    acts = {t: (np.float32(rng.uniform(0.005, 0.05)), 0) for t in ("input", "r1", "r2", "sum", "pool", "flat")}
    if zero_points:
        acts.update({t: (acts[t][0], z) for t, z in zero_points.items()})
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    # "learned" per-channel scales: not max|w|/127, but wide enough that no code saturates
    weights = {}
    for w in ("conv1.weight", "conv2.weight", "fc.weight"):
        peak = np.abs(inits[w]).reshape(len(inits[w]), -1).max(axis=1)
        weights[w] = ((peak / 127 * rng.uniform(1.0, 1.25, len(peak))).astype(np.float32), 0)
    return model, fake_quant(model, acts, weights, dtype=dtype, constants=constants), acts, weights


def own_export(plan_change=None):
    """The workbench's own export of small_cnn (random ranges, default plan, optionally changed)."""
    import tiny_models
    from workbench.calib.ranges import TensorRange
    from workbench.export.build import build
    from workbench.graph.model import ModelInfo
    from workbench.precision.plan import PrecisionPlan

    info = ModelInfo(tiny_models.small_cnn(opset=13))
    rng = np.random.default_rng(2)
    ranges = {t: TensorRange(t, float(rng.uniform(1, 5)), {}, -2.0, 2.0)
              for t in info.float_tensors()}
    plan = PrecisionPlan.default(info)
    if plan_change:
        plan_change(plan)
    return info, build(info, ranges, plan), plan
