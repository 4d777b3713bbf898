"""Lanes: a call's rows cut into parts run at once on one-thread sessions give the outputs of
one call on a session with every thread, bit for bit; what cannot be cut runs whole."""
import numpy as np
import pytest

import realistic_models as R
from workbench.backends.lanes import MIN_PART_ROWS, Lanes, cut_rows, lane_count, ort_lanes, row_count
from workbench.backends.ort import OrtSessionLoader
from workbench.graph.model import ModelInfo


def test_cut_rows_never_leaves_a_single_row_cut_from_more():
    assert cut_rows(16, 2) == [slice(0, 8), slice(8, 16)]
    assert cut_rows(7, 2) == [slice(0, 3), slice(3, 7)]
    assert cut_rows(3, 2) == [slice(0, 3)]  # 2 + 1 would leave a one-row part
    assert cut_rows(1, 4) == [slice(0, 1)]
    assert cut_rows(9, 4) == [slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 9)]
    for n in range(1, 40):
        for parts in range(1, 6):
            cuts = cut_rows(n, parts)
            assert [i for c in cuts for i in range(c.start, c.stop)] == list(range(n))
            assert len(cuts) == 1 or min(c.stop - c.start for c in cuts) >= MIN_PART_ROWS


def test_row_count_and_lane_count():
    assert row_count({"a": np.zeros((4, 2)), "b": np.zeros((4,))}) == 4
    assert row_count({"a": np.zeros((4, 2)), "b": np.zeros((3,))}) is None
    assert row_count({"a": np.zeros((4, 2)), "s": np.float32(1)}) is None
    assert lane_count(3) == 3 and lane_count(None) >= 1


@pytest.mark.parametrize("kind", ["classifier", "detector", "recognizer", "transformer", "orientation"])
def test_parts_at_once_equal_one_call(kind):
    """The judged model kinds (depthwise convs, transposed convs, opset-12 Constant weights, a
    transformer's mean pooling over int64 token rows): 2 and 3 lanes equal one call, including
    batches whose cut would leave one row (3 rows run whole; 7 rows in 2 and 3 lanes: 3+4, 2+2+3)."""
    spec = R.MODELS[kind]
    model = ModelInfo(spec.build())
    names = [o.name for o in model.outputs]
    for n in (3, 7):
        rows = spec.data(n, seed=1)
        feed = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
        whole = OrtSessionLoader(model.model)().run(names, feed)
        for count in (2, 3):
            lanes = ort_lanes(model.model, count)
            assert lanes.count == count
            got = lanes.run(names, feed)
            assert all(np.array_equal(a, b) for a, b in zip(got, whole)), (kind, n, count)
            if n >= 2 * MIN_PART_ROWS:  # cut into parts on the one-thread session
                assert lanes._narrow is not None and lanes._wide is None
            else:  # too few rows to cut: whole, on a session with every thread
                assert lanes._wide is not None and lanes._narrow is None


class _Session:
    """A stand-in session: counts calls and rows; its output ``y`` may drop the row axis."""

    def __init__(self, threads, keep_rows=True):
        self.threads, self.keep_rows, self.calls = threads, keep_rows, []

    def run(self, names, feed):
        self.calls.append(len(feed["x"]))
        x = feed["x"]
        return [x * 2 if self.keep_rows else np.array([x.sum()])]


def test_a_call_that_cannot_be_cut_runs_whole_and_no_second_session_is_built_for_it():
    made = []

    def make(threads, keep_rows=True):
        made.append(_Session(threads, keep_rows))
        return made[-1]

    x = np.arange(6, dtype=np.float32)
    lanes = Lanes(make, 2)
    assert np.array_equal(lanes.run(["y"], {"x": x})[0], 2 * x)
    assert [s.threads for s in made] == [1] and made[0].calls == [3, 3]
    assert np.array_equal(lanes.run(["y"], {"x": x[:1]})[0], 2 * x[:1])  # one row: whole, on the session there is
    assert [s.threads for s in made] == [1] and made[0].calls == [3, 3, 1]
    made.clear()
    first = Lanes(make, 2)  # the first call cannot be cut: whole, with every thread
    first.run(["y"], {"x": x[:3]})
    first.run(["y"], {"x": x})
    assert [(s.threads, s.calls) for s in made] == [(2, [3]), (1, [3, 3])]
    # an output without the rows on axis 0: the call is run again whole, and so is every later one
    made.clear()
    odd = Lanes(lambda t: make(t, keep_rows=False), 2)
    assert odd.run(["y"], {"x": x})[0][0] == x.sum() and not odd.splits
    odd.run(["y"], {"x": x})
    assert [(s.threads, s.calls) for s in made] == [(1, [3, 3, 6, 6])]


def test_the_cli_exit_does_not_take_the_lane_threads_for_lingering_user_threads(monkeypatch, capsys):
    """The lanes' pool threads are idle between runs; the CLI stops them before it looks for
    threads a user's loader left running (which make it exit hard, with a note)."""
    import threading

    from workbench import cli
    from workbench.backends.lanes import run_at_once

    assert run_at_once(lambda x: x * 2, [1, 2, 3], 2) == [2, 4, 6]
    assert any(t.name.startswith("workbench-lane") for t in threading.enumerate())
    exits = []
    monkeypatch.setattr("os._exit", exits.append)
    cli._exit_without_lingering_threads(0)
    assert exits == [] and "still running" not in capsys.readouterr().err
    assert not any(t.name.startswith("workbench-lane") and t.is_alive() for t in threading.enumerate())
    assert run_at_once(lambda x: x + 1, [1, 2], 2) == [2, 3]  # a later run starts new ones


def test_cores_counts_a_core_once_whatever_its_hardware_threads(monkeypatch):
    """Four CPUs that are two cores with two hardware threads each: two lanes (ONNX Runtime's
    default thread count too); a CPU without topology counts as its own core."""
    import os
    from pathlib import Path

    from workbench.backends import lanes as L

    siblings = {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"}

    def read_text(self, *a, **k):
        cpu = int(self.parts[-3][3:])
        if cpu not in siblings:
            raise OSError("no topology")
        return siblings[cpu] + "\n"

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(Path, "read_text", read_text)
    assert L.cores() == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    assert L.cores() == 2  # cpu 0 and 2 are one core; cpu 5 has no topology
