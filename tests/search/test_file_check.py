"""Searches score what they write: autoprec's claim is the written TensorRT file's, measured with
exact ONNX semantics on every evaluation sample, with the figure on the samples it did not choose on."""
import numpy as np
import onnxruntime as ort
import pytest

import tiny_models
from workbench.calib.collect import collect_statistics
from workbench.calib.ranges import compute_ranges
from workbench.data import open_data
from workbench.evaluate.evaluator import Evaluator
from workbench.evaluate.metrics import Target, compare_outputs
from workbench.export import export_result
from workbench.graph.model import ModelInfo
from workbench.precision.plan import PrecisionPlan
from workbench.search import file_check
from workbench.search.sensitivity import auto_mixed_precision


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(4)
    for i in range(30):
        np.save(folder / f"{i:02d}.npy", rng.standard_normal((3, 16, 16)).astype(np.float32))
    info = ModelInfo(tiny_models.small_cnn(size=16))
    data = open_data(folder, info)
    ranges = compute_ranges(collect_statistics(info, data, progress=False), "minmax")
    ranges = ranges.with_overrides({"r1": ranges["r1"].amax * 30})
    return info, Evaluator(info, data), ranges, data


def _exact(path, feed):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(None, feed)[0]


def test_selection_split_keeps_every_third_sample_out():
    assert file_check.selection_split(20) is None  # 6 would be kept out: too few to report on
    chosen, unseen = file_check.selection_split(30)
    assert list(unseen) == list(range(2, 30, 3)) and len(chosen) == 20
    assert not set(chosen) & set(unseen)


def test_autoprec_claim_is_the_written_file(setup, tmp_path):
    info, ev, ranges, data = setup
    plan = PrecisionPlan.default(info)
    base = ev.evaluate(plan, ranges, per_layer=False, variant="trt").summary()["sqnr_db"]
    target = f"sqnr>={base + 6:.2f}"
    res = auto_mixed_precision(ev, ranges, plan, target)
    assert res.search_samples == 20 and res.unseen_samples == 10
    # the written file, run independently with exact semantics on every evaluation sample
    written = export_result(info, ranges, res.plan, tmp_path / "auto", kinds=("qdq",))
    x = np.concatenate([b["input"] for b in data.iter_batches(8)])
    got = _exact(written["qdq"].onnx_path, {"input": x})
    ref = ev.reference["logits"]
    summary = compare_outputs(ref, got)
    assert res.file.summary["sqnr_db"] == pytest.approx(summary["sqnr_db"], abs=1e-9)
    assert res.met == Target(target).met(summary) and res.met
    unseen = compare_outputs(ref[2::3], got[2::3])
    assert res.file.unseen["sqnr_db"] == pytest.approx(unseen["sqnr_db"], abs=1e-9)
    last = res.curve.iloc[-1]
    assert last["chosen"] and last["measured_on"].startswith("written file, all 30 samples")
    assert "Written TensorRT file" in res.describe() and "did not choose on" in res.describe()


def test_the_search_goes_on_while_the_file_misses(setup, monkeypatch):
    """When the file misses what the emulation met, more nodes leave INT8, each step judged on the
    file again; and when no plan meets, it says so."""
    info, ev, ranges, _ = setup
    plan = PrecisionPlan.default(info)
    real = file_check.check_file
    calls = []

    def strict(evaluator, ranges_, plan_, target, split=None, emulated=None):
        check = real(evaluator, ranges_, plan_, target, split)
        calls.append(len(plan_.fp16_nodes()))
        check.met = len(calls) >= 3  # the first two files "miss"
        return check

    monkeypatch.setattr(file_check, "check_file", strict)
    res = auto_mixed_precision(ev, ranges, plan, "sqnr>=-100")
    assert res.emulated_met and res.met
    assert calls == sorted(calls) and calls[1] == calls[0] + 1 and calls[2] == calls[1] + 2  # 1, then 2 more
    assert len(res.fallback) == calls[-1]
    assert sum("missed" in n for n in res.notes) == 2
    assert (res.curve["measured_on"].str.startswith("written file")).sum() == 3

    monkeypatch.setattr(file_check, "check_file", lambda *a, **k: _never(real, *a))
    res = auto_mixed_precision(ev, ranges, plan, "sqnr>=-100")
    assert not res.met and len(res.fallback) == len(plan.int8_nodes())
    assert "misses" in res.notes[-1]


def _never(real, *args):
    check = real(*args[:4])
    check.met = False
    return check
