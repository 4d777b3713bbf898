"""Never lose a user's file, never leave a half-written result, a clear message for every mistake.

Every case of issue 13, through the CLI (``workbench.cli.main``, and ``python -m workbench.cli``
where a separate process matters) and the Session. Each CLI case checks the exit status and
the message, that every input file's sha256 is unchanged, and that nothing partial remains
(no new file beside the expected ones, no staging folder, no lock file, no empty folder).
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


# --------------------------------------------------------------------------- helpers
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


# --------------------------------------------------------------------------- data loss
def test_evaluate_json_and_sensitivity_csv_never_replace_the_model(ws, capsys):
    cal = ws.calibrate()
    assert cal == 0
    assert main(["quantize", str(ws.model), "--data", str(ws.data), "--ranges", str(ws.root / "cal" / "ranges.json"),
                 "-o", str(ws.root / "q.onnx")]) == 0
    capsys.readouterr()
    ws.snap()
    code = main(["evaluate", str(ws.model), str(ws.root / "q.onnx"), "--data", str(ws.data),
                 "--json", str(ws.model), "--overwrite"])
    assert code == 2 and "Refusing to write" in err_of(capsys)
    code = main(["evaluate", str(ws.model), str(ws.root / "q.onnx"), "--data", str(ws.data),
                 "--json", str(ws.root / "q.onnx"), "--overwrite"])
    assert code == 2 and "the quantized model" in err_of(capsys)
    code = main(["sensitivity", str(ws.model), "--data", str(ws.data), "-q", "-o", str(ws.model), "--overwrite"])
    assert code == 2 and "the model" in err_of(capsys)
    # through a symlink and a hard link too
    (ws.root / "link.onnx").symlink_to(ws.model)
    os.link(ws.model, ws.root / "hard.onnx")
    ws.snap()
    for alias in ("link.onnx", "hard.onnx"):
        code = main(["sensitivity", str(ws.model), "--data", str(ws.data), "-q", "-o", str(ws.root / alias),
                     "--overwrite"])
        assert code == 2 and "Refusing to write" in err_of(capsys)
    ws.unchanged()


def test_session_exports_never_replace_an_input(ws):
    from workbench.session import Session

    s = Session(ws.model, ws.data, batch_size=2, project=ws.root / "proj")
    s.calibrate()
    ws.snap()
    for kind in ("ranges", "plan", "cache", "qdq"):
        with pytest.raises(WorkbenchError, match="Refusing to write"):
            s.export(kind, path=ws.model)
        with pytest.raises(WorkbenchError, match="inside the data folder"):
            s.export(kind, path=ws.data / f"x.{kind}")
    ws.unchanged()


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


def test_output_inside_the_data_folder_is_refused(ws, capsys):
    for out in ("data", "data/sub"):
        assert ws.calibrate(out=out) == 2
        assert "inside the data folder" in err_of(capsys)
    assert ws.calibrate("--overwrite", out="data") == 2
    assert "--overwrite never writes into an input" in err_of(capsys)
    ws.unchanged()
    assert ws.calibrate() == 0  # the data still reads


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


# --------------------------------------------------------------------------- file-system errors
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


# --------------------------------------------------------------------------- plain mistakes
def _no_collection(monkeypatch):
    from workbench.calib import collect

    def refuse(*a, **k):
        raise AssertionError("the arguments should have been refused before any collection")

    monkeypatch.setattr(collect, "collect_statistics", refuse)


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "--batch-size must be a positive whole number"),
    (["--batch-size", "-2"], "--batch-size must be a positive whole number"),
    (["--samples", "0"], "--samples must be a positive whole number"),
    (["--percentile", "0", "--method", "percentile"], "--percentile must be a number in (0, 100]"),
    (["--percentile", "150"], "--percentile must be a number in (0, 100]"),
])
def test_bad_numbers_are_refused_before_any_work(ws, capsys, monkeypatch, args, message):
    _no_collection(monkeypatch)
    assert ws.calibrate(*args) == 2
    assert message in err_of(capsys)
    ws.unchanged()


def test_search_numbers_are_refused_before_calibration(ws, capsys, monkeypatch):
    _no_collection(monkeypatch)
    base = [str(ws.model), "--data", str(ws.data), "-q"]
    assert main(["sensitivity", *base, "--sens-samples", "0", "-o", str(ws.root / "s.csv")]) == 2
    assert "--sens-samples must be a positive whole number" in err_of(capsys)
    assert main(["autoprec", *base, "--target", "top1>>0.9", "-o", str(ws.root / "a.onnx")]) == 2
    assert "top1>>0.9" in err_of(capsys)
    assert main(["autoprec", *base, "--latency-points", "-1", "-o", str(ws.root / "a.onnx")]) == 2
    assert "--latency-points" in err_of(capsys)
    ws.unchanged()


def _photos(folder: Path, n=3, size=(24, 20)):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_preprocessing_mistakes(ws, capsys, monkeypatch):
    _no_collection(monkeypatch)
    photos = _photos(ws.root / "photos")
    ws.snap()
    base = ["calibrate", str(ws.model), "--data", str(photos), "--crop", "16", "-q", "-o", str(ws.root / "c")]
    assert main([*base, "--mean", "1", "2"]) == 2
    assert "mean (--mean) has 2 values [1.0, 2.0], but the model input has 3 channel(s)" in err_of(capsys)
    assert main([*base, "--std", "0"]) == 2
    assert "--std) must not be 0" in err_of(capsys)
    assert main([*base, "--std", "1", "0", "1"]) == 2
    assert "must not be 0" in err_of(capsys)
    ws.unchanged()


def test_sixteen_bit_pngs_are_scaled_like_their_eight_bit_twins(ws, capsys):
    rng = np.random.default_rng(3)
    d8, d16 = ws.root / "g8", ws.root / "g16"
    d8.mkdir()
    d16.mkdir()
    for i in range(3):
        g = rng.integers(0, 256, (20, 24), dtype=np.uint8)
        Image.fromarray(g).save(d8 / f"{i}.png")
        Image.fromarray(g.astype(np.uint16) * 257).save(d16 / f"{i}.png")  # 16-bit grey, same picture
    assert Image.open(d16 / "0.png").mode.startswith("I;16")
    common = ["--crop", "16", "--resize", "0", "--method", "minmax", "-q", "--preset", "unit"]
    assert main(["calibrate", str(ws.model), "--data", str(d8), "-o", str(ws.root / "c8"), *common]) == 0
    assert main(["calibrate", str(ws.model), "--data", str(d16), "-o", str(ws.root / "c16"), *common]) == 0
    r8 = json.loads((ws.root / "c8" / "ranges.json").read_text())["tensors"]
    r16 = json.loads((ws.root / "c16" / "ranges.json").read_text())["tensors"]
    assert r8["input"]["max"] <= 1.0 and r16["input"]["max"] == pytest.approx(r8["input"]["max"], abs=1e-6)
    assert r16["logits"]["amax"] == pytest.approx(r8["logits"]["amax"], rel=1e-5)


def test_object_and_corrupt_npy_are_named(ws, capsys):
    bad = ws.root / "bad"
    bad.mkdir()
    np.save(bad / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    ws.snap()
    assert main(["calibrate", str(ws.model), "--data", str(bad), "-q", "-o", str(ws.root / "c")]) == 2
    err = err_of(capsys)
    assert "obj.npy" in err and "dtype=object" in err
    (bad / "obj.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    ws.snap()
    assert main(["calibrate", str(ws.model), "--data", str(bad), "-q", "-o", str(ws.root / "c")]) == 2
    err = err_of(capsys)
    assert "obj.npy" in err and "corrupt" in err
    ws.unchanged()


def test_all_nan_inputs_are_refused_unless_asked(ws, capsys):
    nan = ws.root / "nan"
    nan.mkdir()
    np.save(nan / "a.npy", np.full((2, 3, 16, 16), np.nan, np.float32))
    ws.snap()
    assert main(["calibrate", str(ws.model), "--data", str(nan), "-q", "-o", str(ws.root / "c")]) == 2
    assert "a.npy[0]: input 'input' is all NaN" in err_of(capsys)
    ws.unchanged()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["calibrate", str(ws.model), "--data", str(nan), "-q", "-o", str(ws.root / "c"),
                     "--allow-nonfinite"]) == 0


def test_percentile_with_saved_ranges_is_refused(ws, capsys):
    assert ws.calibrate("--method", "percentile") == 0
    ranges = str(ws.root / "cal" / "ranges.json")
    ws.snap()
    code = main(["quantize", str(ws.model), "--data", str(ws.data), "--ranges", ranges, "--method", "percentile", "--percentile", "50",
                 "-o", str(ws.root / "q.onnx")])
    assert code == 2 and "--percentile 50 cannot be applied to --ranges" in err_of(capsys)
    ws.unchanged()


def test_plan_and_ranges_of_another_model_are_refused_with_an_override(ws, capsys):
    other = Path(tiny_models.save(tiny_models.small_cnn(size=16, seed=9), ws.root / "other.onnx"))
    assert main(["calibrate", str(other), "--data", str(ws.data), "-q", "-o", str(ws.root / "oc")]) == 0
    assert main(["quantize", str(other), "--data", str(ws.data), "--ranges", str(ws.root / "oc" / "ranges.json"),
                 "-o", str(ws.root / "o.onnx")]) == 0
    capsys.readouterr()
    ws.snap()
    base = ["quantize", str(ws.model), "--data", str(ws.data), "-q", "-o", str(ws.root / "q.onnx")]
    assert main([*base, "--plan", str(ws.root / "o.plan.json")]) == 2
    assert "was made for another model" in err_of(capsys)
    assert main(["quantize", str(ws.model), "--data", str(ws.data), "--ranges", str(ws.root / "oc" / "ranges.json"),
                 "-o", str(ws.root / "q.onnx")]) == 2
    assert "calibrated for another model" in err_of(capsys)
    ws.unchanged()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main([*base, "--plan", str(ws.root / "o.plan.json"), "--allow-other-model"]) == 0
    assert any("used anyway" in str(w.message) for w in seen)


def test_evaluate_against_the_wrong_fp32_model(ws, capsys):
    assert ws.calibrate() == 0
    assert main(["quantize", str(ws.model), "--data", str(ws.data), "--ranges", str(ws.root / "cal" / "ranges.json"),
                 "-o", str(ws.root / "q.onnx")]) == 0
    # same architecture, other weights: the exported model names its source
    other = Path(tiny_models.save(tiny_models.small_cnn(size=16, seed=9), ws.root / "other.onnx"))
    capsys.readouterr()
    assert main(["evaluate", str(other), str(ws.root / "q.onnx"), "--data", str(ws.data),
                 "--json", str(ws.root / "e.json")]) == 0
    err = capsys.readouterr().err
    assert "q.onnx' was exported from another model ('m.onnx'" in err and "other.onnx" in err
    assert json.loads((ws.root / "e.json").read_text())["warnings"]
    # a model whose output is named differently: a message, not KeyError: 'logits'
    renamed = onnx.load(str(ws.root / "q.onnx"))
    for node in renamed.graph.node:
        node.output[:] = ["scores" if o == "logits" else o for o in node.output]
    renamed.graph.output[0].name = "scores"
    onnx.save(renamed, str(ws.root / "renamed.onnx"))
    ws.snap()
    assert main(["evaluate", str(ws.model), str(ws.root / "renamed.onnx"), "--data", str(ws.data)]) == 2
    err = err_of(capsys)
    assert "different outputs: 'scores' vs 'logits'" in err and "m.onnx" in err
    ws.unchanged()


def test_evaluate_warns_on_very_low_agreement(ws, capsys):
    """A model of the same interface from elsewhere (no workbench metadata) agreeing poorly."""
    stranger = tiny_models.small_cnn(size=16, seed=5)
    onnx.save(stranger, str(ws.root / "stranger.onnx"))
    assert main(["evaluate", str(ws.model), str(ws.root / "stranger.onnx"), "--data", str(ws.data)]) == 0
    err = capsys.readouterr().err
    assert "agrees very little with the FP32 model" in err and "stranger.onnx" in err


def test_check_cache_without_provenance_cannot_vouch_for_the_weights(ws, capsys):
    assert ws.calibrate() == 0
    cache = ws.root / "cal" / "calibration.cache"
    (ws.root / "cal" / "calibration.cache.json").unlink()
    other = Path(tiny_models.save(tiny_models.small_cnn(size=16, seed=9), ws.root / "other.onnx"))
    capsys.readouterr()
    assert main(["check-cache", str(cache), str(other)]) == 1
    assert "cannot be checked" in capsys.readouterr().out


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


def test_huge_images_and_batches_are_bounded_with_a_hint(ws, capsys, monkeypatch):
    wide = ws.root / "wide"
    wide.mkdir()
    Image.fromarray(np.zeros((1, 6000, 3), np.uint8)).save(wide / "line.png")
    ws.snap()
    assert main(["calibrate", str(ws.model), "--data", str(wide), "--crop", "16", "-q", "-o", str(ws.root / "c")]) == 2
    err = err_of(capsys)
    assert "line.png' is 6000x1 pixels" in err and "--resize 0" in err
    from workbench.data import base

    monkeypatch.setattr(base, "available_memory", lambda: 20_000)  # a machine with 20 kB to spare
    assert ws.calibrate("--batch-size", "1000000") == 2
    err = err_of(capsys)
    assert "A batch of 6 samples (--batch-size 1000000) needs about" in err and "Use --batch-size 1" in err
    ws.unchanged()


def test_existing_qdq_refusal_names_the_cli_flag(ws, capsys):
    assert ws.calibrate() == 0
    assert main(["quantize", str(ws.model), "--data", str(ws.data), "--ranges", str(ws.root / "cal" / "ranges.json"),
                 "-o", str(ws.root / "q.onnx")]) == 0
    from workbench.export.build import build
    from workbench.graph.model import ModelInfo
    from workbench.precision.plan import PrecisionPlan
    from workbench.calib.ranges import Ranges

    q = ModelInfo.from_path(ws.root / "q.onnx")
    with pytest.raises(WorkbenchError, match="--allow-existing-qdq"):
        build(q, Ranges.load(ws.root / "cal" / "ranges.json"), PrecisionPlan.default(q))


# --------------------------------------------------------------------------- the Session
def test_session_rejections_never_stick(ws):
    from workbench.session import Session

    with pytest.raises(WorkbenchError, match="Session\\(model=...\\) must be a file or folder path"):
        Session(123)
    with pytest.raises(WorkbenchError, match="batch size"):
        Session(ws.model, ws.data, batch_size=0)
    s = Session(ws.model, ws.data, batch_size=2, method="minmax")
    with pytest.raises(WorkbenchError, match="num_samples must be a positive whole number"):
        s.calibrate(num_samples=0)
    assert s.data_settings.limit is None
    s.calibrate()  # works: the rejected value did not stick
    with pytest.raises(WorkbenchError, match="percentile"):
        s.set_method("percentile", 150)
    assert (s.calib_settings.method, s.calib_settings.percentile) == ("minmax", 99.99)
    assert s.rebuild().method == "minmax"
    with pytest.raises(WorkbenchError, match="batch size"):
        s.calibrate(batch_size=-1)
    assert s.calib_settings.batch_size == 2


def test_session_load_of_a_broken_project_names_the_file(ws):
    from workbench.session import Session

    proj = ws.root / "proj"
    proj.mkdir()
    (proj / "session.json").write_text("[1, 2]")
    with pytest.raises(WorkbenchError, match="session.json' holds a JSON list"):
        Session.load(proj)
    (proj / "session.json").write_text(json.dumps({"format": 1, "calibration": {}}))
    with pytest.raises(WorkbenchError, match="no 'data' settings"):
        Session.load(proj)
    (proj / "session.json").write_text(json.dumps({"format": 1, "data": {"sourse": "x"}, "calibration": {}}))
    with pytest.raises(WorkbenchError, match="unknown 'data' setting"):
        Session.load(proj)
    (proj / "session.json").write_text(json.dumps({"format": 1, "data": {}, "calibration": {"percentile": 150}}))
    with pytest.raises(WorkbenchError, match="session.json': The percentile"):
        Session.load(proj)


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


# --------------------------------------------------------------------------- the result writer itself
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


def test_metric_script_exit_and_unhandled_os_errors_are_one_line(ws, capsys, monkeypatch):
    script = ws.root / "metric.py"
    script.write_text("import sys\ndef metric(outputs, labels=None):\n    sys.exit(5)\n")
    ws.snap()
    code = main(["evaluate", str(ws.model), str(ws.model), "--data", str(ws.data), "--metric-script", str(script)])
    assert code == 2 and "metric.py' called sys.exit(5)" in err_of(capsys)
    from workbench.cli import qdq

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(qdq, "read_if_quantized", denied)
    assert main(["info", str(ws.model)]) == 2
    assert f"Cannot access '{ws.model}': permission denied." in err_of(capsys)
    ws.unchanged()
