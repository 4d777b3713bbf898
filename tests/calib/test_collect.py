import threading
import warnings

import numpy as np
import onnx
import pytest

import tiny_models
from workbench.calib.collect import NonFiniteActivationWarning, collect_statistics, tensors_to_observe
from workbench.data import open_data
from workbench.errors import Cancelled, StaleError, WorkbenchError
from workbench.graph.model import ModelInfo
from workbench.calib.ranges import Ranges, compute_ranges
from workbench.calib.stats import Statistics


def _npy_folder(tmp_path, arrays, name="arr"):
    folder = tmp_path / name
    folder.mkdir()
    for i, a in enumerate(arrays):
        np.save(folder / f"s{i:03d}.npy", a)
    return folder


@pytest.fixture
def cnn():
    return ModelInfo(tiny_models.small_cnn(size=16))


def _samples(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((3, 16, 16)).astype(np.float32) for _ in range(n)]


def _intermediates(info, x):
    from workbench.backends.ort import OrtRunner

    names = [t for t in info.float_tensors() if t != "input"]
    return OrtRunner(info.model, output_names=names).activate().infer({"input": x})


def test_statistics_match_a_direct_computation(tmp_path, cnn):
    samples = _samples(10)
    data = open_data(_npy_folder(tmp_path, samples), cnn)
    stats = collect_statistics(cnn, data, batch_size=4, progress=False)
    assert stats.num_samples == 10
    # inputs of the default INT8 nodes (conv1, conv2, add, maxpool, gap, fc) plus the output
    assert set(stats.collectors) == {"input", "r1", "r2", "sum", "pool", "flat", "logits"}
    x = np.stack(samples)
    direct = _intermediates(cnn, x)
    direct["input"] = x
    for name, c in stats.collectors.items():
        assert c.min == pytest.approx(float(direct[name].min()), rel=1e-6)
        assert c.max == pytest.approx(float(direct[name].max()), rel=1e-6)
        assert int(c.hist.sum()) == direct[name].size
    # batch size must not change the statistics' counts or extrema
    again = collect_statistics(cnn, data, batch_size=3, progress=False)
    for name in stats.collectors:
        assert again.collectors[name].max == stats.collectors[name].max
        assert int(again.collectors[name].hist.sum()) == int(stats.collectors[name].hist.sum())


def test_tensor_selection(cnn):
    assert tensors_to_observe(cnn, "all") == cnn.float_tensors()
    res = ModelInfo(tiny_models.residual_cnn())
    # Clip can run INT8 but is not INT8 by default: its input a1 is observed only on request
    assert "a1" in tensors_to_observe(res, "quantizable")
    assert "a1" not in tensors_to_observe(res, "default")
    with pytest.raises(WorkbenchError, match="not float activations"):
        tensors_to_observe(cnn, ["nope"])


def test_cancel_and_progress_callback(tmp_path, cnn):
    data = open_data(_npy_folder(tmp_path, _samples(12)), cnn)
    seen = []
    collect_statistics(cnn, data, batch_size=4, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(4, 12), (8, 12), (12, 12)]
    stop = threading.Event()
    calls = []

    def cb(done, total):
        calls.append(done)
        stop.set()

    with pytest.raises(Cancelled, match="after 4 samples"):
        collect_statistics(cnn, data, batch_size=4, progress=cb, cancel=stop)


def test_nan_activations_are_reported(tmp_path, cnn):
    samples = _samples(4)
    samples[2][0, 0, 0] = np.nan
    data = open_data(_npy_folder(tmp_path, samples), cnn)
    with pytest.warns(NonFiniteActivationWarning, match="'input' \\(1 NaN"):
        stats = collect_statistics(cnn, data, batch_size=2, progress=False)
    assert stats.collectors["input"].nan_count == 1
    ranges = compute_ranges(stats, "minmax")
    assert np.isfinite(ranges["input"].amax) and ranges["input"].amax > 0


def test_statistics_round_trip_and_staleness(tmp_path, cnn):
    data = open_data(_npy_folder(tmp_path, _samples(6)), cnn)
    stats = collect_statistics(cnn, data, progress=False)
    path = tmp_path / "stats.npz"
    stats.save(path)
    loaded = Statistics.load(path, cnn.fingerprint(), data.fingerprint())
    r1, r2 = compute_ranges(stats), compute_ranges(loaded)
    assert r1.amax() == r2.amax()
    other_model = ModelInfo(tiny_models.small_cnn(size=16, seed=3))
    with pytest.raises(StaleError, match="another model"):
        Statistics.load(path, other_model.fingerprint(), data.fingerprint())
    more = open_data(_npy_folder(tmp_path, _samples(7), name="more"), cnn)
    with pytest.raises(StaleError, match="other calibration data"):
        Statistics.load(path, cnn.fingerprint(), more.fingerprint())
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(WorkbenchError, match="junk.npz"):
        Statistics.load(tmp_path / "junk.npz")


