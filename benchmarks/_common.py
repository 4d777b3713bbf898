"""Shared helpers of the benchmark scripts: sample files, memory readings, child processes, tables.

Benchmarks are not tests: they print figures as ratios against a baseline measured in the same
run, because the machines they run on are shared and absolute seconds drift.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SAMPLE_MODEL = REPO / "sample_data" / "efficientnet_lite0.onnx"
CALIB_DIR = REPO / "sample_data" / "calib"
EVAL_DIR = REPO / "sample_data" / "eval"
PRESET = "efficientnet-lite"
BATCH_SIZE = 8

# Deterministic variations used to make more samples than photos: (dx, dy, horizontal flip).
# dx/dy shift the 224x224 crop from the centre of the 256-short-side image (the short side has
# exactly 16 px of margin each way, so every offset fits). Variation 0 is the plain preset.
VARIATIONS = (
    (0, 0, False), (0, 0, True), (-16, 0, False), (16, 0, True), (0, -16, False),
    (0, 16, True), (-16, -16, True), (16, 16, False), (-16, 16, False), (16, -16, True),
    (-8, 8, True), (8, -8, False),
)


def photo_files() -> list:
    """The 64 calibration photos then the 41 evaluation photos, each group sorted by path."""
    from workbench.data import IMAGE_EXTENSIONS

    files = []
    for folder in (CALIB_DIR, EVAL_DIR):
        files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    return files


def _resized(path: Path, short_side: int) -> np.ndarray:
    """Decode ``path`` as RGB and resize its short side to ``short_side`` (bilinear), uint8 HWC.

    Mirrors ``workbench.data.ImageFolderData.load_image`` so variation 0 equals the preset's output.
    """
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        s = short_side / min(w, h)
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
        return np.asarray(img)


def _variation(resized: np.ndarray, crop: int, dx: int, dy: int, flip: bool, pre) -> np.ndarray:
    """One [3, crop, crop] float32 sample: shifted crop, optional flip, the preset's normalisation."""
    h, w = resized.shape[:2]
    left = min(max((w - crop) // 2 + dx, 0), w - crop)
    top = min(max((h - crop) // 2 + dy, 0), h - crop)
    arr = resized[top:top + crop, left:left + crop].astype(np.float32)
    if flip:
        arr = arr[:, ::-1]
    mean = np.asarray(pre.mean, np.float32)
    std = np.asarray(pre.std, np.float32)
    arr = (arr * np.float32(pre.scale) - mean) / std
    return np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)


def make_samples(out_dir: Path, count: int, model=None) -> list:
    """Write ``count`` preprocessed samples ``s0000.npy``... to ``out_dir``; return their paths.

    Sample i is photo ``i % 105`` with variation ``i // 105`` (see ``VARIATIONS``), so every set of
    the first N samples is fixed and the photos are decoded once. Checks that variation 0 of the
    first photo equals what ``workbench.data`` makes of it with the same preset.
    """
    from workbench.data import PRESETS, ImageFolderData

    pre = PRESETS[PRESET]
    photos = photo_files()
    if count > len(photos) * len(VARIATIONS):
        raise ValueError(f"at most {len(photos) * len(VARIATIONS)} samples can be made, asked {count}")
    out_dir.mkdir(parents=True, exist_ok=True)
    resized = [_resized(p, pre.resize) for p in photos[: min(count, len(photos))]]
    paths = []
    for i in range(count):
        dx, dy, flip = VARIATIONS[i // len(photos)]
        path = out_dir / f"s{i:04d}.npy"
        if not path.exists():
            np.save(path, _variation(resized[i % len(photos)], pre.crop, dx, dy, flip, pre))
        paths.append(path)
    if model is not None:
        ref = ImageFolderData(CALIB_DIR, model, preprocess=pre).load_image(photos[0])
        if not np.array_equal(ref, np.load(paths[0])):
            raise AssertionError("benchmark preprocessing differs from workbench.data's")
    return paths


def link_subset(paths: list, n: int, out_dir: Path) -> Path:
    """A folder holding symlinks to the first ``n`` sample files (so a data source sees only those)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in paths[:n]:
        link = out_dir / p.name
        if not link.exists():
            link.symlink_to(p)
    return out_dir


def npy_batches(folder: Path, batch_size: int = BATCH_SIZE, input_name: str = "input"):
    """Batches ``{input_name: [B,3,224,224]}`` from the sorted .npy files of ``folder``."""
    files = sorted(folder.glob("*.npy"))
    for i in range(0, len(files), batch_size):
        yield {input_name: np.stack([np.load(f) for f in files[i:i + batch_size]])}


def make_ort_reader(batches_fn):
    """An ``onnxruntime.quantization.CalibrationDataReader`` over ``batches_fn()`` (a batch iterator)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(batches_fn())

        def get_next(self):
            return next(self._it, None)

        def rewind(self):
            self._it = iter(batches_fn())

    return Reader()


# -- memory -----------------------------------------------------------------------------------
def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    """Resident memory of this process now (VmRSS)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def mem_available_gb() -> float:
    """MemAvailable of the machine in GiB (what other processes could still get)."""
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024.0 ** 2
    return float("nan")


def limit_address_space(gb: float) -> None:
    """Cap this process's virtual memory so a runaway allocation fails instead of exhausting RAM."""
    limit = int(gb * 1024 ** 3)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def is_out_of_memory(exc: BaseException) -> bool:
    """True for numpy's MemoryError and ONNX Runtime's failed-allocation errors."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("bad_alloc", "failed to allocate", "out of memory", "cannot allocate"))


# -- child processes --------------------------------------------------------------------------
def run_child(script: Path, args: list, out_json: Path, timeout: float) -> dict:
    """Run ``python script *args`` (which writes ``out_json``) and return its result dict.

    A child killed by a signal or a timeout, or one that wrote nothing, gives a dict with
    ``error`` saying so; the parent never crashes because a contender did.
    """
    if out_json.exists():
        out_json.unlink()
    cmd = [sys.executable, str(script), *map(str, args), "--out", str(out_json)]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - started
    if out_json.exists():
        result = json.loads(out_json.read_text())
        result.setdefault("process_seconds", wall)
        return result
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
    return {"error": f"child {how}: {' | '.join(tail)}"}


# -- output -----------------------------------------------------------------------------------
def machine_line() -> str:
    """One line describing the machine the numbers come from."""
    import onnxruntime

    gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3
    return (f"{os.cpu_count()} CPUs, {gib:.0f} GiB RAM, {platform.processor() or platform.machine()}, "
            f"Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}")


def fmt(value, digits: int = 3) -> str:
    """A table cell: floats rounded, None/NaN as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.3g}"
    return str(value)


def print_table(rows: list, columns: list, title: str = "", digits: int = 3) -> None:
    """Print ``rows`` (dicts) as an aligned text table with the given ``columns``."""
    cells = [[fmt(r.get(c), digits) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    if title:
        print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def check_line(name: str, ok: bool | None, detail: str) -> dict:
    """Print one goal check as PASS / FAIL / N/A with its numbers; return it as a dict."""
    status = "N/A" if ok is None else ("PASS" if ok else "FAIL")
    print(f"[{status}] {name}: {detail}")
    return {"goal": name, "status": status, "detail": detail}


def write_json(path, data: dict) -> None:
    """Write ``data`` as indented JSON (numpy scalars converted)."""
    def default(o):
        if isinstance(o, (np.integer,)):
            return int(o)
        if isinstance(o, (np.floating,)):
            return float(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
        return str(o)

    from workbench.outputs.writer import write_text_result

    # through the output guard: never over the sample model or photos, atomic, locked
    write_text_result(path, json.dumps(data, indent=1, default=default), overwrite=True, what="benchmark JSON",
                      inputs=[("the sample model", SAMPLE_MODEL), ("the sample photos", CALIB_DIR),
                              ("the sample photos", EVAL_DIR)])
    print(f"\nwrote {path}")
