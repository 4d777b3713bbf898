"""Runner protocol (workbench/backends/base.py) and the ONNX Runtime backend (ort.py)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import tiny_models
from workbench.backends import LatencyStats, OrtRunner, Runner, TensorSpec, get_runner
from workbench.backends.base import batch_size_of, check_feed, onnx_input_specs
from workbench.errors import WorkbenchError


@pytest.fixture(scope="module")
def cnn():
    return tiny_models.small_cnn(seed=3)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(7).standard_normal((3, 3, 16, 16)).astype(np.float32)


def _conv3x3_pad1(x, w, b):
    """Reference Conv (stride 1, pad 1) in numpy, independent of ONNX Runtime."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = sliding_window_view(xp, (3, 3), axis=(2, 3))  # N, C, H, W, 3, 3
    return np.einsum("nchwij,ocij->nohw", win, w) + b[None, :, None, None]


def _weights(model):
    return {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}


def test_specs_and_outputs_come_from_the_model(cnn):
    runner = OrtRunner(cnn, threads=1)
    (spec,) = runner.input_specs
    assert spec.name == "input" and spec.dtype == np.float32
    assert spec.shape == ("N", 3, 16, 16)
    assert runner.output_names == ["logits"]


def test_intermediate_output_matches_numpy_reference(cnn, x):
    w = _weights(cnn)
    expected_r1 = np.maximum(_conv3x3_pad1(x, w["conv1.weight"], w["conv1.bias"]), 0)
    runner = OrtRunner(cnn, output_names=["r1", "logits"], threads=1)
    out = runner.infer({"input": x})
    assert list(out) == ["r1", "logits"]
    np.testing.assert_allclose(out["r1"], expected_r1, rtol=1e-4, atol=1e-5)
    assert out["logits"].shape == (3, 10)
    # the caller's ModelProto is not edited when extra outputs are added
    assert [o.name for o in cnn.graph.output] == ["logits"]


def test_path_bytes_and_proto_give_the_same_result(cnn, x, tmp_path):
    path = tiny_models.save(cnn, tmp_path / "cnn.onnx")
    results = [OrtRunner(m, threads=1).infer({"input": x})["logits"]
               for m in (path, cnn.SerializeToString(), cnn)]
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_batched_equals_per_sample(cnn, x):
    runner = get_runner(cnn, backend="ort", threads=1)
    batched = runner.infer({"input": x})["logits"]
    single = np.concatenate([runner.infer({"input": x[i:i + 1]})["logits"] for i in range(len(x))])
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("feed, message", [
    ({"images": "X"}, "requested input 'images', the model has: 'input'"),
    ({}, "missing input 'input'"),
    ({"input": "F64"}, "input 'input': expected dtype float32, got float64"),
    ({"input": "RANK3"}, "input 'input': expected rank 4"),
    ({"input": "C2"}, "input 'input': dimension 1 must be 3"),
])
def test_bad_feeds_name_the_tensor_and_expectation(cnn, x, feed, message):
    variants = {"X": x, "F64": x.astype(np.float64), "RANK3": x[0], "C2": x[:, :2]}
    feed = {k: variants[v] for k, v in feed.items()}
    runner = OrtRunner(cnn, threads=1)
    with pytest.raises(WorkbenchError) as err:
        runner.infer(feed)
    assert message in str(err.value)


def test_non_mapping_feed_is_rejected(cnn, x):
    with pytest.raises(WorkbenchError, match="must be a dict"):
        OrtRunner(cnn, threads=1).infer([x])


def test_two_inputs_with_int64_ids():
    runner = OrtRunner(tiny_models.two_input_matmul(), threads=1)
    specs = {s.name: s for s in runner.input_specs}
    assert specs["input_ids"].dtype == np.int64 and specs["attention_mask"].dtype == np.float32
    ids = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
    mask = np.ones((2, 3), np.float32)
    probs = runner.infer({"input_ids": ids, "attention_mask": mask})["probs"]
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    with pytest.raises(WorkbenchError, match="'input_ids': expected dtype int64, got int32"):
        runner.infer({"input_ids": ids.astype(np.int32), "attention_mask": mask})


