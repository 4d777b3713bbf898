"""Small seeded models with the pathologies the improve steps exist for, and their data."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from workbench.improve.runner import ExactRunner


def _model(nodes, inputs, outputs, inits, opset=13):
    graph = helper.make_graph(nodes, "m", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def _spread(rng, n, decades):
    """Per-channel factors spread log-uniformly over ``decades`` orders of magnitude."""
    return (10.0 ** rng.uniform(-decades / 2, decades / 2, size=n)).astype(np.float32)


def depthwise_model(act: str = "relu", seed: int = 0, bias: bool = True) -> onnx.ModelProto:
    """x[N,8,10,10] -> Conv1x1 (8->16, output channels spread over 3 decades) -> Relu | Clip(0,6)
    -> depthwise 3x3 (one large weight per channel, the rest small) -> Relu -> Conv1x1 (16->8)
    -> output [N,8,10,10]."""
    rng = np.random.default_rng(seed)
    w1 = (rng.normal(size=(16, 8, 1, 1)) * 0.5 * _spread(rng, 16, 3)[:, None, None, None]).astype(np.float32)
    b1 = (rng.normal(size=16) * 0.1 * np.abs(w1).reshape(16, -1).max(1)).astype(np.float32)
    wd = (rng.normal(size=(16, 1, 3, 3)) * 0.05).astype(np.float32)
    wd[:, 0, 1, 1] = rng.uniform(1.0, 2.0, size=16)
    wd *= (1.0 / _spread(rng, 16, 2))[:, None, None, None]
    bd = (rng.normal(size=16) * 0.05).astype(np.float32)
    w3 = (rng.normal(size=(8, 16, 1, 1)) * 0.3).astype(np.float32)
    b3 = (rng.normal(size=8) * 0.05).astype(np.float32)
    inits = {"w1": w1, "wd": wd, "w3": w3}
    c1 = ["x", "w1"] + (["b1"] if bias else [])
    cd = ["a1", "wd"] + (["bd"] if bias else [])
    if bias:
        inits.update(b1=b1, bd=bd)
    inits["b3"] = b3
    if act == "relu":
        act_node = helper.make_node("Relu", ["y1"], ["a1"], name="act1")
    else:
        inits.update(lo=np.array(0, np.float32), hi=np.array(6, np.float32))
        act_node = helper.make_node("Clip", ["y1", "lo", "hi"], ["a1"], name="act1")
    nodes = [helper.make_node("Conv", c1, ["y1"], name="expand"), act_node,
             helper.make_node("Conv", cd, ["yd"], name="dw", group=16, pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["yd"], ["ad"], name="act2"),
             helper.make_node("Conv", ["ad", "w3", "b3"], ["y"], name="project")]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 10, 10])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 10, 10])], inits)


def transformer_model(seed: int = 0, residual_reader: bool = False) -> onnx.ModelProto:
    """x[N,12,32] -> LayerNormalization (4 outlier channels, scale x40) -> MatMul(32x64)+Add -> Relu
    -> MatMul(64x32)+Add -> y (opset 17). ``residual_reader``: the LN output is also added to y."""
    rng = np.random.default_rng(seed)
    gamma = rng.uniform(0.5, 1.5, size=32).astype(np.float32)
    gamma[[3, 11, 19, 27]] *= 40.0
    beta = (rng.normal(size=32) * 0.1).astype(np.float32)
    w1 = (rng.normal(size=(32, 64)) * 0.2).astype(np.float32)
    w1[[3, 11, 19, 27], :] *= 0.05
    b1 = (rng.normal(size=64) * 0.1).astype(np.float32)
    w2 = (rng.normal(size=(64, 32)) * 0.2).astype(np.float32)
    b2 = (rng.normal(size=32) * 0.1).astype(np.float32)
    nodes = [helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["ln"], name="ln", axis=-1),
             helper.make_node("MatMul", ["ln", "w1"], ["m1"], name="fc1"),
             helper.make_node("Add", ["m1", "b1"], ["h1"], name="fc1_bias"),
             helper.make_node("Relu", ["h1"], ["r1"], name="relu"),
             helper.make_node("MatMul", ["r1", "w2"], ["m2"], name="fc2"),
             helper.make_node("Add", ["m2", "b2"], ["y0" if residual_reader else "y"], name="fc2_bias")]
    if residual_reader:
        nodes.append(helper.make_node("Add", ["y0", "ln"], ["y"], name="residual"))
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 12, 32])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 12, 32])],
                  {"gamma": gamma, "beta": beta, "w1": w1, "b1": b1, "w2": w2, "b2": b2}, opset=17)


def gemm_model(seed: int = 0, bias: bool = True) -> onnx.ModelProto:
    """x[N,48] -> Gemm(transB, 48->64) -> Relu -> Gemm(transB, 64->10) -> y."""
    rng = np.random.default_rng(seed)
    w1 = (rng.normal(size=(64, 48)) * 0.02).astype(np.float32)
    w1[np.arange(64), rng.integers(0, 48, 64)] = 0.6  # one large weight per output channel
    w2 = (rng.normal(size=(10, 64)) * 0.02).astype(np.float32)
    w2[np.arange(10), rng.integers(0, 64, 10)] = 0.5
    inits = {"w1": w1, "w2": w2, "c2": (rng.normal(size=10) * 0.1).astype(np.float32)}
    g1 = ["x", "w1"]
    if bias:
        inits["c1"] = (rng.normal(size=64) * 0.1).astype(np.float32)
        g1.append("c1")
    nodes = [helper.make_node("Gemm", g1, ["h"], name="gemm1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "w2", "c2"], ["y"], name="gemm2", transB=1)]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 48])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)


def constant_weights_model(seed: int = 0) -> onnx.ModelProto:
    """Opset 12: Conv 3x3 (4->8) -> Relu -> Conv 1x1 (8->4), weights and biases from Constant nodes."""
    rng = np.random.default_rng(seed)
    consts = {"w1": (rng.normal(size=(8, 4, 3, 3)) * 0.02).astype(np.float32),
              "b1": (rng.normal(size=8) * 0.1).astype(np.float32),
              "w2": (rng.normal(size=(4, 8, 1, 1)) * 0.02).astype(np.float32)}
    consts["w1"][:, :, 1, 1] = 0.8
    consts["w2"][:, 0] = 0.7
    nodes = [helper.make_node("Constant", [], [k], name=f"const_{k}", value=numpy_helper.from_array(v, k))
             for k, v in consts.items()]
    nodes += [helper.make_node("Conv", ["x", "w1", "b1"], ["h"], name="conv1", pads=[1, 1, 1, 1]),
              helper.make_node("Relu", ["h"], ["r"], name="relu"),
              helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2")]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])], {}, opset=12)


def batches(model: onnx.ModelProto, n: int = 8, size: int = 4, seed: int = 1, offset: float = 0.5) -> list:
    """``n`` seeded batches of ``size`` samples for the model's one input (normal, mean ``offset``)."""
    rng = np.random.default_rng(seed)
    vi = model.graph.input[0]
    dims = [d.dim_value for d in vi.type.tensor_type.shape.dim][1:]
    return [{vi.name: (rng.normal(size=[size] + dims) + offset).astype(np.float32)} for _ in range(n)]


