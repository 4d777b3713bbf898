"""Where each tensor peaks, recorded by the calibration pass (``Statistics.peaks``).

A range search adds the calibration samples where the searched tensors peak to its held-out
samples. The statistics pass already sees every observed tensor of every sample, so it records
the peaks and :func:`extreme_samples` only reads those samples' feeds instead of running the
model again. These tests check that the recorded peaks pick the same samples as the scan, that
they survive save/load, that recording them leaves the histograms untouched, and that an
incomplete record falls back to the scan.
"""
import numpy as np
import pytest

import realistic_models as R
from workbench.backends.ort import OrtRunner
from workbench.calib.collect import collect_statistics
from workbench.calib.collector import HistogramCollector
from workbench.calib.stats import Statistics
from workbench.errors import WorkbenchError
from workbench.graph.model import ModelInfo
from workbench.search import holdout
from workbench.search.holdout import extreme_samples


def _setup(kind, n=11, tensors="all"):
    spec = R.MODELS[kind]
    info = ModelInfo(spec.build())
    data = R.ArrayData(info, spec.data(n, seed=3))
    # batch size 4: the first-sample split, full batches and a short last one
    stats = collect_statistics(info, data, tensors=tensors, batch_size=4, progress=False)
    return info, data, stats


def _same_feeds(a, b):
    return len(a) == len(b) and all(fa.keys() == fb.keys() and all(np.array_equal(fa[k], fb[k]) for k in fa)
                                    for fa, fb in zip(a, b))


def _reference_peaks(info, data, tensors):
    """tensor -> (max |x|, first sample holding it), from one plain run over all samples."""
    feeds = list(data.iter_batches(1000))
    assert len(feeds) == 1
    inputs = {s.name for s in info.inputs}
    fetch = [t for t in tensors if t not in inputs]
    values = dict(OrtRunner(info.model, output_names=fetch).activate().infer(feeds[0])) if fetch else {}
    values.update({t: feeds[0][t] for t in tensors if t in inputs})
    out = {}
    for t in tensors:
        v = np.abs(np.asarray(values[t], np.float64).reshape(len(next(iter(feeds[0].values()))), -1))
        v[~np.isfinite(v)] = 0
        row = v.max(axis=1)
        out[t] = (float(row.max()), int(np.argmax(row)))
    return out


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind", ["detector", "classifier"])
def test_samples_from_peaks_equal_the_scan(kind, monkeypatch):
    info, data, stats = _setup(kind)
    tensors = list(stats.collectors)
    assert set(stats.peaks) == set(tensors)  # every tensor of these models has a batch axis
    assert {s.name for s in info.inputs} & set(stats.peaks)  # graph inputs are recorded too
    ref = _reference_peaks(info, data, tensors)
    for t in tensors:
        assert stats.peaks[t][1] == ref[t][1], t
        assert stats.peaks[t][0] == pytest.approx(ref[t][0], rel=1e-5), t
    assert len({i for _, i in stats.peaks.values()}) > 1  # the vote has something to choose
    for most in (2, 8):
        scanned = extreme_samples(info, data, tensors, most=most, batch_size=3)
        assert scanned

        def no_model_run(*args, **kwargs):
            raise AssertionError("extreme_samples ran the model although peaks were given")

        with monkeypatch.context() as m:
            m.setattr("workbench.backends.ort.OrtRunner", no_model_run)
            chosen = extreme_samples(info, data, tensors, most=most, batch_size=3, peaks=stats.peaks)
        assert _same_feeds(chosen, scanned), (kind, most)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_extension_keeps_the_original_peaks():
    info, data, stats = _setup("classifier", n=6)
    more = R.ArrayData(info, R.MODELS["classifier"].data(5, seed=9))
    extended = collect_statistics(info, more, tensors="all", batch_size=4, progress=False, extend=stats)
    assert extended.peaks == stats.peaks


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_peaks_survive_save_and_load(tmp_path):
    info, data, stats = _setup("classifier", n=6)
    stats.extended = Statistics(stats.collectors, stats.model_fingerprint, "other", 9, peaks={"image": (2.5, 7)})
    stats.save(tmp_path / "s.npz")
    loaded = Statistics.load(tmp_path / "s.npz")
    assert stats.peaks and loaded.peaks == stats.peaks
    assert all(isinstance(a, float) and isinstance(i, int) for a, i in loaded.peaks.values())
    assert loaded.extended.peaks == {"image": (2.5, 7)}
    # statistics without peaks (as files written before they were recorded) load as None
    stats.peaks, stats.extended = None, None
    stats.save(tmp_path / "old.npz")
    assert Statistics.load(tmp_path / "old.npz").peaks is None


def _batches():
    rng = np.random.default_rng(5)
    first = rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    second = (rng.standard_normal((5, 3, 4, 4)) * 3).astype(np.float32)
    second[1, 0, 0, 0] = np.nan  # a row with a NaN among finite values
    second[3] = np.nan           # a row of NaN only
    second[4, 2, 1, 1] = -np.inf
    third = (rng.standard_normal((4, 3, 4, 4)) * 0.5).astype(np.float32)
    third[2] = 0.0
    return [first, second, third]


def test_rows_leave_the_statistics_unchanged():
    plain, by_rows = HistogramCollector(name="t"), HistogramCollector(name="t")
    for b in _batches():
        assert plain.collect(b) is None
        row_absmax = by_rows.collect(b, rows=len(b))
        v = np.abs(b.reshape(len(b), -1).astype(np.float64))
        v[~np.isfinite(v)] = 0
        assert row_absmax.dtype == np.float64 and np.array_equal(row_absmax, v.max(axis=1))
    assert np.array_equal(plain.hist, by_rows.hist)
    a, b = plain.to_arrays(), by_rows.to_arrays()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert plain.nan_count and plain.neginf_count  # the masked path ran
    amax_plain = plain.compute_all()
    assert len(amax_plain) > 1 and amax_plain == by_rows.compute_all()


def test_rows_that_do_not_match_give_no_peaks():
    c = HistogramCollector()
    assert c.collect(np.ones((3, 2), np.float32), rows=4) is None
    assert c.collect(np.float32(2.0), rows=1) is None
    assert np.array_equal(c.collect(np.zeros((2, 0), np.float32), rows=2), [0.0, 0.0])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_tensor_missing_from_peaks_falls_back_to_the_scan():
    info, data, stats = _setup("detector")
    tensors = list(stats.collectors)
    scanned = extreme_samples(info, data, tensors)
    # made-up peaks all at sample 0: used as such when complete ...
    fake = {t: (1.0, 0) for t in tensors}
    from_fake = extreme_samples(info, data, tensors, peaks=fake)
    assert _same_feeds(from_fake, [{k: v[:1] for k, v in next(data.iter_batches(1)).items()}])
    assert not _same_feeds(from_fake, scanned)
    # ... but with one tensor missing the scan decides
    del fake[tensors[-1]]
    assert _same_feeds(extreme_samples(info, data, tensors, peaks=fake), scanned)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_peaks_of_other_data_are_refused():
    info, data, stats = _setup("classifier", n=6)
    tensors = list(stats.collectors)
    with pytest.raises(WorkbenchError, match="other data"):
        extreme_samples(info, data, tensors, peaks={t: (1.0, 40) for t in tensors})
    assert holdout._most_voted([3, 1, 3, 2, 1, 5], 2) == [1, 3]
