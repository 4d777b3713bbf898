"""Never a half-written result: the files of one result appear together or not at all, and a
re-run with overwrite leaves no file of the older result that it did not write.

Part of the reliability battery (issues 13 and 22); helpers in ``reliability_helpers``.
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

import tiny_models
from workbench.cli import main
from workbench.errors import WorkbenchError
from reliability_helpers import (LOADER_WAITS, REPO, Workspace, _mount, _no_collection, _photos, entries,  # noqa: F401
                                 err_of, leftovers, read_only_dir, run_cli, sha_tree, small_tmpfs, ws)


def test_quantize_checks_every_file_of_the_result_before_writing(ws, capsys):
    assert ws.calibrate() == 0
    ranges = str(ws.root / "cal" / "ranges.json")
    (ws.root / "y.plan.json").write_text("my notes\n")  # only a sidecar of the result exists
    ws.snap()
    code = main(["quantize", str(ws.model), "--data", str(ws.data), "--ranges", ranges, "-o", str(ws.root / "y.onnx")])
    assert code == 2 and "y.plan.json already exists" in err_of(capsys)
    ws.unchanged()  # no y.onnx, no y.ort.onnx, no cache, the notes untouched
    # with --overwrite the whole result is replaced and consistent
    assert main(["quantize", str(ws.model), "--data", str(ws.data), "--ranges", ranges, "-o", str(ws.root / "y.onnx"),
                 "--overwrite"]) == 0
    plan = json.loads((ws.root / "y.plan.json").read_text())
    assert plan["model_fingerprint"] and (ws.root / "y.ort.onnx").exists()
    side = json.loads((ws.root / "y.calib.cache.json").read_text())
    assert side["exported_model"].endswith("y.onnx")
    assert leftovers(ws.root) == []


def test_interrupt_or_failure_between_files_leaves_nothing(ws, capsys, monkeypatch):
    from workbench.calib import ranges as ranges_mod

    def boom(self, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(ranges_mod.Ranges, "write_csv", boom)
    assert ws.calibrate() == 130
    assert "interrupted" in capsys.readouterr().err
    ws.unchanged()  # not even the output folder
    # an existing result stays as it was when the replacement fails half-way
    monkeypatch.undo()
    assert ws.calibrate() == 0
    ws.snap()

    def fail(self, path):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(ranges_mod.Ranges, "write_csv", fail)
    assert ws.calibrate("--overwrite", "--method", "minmax") == 2
    assert "no space left on the device" in err_of(capsys)
    ws.unchanged()


def test_sigint_in_a_separate_process_leaves_nothing(ws):
    script = ws.root / "slow.py"
    started, go = ws.root / "started", ws.root / "go"
    script.write_text(LOADER_WAITS.format(started=str(started), go=str(go), seed=1))
    ws.snap()
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "calibrate", str(ws.model),
                             "--data-loader-script", str(script), "-q", "-o", str(ws.root / "out" / "cal")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not started.exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err
    ws.unchanged(new={"started"})  # no 'out' folder, no staging, no lock


def test_failed_runs_leave_no_empty_output_folders(ws, capsys):
    code = main(["calibrate", str(ws.root / "missing.onnx"), "--data", str(ws.data), "-o",
                 str(ws.root / "new" / "deep" / "out")])
    assert code == 2 and "missing.onnx' does not exist" in err_of(capsys)
    code = main(["quantize", str(ws.model), "--data", str(ws.root / "nodata"), "-o", str(ws.root / "new" / "q.onnx")])
    assert code == 2 and "does not exist" in err_of(capsys)
    ws.unchanged()


def test_session_save_is_one_result(ws, monkeypatch):
    from workbench.calib import stats as stats_mod
    from workbench.session import Session

    s = Session(ws.model, ws.data, batch_size=2)
    s.calibrate()
    ws.snap()

    def fail(self, path):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(stats_mod.Statistics, "save", fail)
    with pytest.raises(WorkbenchError, match="no space left"):
        s.save(ws.root / "proj")
    assert s.project is None
    ws.unchanged()  # no half project folder
    with pytest.raises(WorkbenchError, match="inside the data folder"):
        s.save(ws.data / "proj")
    ws.unchanged()


def test_result_writer_commit_rollback_and_declarations(tmp_path):
    from workbench._io import atomic_write_text
    from workbench.errors import InternalError
    from workbench.outputs.writer import ResultWriter

    out = tmp_path / "a" / "b"
    files = [out / "x.txt", out / "y.txt"]
    with ResultWriter(files) as r:
        for f in files:
            atomic_write_text(r.path(f), f.name)
        assert not out.exists()  # nothing visible before the commit
    assert [f.read_text() for f in files] == ["x.txt", "y.txt"]
    with pytest.raises(InternalError, match="declared but not written"):
        with ResultWriter(files, overwrite=True) as r:
            atomic_write_text(r.path(files[0]), "new")
    with pytest.raises(InternalError, match="not a declared output"):
        with ResultWriter(files[:1], overwrite=True) as r:
            r.path(files[1])
    with ResultWriter(files[:1], overwrite=True, optional=[files[1]]) as r:
        atomic_write_text(r.path(files[0]), "only x")
    assert files[0].read_text() == "only x" and not files[1].exists()  # the older y is no part of it
    assert leftovers(tmp_path) == []


def test_html_report_in_a_fresh_project_is_one_result(ws):
    pytest.importorskip("plotly")
    from workbench.session import Session
    from workbench.ui.report import export_report

    s = Session(ws.model, ws.data, batch_size=2, method="minmax", project=ws.root / "proj")
    s.calibrate()
    s.rebuild()
    report = export_report(s)
    exports = ws.root / "proj" / "exports"
    written = sorted(p.name for p in exports.iterdir())
    assert report.exists() and any(n.startswith("plotly") and n.endswith(".js") for n in written)
    assert len(written) == 2, written  # the report and plotly.js, nothing else
    assert leftovers(ws.root) == []


def test_a_report_failing_after_plotly_js_leaves_neither_file(ws, monkeypatch):
    pytest.importorskip("plotly")
    from workbench.session import Session
    from workbench.ui import report as report_mod

    s = Session(ws.model, ws.data, batch_size=2, method="minmax", project=ws.root / "proj")
    s.calibrate()
    ws.snap()
    real, calls = report_mod.atomic_write_text, []

    def second_write_fails(path, text):
        calls.append(path)
        if len(calls) == 2:  # plotly.js is staged, the report itself fails
            raise OSError(28, "No space left on device", str(path))
        return real(path, text)

    monkeypatch.setattr(report_mod, "atomic_write_text", second_write_fails)
    with pytest.raises(WorkbenchError, match="no space left") as err:
        report_mod.export_report(s)
    assert len(calls) == 2 and ".wb-tmp-" not in str(err.value)
    exports = ws.root / "proj" / "exports"
    assert not exports.exists() or not any(exports.iterdir())  # no plotly-*.js left behind
    assert leftovers(ws.root) == []


def test_overwrite_removes_a_stale_explanation(ws, capsys):
    assert ws.calibrate("--explain", "--method", "minmax") == 0
    assert (ws.root / "cal" / "ranges_explain.csv").exists()
    assert ws.calibrate("--overwrite", "--method", "minmax") == 0
    assert not (ws.root / "cal" / "ranges_explain.csv").exists()  # not part of the new result
    assert leftovers(ws.root) == []


def test_overwrite_removes_stale_twins_and_a_dead_runs_lock(ws, capsys):
    import socket

    base = ["quantize", str(ws.model), "--data", str(ws.data), "--method", "minmax", "--no-eval", "-q",
            "-o", str(ws.root / "q.onnx")]
    assert main([*base, "--cpu-uint8"]) == 0
    assert (ws.root / "q.cpu_uint8.onnx").exists() and (ws.root / "q.ort.onnx").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (ws.root / ".q.cpu_uint8.onnx.wb-lock").write_text(json.dumps({"pid": int(dead), "host": socket.gethostname()}))
    assert main([*base, "--overwrite", "--no-eval-variant"]) == 0
    assert (ws.root / "q.onnx").exists() and (ws.root / "q.plan.json").exists()
    assert not (ws.root / "q.cpu_uint8.onnx").exists() and not (ws.root / "q.ort.onnx").exists()
    assert leftovers(ws.root) == []
    # without --overwrite, an older twin of the same stem is an existing file of the result
    assert main([*base[:-1], str(ws.root / "q2.onnx"), "--cpu-uint8", "--no-eval-variant"]) == 0
    capsys.readouterr()
    ws.snap()
    assert main(["quantize", str(ws.model), "--data", str(ws.data), "--method", "minmax", "--no-eval", "-q",
                 "--no-eval-variant", "-o", str(ws.root / "q2.onnx")]) == 2
    assert "q2.cpu_uint8.onnx" in err_of(capsys)
    ws.unchanged()


def test_export_result_with_overwrite_removes_twins_it_does_not_write(ws):
    from workbench import ModelInfo, PrecisionPlan, collect_statistics, compute_ranges, open_data
    from workbench.export import export_result

    model = ModelInfo.from_path(ws.model)
    ranges = compute_ranges(collect_statistics(model, open_data(ws.data, model), progress=False), "minmax")
    plan = PrecisionPlan.default(model)
    export_result(model, ranges, plan, ws.root / "r", kinds=("qdq", "ort", "cpu_uint8"))
    export_result(model, ranges, plan, ws.root / "r", kinds=("qdq",), overwrite=True)
    assert sorted(p.name for p in ws.root.glob("r.*")) == ["r.calib.cache", "r.calib.cache.json", "r.onnx",
                                                           "r.plan.json"]


def test_overwrite_removes_every_older_file_of_the_stem_but_inputs(ws, capsys):
    """An older result's curve (autoprec) and Model Explorer overlays (the app) under the same stem
    are not part of a new quantize result: removed with --overwrite, named without it. A file that
    only starts like the stem, and an input that carries a stem file's name, are never touched."""
    base = ["quantize", str(ws.model), "--data", str(ws.data), "--method", "minmax", "--no-eval", "-q"]
    assert main([*base, "-o", str(ws.root / "q.onnx")]) == 0
    (ws.root / "q.curve.csv").write_text("n_fallback,top1\n0,1.0\n")
    (ws.root / "q.explorer.sqnr.json").write_text("{}")
    (ws.root / "q.notes.txt").write_text("mine")  # not a name of the result
    capsys.readouterr()
    ws.snap()
    assert main([*base, "-o", str(ws.root / "q.onnx")]) == 2
    err = err_of(capsys)
    assert "q.curve.csv" in err and "q.explorer.sqnr.json" in err
    ws.unchanged()
    assert main([*base, "-o", str(ws.root / "q.onnx"), "--overwrite"]) == 0
    assert not (ws.root / "q.curve.csv").exists() and not (ws.root / "q.explorer.sqnr.json").exists()
    assert (ws.root / "q.notes.txt").read_text() == "mine" and (ws.root / "q.onnx").exists()
    # an input named like a file of the stem (the ranges file q.ranges.json) stays
    import shutil

    assert main(["calibrate", str(ws.model), "--data", str(ws.data), "--method", "minmax", "-q",
                 "-o", str(ws.root / "cal")]) == 0
    shutil.copy(ws.root / "cal" / "ranges.json", ws.root / "q.ranges.json")
    assert main(["quantize", str(ws.model), "--data", str(ws.data), "--ranges", str(ws.root / "q.ranges.json"),
                 "--no-eval", "-q", "-o", str(ws.root / "q.onnx"), "--overwrite"]) == 0
    assert (ws.root / "q.ranges.json").exists()
    assert leftovers(ws.root) == []