def test_latency_stats(cnn, x):
    stats = OrtRunner(cnn, threads=1).measure_latency({"input": x}, warmup=1, repeat=7)
    assert stats.runs == 7 and stats.batch_size == 3 and stats.backend == "ort"
    assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms
    assert "not a proxy for TensorRT" in stats.note
    assert stats.per_sample_ms == pytest.approx(stats.median_ms / 3)


def test_latency_stats_from_known_times():
    stats = LatencyStats.from_times([i / 1000 for i in range(10, 0, -1)], batch_size=2, backend="x")
    # 1..10 ms: median 5.5, p90 by linear interpolation 9 + 0.1 * (10 - 9), mean 5.5, min 1
    assert stats.median_ms == pytest.approx(5.5)
    assert stats.p90_ms == pytest.approx(9.1)
    assert stats.mean_ms == pytest.approx(5.5) and stats.min_ms == pytest.approx(1.0)
    with pytest.raises(WorkbenchError):
        LatencyStats.from_times([], batch_size=1, backend="x")


class _CountingRunner(Runner):
    """A pure-Python runner: checks that the base class owns checks and timing."""

    backend = "fake"

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.activations = 0

    def _activate(self):
        self.activations += 1

    def _input_specs(self):
        return [TensorSpec("a", np.dtype(np.float32), (None, 2))]

    def _output_names(self):
        return ["b"]

    def _infer(self, feed):
        self.calls += 1
        return {"b": feed["a"] * 2}


def test_base_runner_times_warmup_plus_repeat_and_activates_once():
    runner = _CountingRunner()
    stats = runner.measure_latency({"a": np.ones((5, 2), np.float32)}, warmup=3, repeat=4)
    assert runner.calls == 7 and runner.activations == 1
    assert stats.runs == 4 and stats.batch_size == 5 and stats.backend == "fake"
    with pytest.raises(WorkbenchError, match="dimension 1 must be 2"):
        runner.infer({"a": np.ones((5, 3), np.float32)})
    with pytest.raises(WorkbenchError, match="repeat"):
        runner.measure_latency({"a": np.ones((1, 2), np.float32)}, repeat=0)
    assert runner.calls == 7  # rejected feeds never reach the backend


def test_check_feed_and_batch_size_helpers():
    specs = [TensorSpec("s", np.dtype(np.int64), ()), TensorSpec("v", np.dtype(np.float32), ("T", 4))]
    out = check_feed({"s": np.int64(3), "v": np.zeros((6, 4), np.float32)}, specs)
    assert batch_size_of(out) == 6
    assert batch_size_of({"s": np.int64(1)}) == 1


def test_onnx_input_specs_skip_initializers(tmp_path):
    model = tiny_models.small_cnn(batch=2)
    model.graph.input.extend([onnx.helper.make_tensor_value_info("fc.bias", onnx.TensorProto.FLOAT, [10])])
    specs = onnx_input_specs(model)
    assert [(s.name, s.shape) for s in specs] == [("input", (2, 3, 16, 16))]
    with pytest.raises(WorkbenchError, match="not found"):
        onnx_input_specs(tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(WorkbenchError, match="bad.onnx"):
        onnx_input_specs(tmp_path / "bad.onnx")


def test_loader_errors(tmp_path, cnn):
    with pytest.raises(WorkbenchError, match="missing.onnx"):
        OrtRunner(tmp_path / "missing.onnx").infer({})
    with pytest.raises(WorkbenchError, match="optimization level"):
        OrtRunner(cnn, optimization="fast")
    with pytest.raises(WorkbenchError, match="threads"):
        OrtRunner(cnn, threads=0)
    with pytest.raises(WorkbenchError, match="requested output 'nope'"):
        OrtRunner(cnn, output_names=["nope"]).input_specs
    with pytest.raises(WorkbenchError, match="Unknown backend 'cuda'"):
        get_runner(cnn, backend="cuda")


def test_context_manager_releases_session(cnn, x):
    with OrtRunner(cnn, threads=1) as runner:
        assert runner.session is not None
        runner.infer({"input": x})
    assert runner.session is None
