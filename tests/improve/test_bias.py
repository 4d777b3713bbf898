"""Bias correction: removes the per-channel mean shift in graph order, adds a bias where a
Conv/Gemm has none, uses MatMul's bias Add, and says why it skips a layer."""
import numpy as np
import pytest

import improve_models as M
from workbench.improve import correct_bias
from workbench.improve.adapter import build_qdq
from workbench.improve.graphops import get_const


def _setup(model, size=4):
    data = M.batches(model, 12, size=size)
    calib, held = data[:8], data[8:]
    return calib, held, M.minmax_amax(model, calib)


def test_bias_correction_gains_held_out_and_adds_missing_bias():
    model = M.constant_weights_model()  # opset 12, Constant-node weights, conv2 without bias
    calib, held, amax = _setup(model)
    res = correct_bias(model, amax, calib)
    assert set(res.shifts) == {"conv1", "conv2"} and not res.skipped
    conv2 = next(n for n in res.model.graph.node if n.name == "conv2")
    assert len(conv2.input) == 3 and np.abs(get_const(res.model.graph, conv2.input[2])).max() > 0
    conv1_bias = get_const(res.model.graph, "b1")  # written back into the Constant node
    assert not np.allclose(conv1_bias, get_const(model.graph, "b1"))
    base = M.qdq_sqnr(model, amax, held)
    after = M.qdq_sqnr(res.model, amax, held, reference=model)
    assert after > base + 0.5, (base, after)
    ops = lambda m: sorted({n.op_type for n in m.graph.node})  # noqa: E731
    assert ops(build_qdq(res.model, amax)) == ops(build_qdq(model, amax))


def test_second_pass_finds_almost_no_shift_left():
    model = M.depthwise_model(bias=False)
    calib, _, amax = _setup(model)
    first = correct_bias(model, amax, calib)
    again = correct_bias(first.model, amax, calib, reference=model)
    assert set(first.shifts) == {"expand", "dw", "project"}
    for layer, shift in first.shifts.items():
        left = np.abs(again.shifts[layer]).max()
        assert left < 0.05 * np.abs(shift).max(), (layer, left, np.abs(shift).max())


def test_matmul_uses_its_bias_add_and_gemm_gets_a_bias():
    model = M.transformer_model()
    calib, _, amax = _setup(model)
    res = correct_bias(model, amax, calib)
    assert set(res.shifts) == {"fc1", "fc2"}
    for name in ("b1", "b2"):
        assert get_const(res.model.graph, name).shape == get_const(model.graph, name).shape
        assert not np.array_equal(get_const(res.model.graph, name), get_const(model.graph, name))
    gemm = M.gemm_model(bias=False)
    calib, _, amax = _setup(gemm, 32)
    res = correct_bias(gemm, amax, calib)
    gemm1 = next(n for n in res.model.graph.node if n.name == "gemm1")
    assert len(gemm1.input) == 3 and get_const(res.model.graph, gemm1.input[2]).shape == (64,)


def test_matmul_without_bias_add_is_skipped_with_a_reason():
    model = M.transformer_model()
    relu = next(n for n in model.graph.node if n.name == "relu")
    relu.input[0] = "m1"  # fc1 -> Relu, no bias Add
    model.graph.node.remove(next(n for n in model.graph.node if n.name == "fc1_bias"))
    calib, _, amax = _setup(model)
    res = correct_bias(model, amax, calib)
    assert "bias Add" in res.skipped["fc1"] and set(res.shifts) == {"fc2"}


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_gemm_beta(beta):
    model = M.gemm_model()
    from onnx import helper

    gemm1 = next(n for n in model.graph.node if n.name == "gemm1")
    gemm1.attribute.append(helper.make_attribute("beta", beta))
    calib, held, amax = _setup(model, 32)
    res = correct_bias(model, amax, calib)
    if beta == 0.0:
        assert "beta=0" in res.skipped["gemm1"]
    else:
        again = correct_bias(res.model, amax, calib, reference=model)
        assert np.abs(again.shifts["gemm1"]).max() < 0.05 * np.abs(res.shifts["gemm1"]).max()
