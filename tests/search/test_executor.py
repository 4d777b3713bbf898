"""One executor interface for a sweep's independent evaluations: results are the same whichever
runs them (here, local worker processes, a dask cluster), the model and samples reach a worker
once, and an evaluation whose worker died runs again and is named."""
import os

import numpy as np
import pytest

import tiny_models
from workbench.calib.collect import collect_statistics
from workbench.calib.ranges import compute_ranges
from workbench.data import open_data
from workbench.errors import Cancelled, WorkbenchError
from workbench.evaluate.evaluator import Evaluator
from workbench.graph.model import ModelInfo
from workbench.precision.plan import PrecisionPlan
from workbench.search import executor as ex
from workbench.search.scoring import PlanScorer
from workbench.search.sensitivity import sensitivity


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for i in range(12):
        np.save(folder / f"{i:02d}.npy", rng.standard_normal((3, 16, 16)).astype(np.float32))
    info = ModelInfo(tiny_models.small_cnn(size=16))
    data = open_data(folder, info)
    ranges = compute_ranges(collect_statistics(info, data, progress=False), "minmax")
    ranges = ranges.with_overrides({"r1": ranges["r1"].amax * 30})
    return info, Evaluator(info, data), ranges


def _columns(table):
    return table[["node", "sqnr_only_int8", "sqnr_gain_fp16", "rank"]].to_dict("records")


def _configs(scorer, plan, n):
    """``n`` distinct flag feeds: the plan with one INT8 tensor's scale varied."""
    base = scorer.flags(plan)
    out = []
    for i in range(n):
        flags = dict(base)
        flags["wb_scale"] = base["wb_scale"] * np.float32(1 + 0.05 * i)
        out.append(flags)
    return out


def test_local_processes_rank_like_in_process(setup):
    info, ev, ranges = setup
    plan = PrecisionPlan.default(info)
    here = sensitivity(ev, ranges, plan, samples=None)
    with ex.LocalProcesses(2) as pool:
        there = sensitivity(ev, ranges, plan, samples=None, executor=pool)
        assert len(pool._files) == 1  # model and samples written once for every task of the sweep
    assert _columns(there) == _columns(here)
    assert there.attrs["evaluations"] == here.attrs["evaluations"]


def test_a_dead_worker_reruns_its_evaluations_and_says_which(setup):
    info, ev, ranges = setup
    plan = PrecisionPlan.default(info)
    scorer = PlanScorer(ev, ranges, None, plan)
    configs = _configs(scorer, plan, 24)
    want = [r["sqnr_db"] for r in scorer.score_many(configs)]
    with ex.LocalProcesses(2, threads=1) as pool:
        remote = PlanScorer(ev, ranges, None, plan, executor=pool)
        killed = []

        def kill_one(i, row):
            if not killed:
                pid = next(iter(pool._pool._processes))
                os.kill(pid, 9)
                killed.append(pid)

        got = remote.score_many(configs, on_row=kill_one, labels=[f"config {i}" for i in range(24)])
        assert [r["sqnr_db"] for r in got] == want
        assert pool.reruns and all("re-ran: a worker process died" in line for line in pool.reruns)
        assert any("config" in line for line in pool.reruns)


def test_cancel_and_bad_arguments(setup):
    info, ev, ranges = setup
    plan = PrecisionPlan.default(info)
    with ex.LocalProcesses(2, threads=1) as pool:
        scorer = PlanScorer(ev, ranges, None, plan, executor=pool)
        with pytest.raises(Cancelled):
            scorer.score_many(_configs(scorer, plan, 6), cancel=lambda: True)
    with pytest.raises(WorkbenchError, match="not both"):
        ex.make_executor(2, "tcp://127.0.0.1:1")
    with pytest.raises(WorkbenchError, match="at least 1"):
        ex.LocalProcesses(0)
    assert isinstance(ex.make_executor(None, None), ex.InProcess)


def test_dask_local_cluster_ranks_like_in_process(setup):
    distributed = pytest.importorskip("distributed")
    info, ev, ranges = setup
    plan = PrecisionPlan.default(info)
    here = sensitivity(ev, ranges, plan, samples=None)
    before = ex.BUILDS[0]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        dask_ex = ex.DaskExecutor(client, threads=1)
        there = sensitivity(ev, ranges, plan, samples=None, executor=dask_ex)
        assert dask_ex.workers == 2 and "dask scheduler" in dask_ex.describe()
    assert _columns(there) == _columns(here)
    # every worker of this (in-process) cluster shares one cache: one build for 2 * nodes + 0 tasks,
    # the model and samples were scattered once, not sent with each task
    assert ex.BUILDS[0] - before == 1
    assert there.attrs["evaluations"] > 2
