"""Progress of the steps layer by layer, and a cancel between layers that keeps the steps
finished before it (a partial result that says so)."""
import threading

import improve_models as M
from workbench.improve import apply_steps


def test_progress_counts_layers_up_to_a_fixed_total():
    model = M.depthwise_model("relu")
    calib, held, amax = M.calib_holdout(model)
    calls = []
    res = apply_steps(model, amax, calib, holdout=held, steps=["equalize", "rounding", "bias_correction"],
                      progress=lambda done, total: calls.append((done, total)))
    totals = {t for _, t in calls}
    assert len(totals) == 1
    total = totals.pop()
    layers = len(res.rows[1].layers)  # the three convolutions
    assert total == 1 + (layers + 1) * 2  # equalize's measurement; each layer + a measurement per step
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and dones[-1] == total and dones[0] == 0
    assert len(calls) >= 2 * layers + 3  # one report per layer, not one per step
    assert not res.cancelled


def test_cancel_between_layers_keeps_the_finished_steps():
    model = M.depthwise_model("relu")
    calib, held, amax = M.calib_holdout(model)
    full = apply_steps(model, amax, calib, holdout=held, steps=["equalize"])
    assert full.applied() == ["equalize"]
    stop = threading.Event()
    seen = []

    def progress(done, total):
        seen.append(done)
        if done == 2:  # equalize done (1 unit), the first layer of rounding solved
            stop.set()

    res = apply_steps(model, amax, calib, holdout=held, steps=["equalize", "rounding", "bias_correction"],
                      progress=progress, cancel=stop)
    assert res.cancelled and res.applied() == ["equalize"]
    eq, rnd, bias = res.rows
    assert rnd.reason.startswith("cancelled while it ran") and not rnd.applied and rnd.sqnr_after is None
    assert bias.reason == "cancelled before it ran" and bias.seconds == 0
    assert max(seen) == 2  # nothing ran after the cancel
    # the partial result is the finished step's: same model and ranges as equalize alone
    assert res.amax == full.amax
    assert res.model.SerializeToString() == full.model.SerializeToString()
    assert "cancelled: partial result" in res.table()
