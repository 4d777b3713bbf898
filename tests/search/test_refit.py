"""Ranges chosen on held-out calibration samples are read from every calibration sample.

Without evaluation data, ``auto`` chooses each tensor's candidate with statistics from three
quarters of the calibration samples and judges on the rest; the chosen candidate (its label:
a method, a percentile, min-max scaled) is then read from the statistics continued over the
held-out samples, so a large value seen only in a held-out sample still sets its range.
"""
import numpy as np
import pytest

import realistic_models as R
from workbench.calib.collect import collect_statistics
from workbench.calib.ranges import compute_ranges
from workbench.calib.stats import Statistics
from workbench.evaluate.evaluator import Evaluator
from workbench.evaluate.metrics import sqnr_db
from workbench.export import build_quantized
from workbench.graph.model import ModelInfo
from workbench.precision.plan import PrecisionPlan
from workbench.search.calibration import calibrate, hold_out
from workbench.search.candidates import amax_of_label, candidates, refit


@pytest.fixture(scope="module")
def detector():
    spec = R.MODELS["detector"]
    info = ModelInfo(spec.build())
    return spec, info, R.ArrayData(info, spec.data(32, seed=1))


def test_continued_statistics_equal_one_collection_and_survive_a_file(detector, tmp_path):
    _, info, data = detector
    h = hold_out(data)
    part = collect_statistics(info, h.histogram_data, progress=False)
    whole = collect_statistics(info, h.judge_data, extend=part, whole=data, progress=False)
    once = collect_statistics(info, data, progress=False)
    assert whole.num_samples == once.num_samples == 32 and whole.data_fingerprint == data.fingerprint()
    for name, c in once.collectors.items():
        w = whole.collectors[name]
        assert np.array_equal(w.hist, c.hist) and (w.min, w.max, w.count) == (c.min, c.max, c.count)
    # continuing copies: the statistics it started from are unchanged
    assert part.num_samples == 24 and part.collectors["enc1"].count * 4 == once.collectors["enc1"].count * 3
    part.extended = whole
    part.save(tmp_path / "s.npz")
    back = Statistics.load(tmp_path / "s.npz", info.fingerprint(), h.histogram_data.fingerprint())
    assert back.extended is not None and back.extended.num_samples == 32
    assert np.array_equal(back.extended.collectors["enc1"].hist, once.collectors["enc1"].hist)


def test_labels_read_from_other_statistics(detector):
    _, info, data = detector
    stats = collect_statistics(info, data, progress=False)
    c = stats.collectors["enc1"]
    by = compute_ranges(stats).tensors["enc1"].amax_by_method
    for label, amax in candidates(c, by, "mse").items():  # every candidate reads back as itself
        if "=" in label:  # merged names (within 1 %): the largest of them
            assert amax <= amax_of_label(c, by, label) <= amax * 1.0101
        else:
            assert amax_of_label(c, by, label) == pytest.approx(amax, rel=1e-12)
    assert amax_of_label(c, by, "minmax*0.5") == pytest.approx(by["minmax"] * 0.5)
    assert amax_of_label(c, by, "percentile@99.99") == pytest.approx(c.compute_amax("percentile", percentile=99.99))
    assert amax_of_label(c, by, "mse=minmax") == max(by["mse"], by["minmax"])
    assert amax_of_label(c, by, "manual") is None


def test_auto_without_evaluation_data_reads_its_choice_from_every_sample(detector):
    spec, info, data = detector
    res = calibrate(info, data)
    assert not res.holdout.from_evaluation_data and res.holdout.judge_data.num_samples() == 8
    full = res.stats.extended
    assert full is not None and full.num_samples == 32 and res.ranges.num_samples == 32
    assert res.ranges.search["refit"]["samples"] == 32
    by_full = compute_ranges(full)
    for name, r in res.ranges.tensors.items():
        expected = amax_of_label(full.collectors[name], by_full[name].amax_by_method, r.chosen)
        assert r.amax == pytest.approx(expected, rel=1e-9), name
    # the detector's largest text response of 'enc1' sits in a held-out sample: read from every
    # sample, min-max keeps it (the statistics of the others alone would clip it)
    part_max = res.stats.collectors["enc1"].absmax
    assert full.collectors["enc1"].absmax > 1.2 * part_max
    assert "minmax" in res.ranges["enc1"].chosen.split("=") and res.ranges["enc1"].amax >= full.collectors["enc1"].absmax


def test_the_refit_gains_on_unseen_pages(detector):
    """On 32 pages the search never saw, the refit ranges beat the ranges read from the three
    quarters alone (the detector: 14.7 dB -> 27 dB before this change was measured)."""
    spec, info, data = detector
    res = calibrate(info, data)
    ev = Evaluator(info, R.ArrayData(info, spec.data(32, seed=3)))
    name = ev.output_names[0]
    plan = PrecisionPlan.default(info)
    split_only = res.ranges.with_amax({t: r.amax for t, r in refit(res.ranges, res.stats).tensors.items()})

    def db(ranges):
        return sqnr_db(ev.reference[name], ev.run(build_quantized(info, ranges, plan, variant="trt"))[name])

    assert db(res.ranges) > db(split_only) + 3.0