def test_ranges_every_method_json_and_overrides(tmp_path, cnn):
    data = open_data(_npy_folder(tmp_path, _samples(6)), cnn)
    stats = collect_statistics(cnn, data, progress=False)
    ranges = compute_ranges(stats, "percentile", percentile=99.0)
    r = ranges["r1"]
    assert set(r.amax_by_method) == {"entropy", "entropy_zero_fix", "minmax", "percentile", "mse"}
    assert r.amax == r.amax_by_method["percentile"] and r.scale == pytest.approx(r.amax / 127)
    assert r.amax_by_method["minmax"] == pytest.approx(max(abs(r.min), abs(r.max)), rel=1e-3)
    assert r.amax < r.amax_by_method["minmax"] and r.clipped_fraction > 0
    back = Ranges.from_json(ranges.to_json())
    assert back.amax() == ranges.amax() and back.method == "percentile"
    assert ranges.with_method("minmax")["r1"].amax == r.amax_by_method["minmax"]
    over = ranges.with_overrides({"r1": 0.5})
    assert over["r1"].amax == 0.5 and over["r1"].override and ranges["r1"].amax != 0.5
    with pytest.raises(WorkbenchError, match="positive finite"):
        ranges.with_overrides({"r1": float("nan")})
    with pytest.raises(WorkbenchError, match="Unknown calibration method"):
        compute_ranges(stats, "kl")
    df = ranges.to_dataframe()
    assert list(df["tensor"]) == list(ranges.tensors) and "amax_mse" in df


def test_all_zero_tensor_gets_a_usable_scale(tmp_path):
    # A model whose Conv sees an all-zero tensor (input times zero)
    model = tiny_models.small_cnn(size=16)
    zero = onnx.numpy_helper.from_array(np.zeros((), np.float32), "zero")
    model.graph.initializer.append(zero)
    model.graph.node.insert(0, onnx.helper.make_node("Mul", ["input", "zero"], ["zeroed"], name="zero_mul"))
    model.graph.node[1].input[0] = "zeroed"
    info = ModelInfo(model)
    data = open_data(_npy_folder(tmp_path, _samples(3)), info)
    stats = collect_statistics(info, data, progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ranges = compute_ranges(stats)
    assert ranges["zeroed"].amax > 0 and np.isfinite(ranges["zeroed"].scale)
    assert any("zeroed" in str(w.message) for w in caught)


def test_opset11_constant_weights_and_two_input_int64(tmp_path):
    info = ModelInfo(tiny_models.small_cnn(size=16, opset=11, weights_as_constants=True))
    stats = collect_statistics(info, open_data(_npy_folder(tmp_path, _samples(3)), info), progress=False)
    assert "r1" in stats.collectors
    two = ModelInfo(tiny_models.two_input_matmul())
    folder = tmp_path / "npz"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        np.savez(folder / f"{i}.npz", input_ids=rng.integers(0, 32, (2, 5)), attention_mask=np.ones((2, 5), np.float32))
    stats = collect_statistics(two, open_data(folder, two), progress=False)
    assert "masked" in stats.collectors and "input_ids" not in stats.collectors


def test_histograms_and_amax_do_not_depend_on_the_batch_size(tmp_path, cnn):
    """ModelOpt's entropy scales change with the calibration batch size; ours must not."""
    samples = _samples(9, seed=4)
    samples[5] *= 3.0  # a later sample beyond the first one's range: the histogram extends
    data = open_data(_npy_folder(tmp_path, samples), cnn)
    runs = {bs: collect_statistics(cnn, data, batch_size=bs, progress=False) for bs in (1, 2, 4, 9)}
    for bs, stats in runs.items():
        for name, c in stats.collectors.items():
            ref = runs[1].collectors[name]
            assert c.bin_width == ref.bin_width and np.array_equal(c.hist, ref.hist), (bs, name)
    amax = {bs: compute_ranges(s, "entropy").amax() for bs, s in runs.items()}
    assert amax[1] == amax[2] == amax[4] == amax[9]