def minmax_amax(model: onnx.ModelProto, data: list) -> dict:
    """max |x| of every float tensor of ``model`` over ``data`` (the ranges the tests export with)."""
    names = [vi.name for vi in model.graph.input]
    names += [t for node in model.graph.node if node.op_type != "Constant" for t in node.output]
    run = ExactRunner(model, extra=names)
    amax: dict = {}
    for b in data:
        for k, v in run.run(b, names).items():
            amax[k] = max(amax.get(k, 0.0), float(np.abs(v).max()))
    return {k: (v if v > 0 else 1.0) for k, v in amax.items()}


def calib_holdout(model: onnx.ModelProto, size: int = 4, n: int = 12) -> tuple:
    """(calibration batches, held-out batches, min-max amax of the calibration ones): the first 8
    of ``n`` batches calibrate, the rest are held out."""
    data = batches(model, n, size=size)
    return data[:8], data[8:], minmax_amax(model, data[:8])


def qdq_sqnr(model, amax, data, reference=None, plan=None) -> float:
    """Held-out output SQNR (dB) of ``model``'s Q/DQ export against ``reference`` (default ``model``)."""
    from workbench.improve.adapter import build_qdq
    from workbench.improve.runner import output_sqnr

    ref = ExactRunner(reference or model).run_all(data)
    return output_sqnr(ref, ExactRunner(build_qdq(model, amax, plan)).run_all(data))


def depthwise_session(tmp_path):
    """A Session (minmax ranges, batch 4, project folder ``proj``) over :func:`depthwise_model`
    saved in ``tmp_path`` with 8 calibration and 3 evaluation batches written as .npy folders."""
    from workbench.session import Session

    model = depthwise_model("relu")
    path = tmp_path / "dw.onnx"
    onnx.save(model, str(path))
    for sub, data in (("calib", batches(model, 8, seed=1)), ("eval", batches(model, 3, seed=2))):
        (tmp_path / sub).mkdir()
        for i, b in enumerate(data):
            np.save(tmp_path / sub / f"b{i}.npy", b["x"])
    return Session(path, tmp_path / "calib", eval_data=tmp_path / "eval", batch_size=4, method="minmax",
                   project=tmp_path / "proj")
