"""Progress text (done/total, rate, ETA), the preview throttle, the task runner's Cancel."""
import threading
import time

import pytest

pytest.importorskip("ipywidgets")
from workbench.errors import Cancelled  # noqa: E402
from workbench.ui.style import fmt_num, fmt_pct, fmt_seconds  # noqa: E402
from workbench.ui.tasks import ProgressClock, TaskRunner, Throttle  # noqa: E402


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_progress_clock_rate_and_eta_exclude_set_up_time():
    clock = FakeClock()
    p = ProgressClock("nodes", clock=clock)
    clock.t += 30  # building the emulation model: before the first report
    p.update(1, 49)
    assert p.eta is not None  # one report: rate from the start, a rough ETA
    clock.t += 12
    p.update(7, 49)
    assert p.rate == pytest.approx(0.5)  # 6 nodes in 12 s, the 30 s of set-up left out
    assert p.eta == pytest.approx(84.0)
    assert p.text() == "7/49 nodes · 2 s each · about 1 min 24 s left · 42 s so far"
    p.update(49, 49)
    assert "left" not in p.text()


def test_progress_without_total_counts_only():
    p = ProgressClock("samples", clock=FakeClock())
    p.update(16)
    assert p.text().startswith("16 samples") and p.eta is None


def test_number_formats_for_people():
    assert fmt_num(2.380520135999973) == "2.381"
    assert fmt_num(None) == "–" and fmt_num(float("nan")) == "–" and fmt_num(float("inf")) == "∞"
    assert fmt_num(59.0) == "59" and fmt_num(0.00001234) == "1.234e-05"
    assert fmt_pct(0.0000652) == "0.00652 %" and fmt_pct(0) == "0 %" and fmt_pct(1e-9) == "< 0.001 %"
    assert fmt_seconds(185) == "3 min 05 s" and fmt_seconds(2.38) == "2.4 s"


def test_throttle_coalesces_values_and_settles_on_the_last():
    calls = []
    gate = threading.Event()

    def slow(value, final):
        calls.append((value, final))
        if not final:
            gate.wait(2)

    th = Throttle(slow, settle=0.05)
    for v in range(10):  # a drag: values arrive while the first call runs
        th(v)
    gate.set()
    th.wait()
    assert calls[0][1] is False  # a quick answer while dragging ...
    assert calls[-1] == (9, True)  # ... and the value the slider rests at, computed finely once more
    assert len(calls) <= 4  # intermediate values were dropped, not queued
    assert Throttle(lambda v, f: calls.append((v, f)), blocking=True)("x") is None and calls[-1] == ("x", True)


def test_a_task_in_stages_counts_each_stage():
    runner = TaskRunner(blocking=True)
    seen = []
    runner.status.observe(lambda ch: seen.append(ch["new"]), names="value")

    def work(progress, cancel):
        progress(64, 64)
        progress.phase("Choosing ranges", "runs")
        progress(3, 10)
    runner.run("Calibrating", work, unit="samples")
    assert any("Calibrating" in t and "64/64 samples" in t for t in seen)
    assert any("Choosing ranges" in t and "3/10 runs" in t for t in seen)
    assert runner.status.value.startswith("Calibrating: done")


def test_cancel_keeps_what_the_task_reports_and_shows_the_reason():
    runner = TaskRunner(blocking=False)
    kept = []

    def work(progress, cancel):
        for i in range(100):
            progress(i + 1, 100)
            if cancel.is_set():
                raise Cancelled(f"Stopped after {i + 1} of 100.")
            time.sleep(0.01)

    runner.run("Counting", work, unit="steps", on_cancel=lambda exc: kept.append(str(exc)))
    time.sleep(0.1)
    assert "steps" in runner.status.value and "/100" in runner.status.value
    runner.cancel()
    runner.wait(5)
    assert kept and kept[0].startswith("Stopped after") and "Stopped after" in runner.status.value
    assert runner.last_error is None and not runner.busy
