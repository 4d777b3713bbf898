"""Shared helpers of the reliability battery (tests/reliability/test_*.py).

Each CLI case checks the exit status and the message, that every input file's sha256 is
unchanged, and that nothing partial remains (no new file beside the expected ones, no staging
folder, no lock file, no empty folder). Import the ``ws`` fixture by name from here.
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

REPO = Path(__file__).resolve().parents[2]


def sha_tree(root: Path) -> dict:
    """relative path -> sha256 of every file under ``root`` (hidden ones included)."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def entries(root: Path) -> set:
    """Every file and folder under ``root`` (relative), to spot leftovers."""
    return {str(p.relative_to(root)) for p in Path(root).rglob("*")}


def leftovers(root: Path) -> list:
    """Staging folders and lock files of the result writer left anywhere under ``root``."""
    return [str(p) for p in Path(root).rglob("*") if ".wb-tmp-" in p.name or p.name.endswith(".wb-lock")]


@pytest.fixture
def ws(tmp_path):
    """A workspace: tiny model, a .npy data folder, and the state to compare against."""
    model = Path(tiny_models.save(tiny_models.small_cnn(size=16), tmp_path / "m.onnx"))
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        np.save(data / f"{i}.npy", rng.standard_normal((3, 16, 16)).astype(np.float32))
    return Workspace(tmp_path, model, data)


class Workspace:
    def __init__(self, root, model, data):
        self.root, self.model, self.data = root, model, data
        self.snap()

    def snap(self):
        """Remember every file (inputs and earlier outputs) as it is now."""
        self.before = sha_tree(self.root)
        self.listing = entries(self.root)

    def unchanged(self, new=()):
        """Every file is byte-identical; the only new entries are ``new``; no leftovers."""
        assert leftovers(self.root) == []
        after = sha_tree(self.root)
        for rel, digest in self.before.items():
            assert after.get(rel) == digest, f"{rel} changed or disappeared"
        assert entries(self.root) - self.listing == set(new)

    def calibrate(self, *extra, out="cal"):
        return main(["calibrate", str(self.model), "--data", str(self.data), "-q", "-o",
                     str(self.root / out), *extra])


def run_cli(*args, timeout=300, **kw):
    """``python -m workbench.cli ARGS`` in a separate process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO, **kw)


def err_of(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


LOADER_WAITS = """
import time
from pathlib import Path
import numpy as np

def load_data():
    Path({started!r}).write_text("x")
    while not Path({go!r}).exists():
        time.sleep(0.05)
    rng = np.random.default_rng({seed})
    for _ in range(3):
        yield {{"input": rng.standard_normal((2, 3, 16, 16)).astype(np.float32)}}
"""


def _no_collection(monkeypatch):
    from workbench.calib import collect

    def refuse(*a, **k):
        raise AssertionError("the arguments should have been refused before any collection")

    monkeypatch.setattr(collect, "collect_statistics", refuse)


def _photos(folder: Path, n=3, size=(24, 20)):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def _mount(args, target) -> str | None:
    """Run ``mount`` (root only); the reason when it cannot."""
    if os.geteuid() != 0:
        return "mounting needs root"
    r = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    return None if r.returncode == 0 else f"mount failed: {r.stderr.strip()}"


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "full"
    mnt.mkdir()
    reason = _mount(["-t", "tmpfs", "-o", "size=256k", "tmpfs"], mnt)
    if reason:
        pytest.skip(f"no small tmpfs for the disk-full case: {reason}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])


@pytest.fixture
def read_only_dir(tmp_path):
    src, ro = tmp_path / "ro_src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    (src / "keep.txt").write_text("existing\n")
    reason = _mount(["--bind", str(src)], ro)
    if reason is None:
        reason = _mount(["-o", "remount,bind,ro"], ro)
        if reason:
            subprocess.run(["umount", "-l", str(ro)])
    if reason:
        if os.geteuid() != 0:  # chmod works for ordinary users (root ignores it)
            os.chmod(src, 0o555)
            yield src
            os.chmod(src, 0o755)
            return
        pytest.skip(f"no read-only folder: {reason}")
    yield ro
    subprocess.run(["umount", "-l", str(ro)])
