"""File-system failures and concurrent writers: one message naming the user's path, nothing left.

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


def test_a_second_writer_to_the_same_output_is_refused(ws, capsys):
    script = ws.root / "slow.py"
    started, go = ws.root / "started", ws.root / "go"
    script.write_text(LOADER_WAITS.format(started=str(started), go=str(go), seed=1))
    out = ws.root / "cal"
    first = subprocess.Popen([sys.executable, "-m", "workbench.cli", "calibrate", str(ws.model),
                              "--data-loader-script", str(script), "-q", "-o", str(out)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while not started.exists():
            assert first.poll() is None, first.communicate()
            assert time.time() < deadline
            time.sleep(0.05)
        # the first run holds the lock while its loader runs: the second is refused at once
        assert ws.calibrate() == 2
        err = err_of(capsys)
        assert "is being written by another workbench run" in err and f"process {first.pid}" in err
        go.write_text("go")
        stdout, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr
    cache = json.loads((out / "calibration.cache.json").read_text())
    stats_fp = json.loads((out / "ranges.json").read_text())["data_fingerprint"]
    assert cache["data_fingerprint"] == stats_fp  # one run's files, not a mix
    assert leftovers(ws.root) == []


def test_a_stale_lock_of_a_dead_process_is_taken_over(ws):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    import socket

    (ws.root / ".cal.wb-lock").write_text(json.dumps({"pid": int(dead), "host": socket.gethostname()}))
    (ws.root / f".wb-tmp-{dead}-abc").mkdir()  # its staging folder
    assert ws.calibrate() == 0
    assert leftovers(ws.root) == []


def test_disk_full_is_one_message_and_leaves_nothing(ws, small_tmpfs, capsys):
    assert ws.calibrate() == 0
    ranges = str(ws.root / "cal" / "ranges.json")
    # fill the tmpfs so that the result's first file fits and a later one does not
    (small_tmpfs / "old.onnx").write_bytes(b"earlier result")
    free = os.statvfs(small_tmpfs).f_bavail * os.statvfs(small_tmpfs).f_frsize
    q_size = len(onnx.load(str(ws.model)).SerializeToString())
    with open(small_tmpfs / "filler", "wb") as fh:
        fh.write(b"\0" * max(0, free - 2 * q_size))
    ws.snap()
    code = main(["quantize", str(ws.model), "--data", str(ws.data), "--ranges", ranges, "-o", str(small_tmpfs / "q.onnx")])
    err = err_of(capsys)
    assert code == 2 and "no space left on the device" in err and "q." in err and "Nothing was written" in err
    ws.unchanged()
    code = main(["calibrate", str(ws.model), "--data", str(ws.data), "-q", "-o", str(small_tmpfs / "cal")])
    assert code == 2 and "no space left" in err_of(capsys)
    ws.unchanged()


def test_read_only_folder_is_one_message(ws, read_only_dir, capsys):
    ws.snap()
    code = ws.calibrate(out=str(read_only_dir / "cal"))
    assert code == 2 and ("read-only" in err_of(capsys))
    code = main(["quantize", str(ws.model), "--data", str(ws.data), "-q", "-o", str(read_only_dir / "q.onnx")])
    assert code == 2 and "read-only" in err_of(capsys)
    from workbench.session import Session

    s = Session(ws.model, ws.data, batch_size=2)
    s.calibrate()
    with pytest.raises(WorkbenchError, match="read-only"):
        s.export("qdq", path=read_only_dir / "s.onnx")
    ws.unchanged()


def test_parent_of_the_output_is_a_file(ws, capsys):
    (ws.root / "afile").write_text("x")
    ws.snap()
    assert ws.calibrate(out="afile/cal") == 2
    assert "is a file, not a folder" in err_of(capsys)
    assert main(["quantize", str(ws.model), "--data", str(ws.data), "-o", str(ws.root / "afile" / "q.onnx")]) == 2
    assert "is a file, not a folder" in err_of(capsys)
    assert ws.calibrate(out="afile") == 2
    assert "not a folder" in err_of(capsys)
    ws.unchanged()


