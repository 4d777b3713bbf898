"""Nothing user code does keeps a command alive or ends it without a message.

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


LOADERS = """
import sys
import numpy as np

def exits():
    sys.exit(3)

def exits_later():
    yield {"input": np.zeros((1, 3, 16, 16), np.float32)}
    sys.exit(4)

def endless():
    while True:
        yield {"input": np.ones((2, 3, 16, 16), np.float32)}

def many():
    for i in range(12):
        yield {"input": np.full((2, 3, 16, 16), i, np.float32)}
"""


def test_loaders_that_exit_or_never_end(ws, capsys, monkeypatch):
    script = ws.root / "loaders.py"
    script.write_text(LOADERS)
    ws.snap()
    r = run_cli("calibrate", ws.model, "--data-loader-script", f"{script}:exits", "-q", "-o", ws.root / "c")
    assert r.returncode == 2 and "called sys.exit(3)" in r.stderr and "loaders.py:exits" in r.stderr
    assert main(["calibrate", str(ws.model), "--data-loader-script", f"{script}:exits_later", "-q",
                 "-o", str(ws.root / "c")]) == 2
    assert "called sys.exit(4) at item 1" in err_of(capsys)
    ws.unchanged()
    from workbench.data import DataWarning, scripts

    monkeypatch.setattr(scripts, "LARGE_UNLIMITED", 10)
    with pytest.warns(DataWarning, match="has yielded 10 samples and no sample limit is set"):
        assert main(["calibrate", str(ws.model), "--data-loader-script", f"{script}:many", "-q",
                     "-o", str(ws.root / "c")]) == 0
    # an endless loader with --samples ends, without the notice
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        assert main(["calibrate", str(ws.model), "--data-loader-script", f"{script}:endless", "-q",
                     "--samples", "40", "-o", str(ws.root / "c2")]) == 0


THREAD_LOADER = """
import threading
import time
import numpy as np

def _prefetch_forever():
    while True:
        time.sleep(0.1)

def load_data():
    threading.Thread(target=_prefetch_forever, name="prefetch").start()  # not a daemon, never stops
    rng = np.random.default_rng(0)
    for _ in range(4):
        yield {"input": rng.standard_normal((2, 3, 16, 16)).astype(np.float32)}

def fails():
    threading.Thread(target=_prefetch_forever, name="prefetch").start()
    yield {"input": np.zeros((2, 3, 16, 16), np.float32)}
    raise ValueError("the camera went away")
"""


@pytest.mark.parametrize("func, code", [("load_data", 0), ("fails", 2)])
def test_a_loader_thread_does_not_keep_the_command_alive(ws, func, code):
    """The command ends (as the CLI, in its own process) when its work is done or refused,
    whatever threads a loader script left running, and says so."""
    script = ws.root / "threads.py"
    script.write_text(THREAD_LOADER)
    started = time.monotonic()
    r = run_cli("calibrate", ws.model, "--data-loader-script", f"{script}:{func}", "--method", "minmax", "-q",
                "-o", ws.root / "cal", timeout=120)  # hung forever before issue 22
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr and time.monotonic() - started < 120
    assert "still running; exiting without waiting for them" in r.stderr and "'prefetch'" in r.stderr
    if code == 2:
        assert "the camera went away" in r.stderr and "threads.py:fails" in r.stderr
        assert not (ws.root / "cal").exists()
    else:
        assert (ws.root / "cal" / "ranges.json").exists() and json.loads((ws.root / "cal" / "ranges.json").read_text())
    assert leftovers(ws.root) == []
