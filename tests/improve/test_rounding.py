"""Weight rounding: int8 symmetric per-channel weights with unchanged scales, a lower layer
error than round-to-nearest, and a held-out gain on the seeded models."""
import itertools

import numpy as np
import pytest
from onnx import numpy_helper

import improve_models as M
from workbench.improve import round_weights, solve_rounding
from workbench.improve.adapter import build_qdq


def _weights(qdq) -> dict:
    """FP32 weight name -> (int8 values, scales, zero points, axis) of every weight DQ."""
    inits = {i.name: numpy_helper.to_array(i) for i in qdq.graph.initializer}
    out = {}
    for n in qdq.graph.node:
        if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None and inits[n.input[0]].dtype == np.int8:
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            out[n.output[0]] = (inits[n.input[0]], inits[n.input[1]], inits[n.input[2]], axis)
    return out


def _data(model, size):
    data = M.batches(model, 12, size=size)
    return data[:8], data[8:]


@pytest.mark.parametrize("make,size", [(M.gemm_model, 64), (M.constant_weights_model, 4), (M.depthwise_model, 4)])
def test_rounding_keeps_int8_grid_and_scales(make, size):
    model = make()
    calib, _ = _data(model, size)
    amax = M.minmax_amax(model, calib)
    res = round_weights(model, amax, calib)
    before, after = _weights(build_qdq(model, amax)), _weights(build_qdq(res.model, amax))
    assert before.keys() == after.keys() and len(before) >= 2
    flipped = 0
    for name, (q0, s0, z0, axis) in before.items():
        q1, s1, z1, axis1 = after[name]
        assert q1.dtype == np.int8 and axis1 == axis
        assert np.array_equal(s1, s0), f"scales of {name} changed"
        assert not z1.any() and np.abs(q1).max() <= 127
        assert np.array_equal(np.abs(q1).max(axis=tuple(i for i in range(q1.ndim) if i != axis)),
                              np.full(s0.shape, 127))  # symmetric: each channel still reaches 127
        assert np.all(np.abs(q1.astype(int) - q0.astype(int)) <= 1)  # floor or ceil of w/s
        flipped += int(np.sum(q1 != q0))
    assert flipped > 0
    assert flipped == sum(r.flipped for r in res.layers)


def test_rounding_never_worse_per_layer_on_calibration_rows():
    model = M.gemm_model()
    calib, _ = _data(model, 64)
    amax = M.minmax_amax(model, calib)
    res = round_weights(model, amax, calib)
    assert [r.node for r in res.layers] == ["gemm1", "gemm2"]
    for r in res.layers:
        assert r.output_sqnr >= r.output_sqnr_nearest - 1e-9
    assert max(r.output_sqnr - r.output_sqnr_nearest for r in res.layers) > 1.0


@pytest.mark.parametrize("make,size,margin", [(M.gemm_model, 64, 1.0), (M.constant_weights_model, 4, 1.0)])
def test_rounding_gains_held_out(make, size, margin):
    model = make()
    calib, held = _data(model, size)
    amax = M.minmax_amax(model, calib)
    base = M.qdq_sqnr(model, amax, held)
    after = M.qdq_sqnr(round_weights(model, amax, calib).model, amax, held, reference=model)
    assert after > base + margin, (base, after)


def test_solver_reaches_a_local_minimum_of_the_exact_error():
    rng = np.random.default_rng(3)
    xq = rng.normal(size=(2, 60, 12)) + 2.0 * rng.normal(size=(2, 60, 1))  # correlated inputs
    xf = xq + rng.normal(size=xq.shape) * 0.05
    w = rng.normal(size=(2, 12, 3))
    s = np.abs(w).max(axis=1, keepdims=True) / 127 * 30  # coarse grid so rounding matters
    ratio = w / s
    q0 = np.clip(np.rint(ratio), -127, 127)
    q = solve_rounding(xq, xf, w, s, q0, sweeps=10, damping=0.0)

    def err(qq, g, c):
        return float(np.sum((xq[g] @ (qq[g, :, c] * s[g, 0, c]) - xf[g] @ w[g, :, c]) ** 2))

    improved = 0
    for g, c in itertools.product(range(2), range(3)):
        assert set(np.unique(q[g, :, c] - np.floor(ratio[g, :, c]))) <= {0, 1}
        e = err(q, g, c)
        improved += e < err(q0, g, c) - 1e-12
        peak = np.abs(q0[g, :, c]).argmax()
        for j in range(12):  # no single allowed flip lowers the error
            if j == peak:
                continue
            alt = q.copy()
            alt[g, j, c] = np.ceil(ratio[g, j, c]) if q[g, j, c] == np.floor(ratio[g, j, c]) else np.floor(ratio[g, j, c])
            assert err(alt, g, c) >= e - 1e-9
    assert improved >= 4


def test_rounding_skips_shared_weights_with_a_reason():
    model = M.gemm_model()
    gemm2 = model.graph.node[2]
    gemm2.input[:] = ["r", "w1"]  # gemm2 reads gemm1's weight, transB=0: w1 (64, 48) as [K=64, N=48]
    gemm2.attribute[0].i = 0
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 48
    calib, _ = _data(model, 16)
    amax = M.minmax_amax(model, calib)
    res = round_weights(model, amax, calib)
    assert not res.layers and set(res.skipped) == {"gemm1", "gemm2"}
    assert all("shared" in why for why in res.skipped.values())
