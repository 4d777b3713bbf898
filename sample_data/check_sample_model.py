"""Sanity-check the sample model on real photos: top-5 classes, ONNX Runtime vs torch, latency.

Needs only numpy, Pillow and onnxruntime; ``--torch`` also needs the ``sample``
extra (``pip install 'workbench[sample]'``)::

    python sample_data/check_sample_model.py                      # top-5 of cat, dog, koala
    python sample_data/check_sample_model.py --torch --latency 20 sample_data/eval/*.jpg

Preprocessing (the EfficientNet-Lite convention): RGB, resize the short side to
256 (bilinear), centre crop 224x224, ``(pixel - 127) / 128``, NCHW float32.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = HERE / "efficientnet_lite0.onnx"
DEFAULT_PHOTOS = ("animal_cat.jpg", "animal_dog.jpg", "animal_koala.jpg")
RESIZE_SHORT_SIDE = 256
CROP = 224
MEAN = 127.0
STD = 128.0


def preprocess(path: str | Path, resize: int = RESIZE_SHORT_SIDE, crop: int = CROP) -> np.ndarray:
    """Load an image file and return a float32 array of shape (3, crop, crop).

    Args:
        path: image file (any format Pillow reads; converted to RGB).
        resize: length of the short side after the bilinear resize (default 256).
        crop: side of the centre crop (default 224).
    """
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        width, height = image.size
        scale = resize / min(width, height)
        size = (max(resize, round(width * scale)), max(resize, round(height * scale)))
        image = image.resize(size, Image.BILINEAR)
    left = round((size[0] - crop) / 2)
    top = round((size[1] - crop) / 2)
    pixels = np.asarray(image.crop((left, top, left + crop, top + crop)), dtype=np.float32)
    return ((pixels - MEAN) / STD).transpose(2, 0, 1)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a (batch, classes) array."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _find_photo(name: str) -> Path:
    path = Path(name)
    if path.exists():
        return path
    for folder in ("calib", "eval"):
        if (HERE / folder / name).exists():
            return HERE / folder / name
    raise SystemExit(f"error: photo '{name}' not found (looked in ., {HERE / 'calib'}, {HERE / 'eval'})")


def _median_ms(session, feed: dict, runs: int) -> float:
    session.run(None, feed)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="*", default=list(DEFAULT_PHOTOS),
                        help="image files, or names inside sample_data/calib or eval (default: cat, dog, koala)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"ONNX model (default: {DEFAULT_MODEL})")
    parser.add_argument("--torch", action="store_true", help="also compare with the torch model (sample extra)")
    parser.add_argument("--latency", type=int, default=0, metavar="N",
                        help="also time N runs at batch 1 and 8 and print the median (default: 0, off)")
    parser.add_argument("--top", type=int, default=5, help="classes to print per photo (default: 5)")
    args = parser.parse_args(argv)

    import onnxruntime as ort

    classes = (HERE / "imagenet_classes.txt").read_text(encoding="utf-8").splitlines()
    paths = [_find_photo(p) for p in args.photos]
    batch = np.stack([preprocess(p) for p in paths])
    session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    (logits,) = session.run(None, {input_name: batch})
    probs = softmax(logits)
    for path, row in zip(paths, probs):
        best = np.argsort(-row)[: args.top]
        print(f"{path.name}: " + "; ".join(f"{classes[i]} {row[i]:.3f}" for i in best))

    if args.torch:
        sys.path.insert(0, str(HERE))
        from make_sample_model import build_torch_model, torch_logits

        reference = torch_logits(build_torch_model(), batch)
        diff = float(np.max(np.abs(logits - reference)))
        same_top1 = int(np.sum(logits.argmax(1) == reference.argmax(1)))
        print(f"ORT vs torch on {len(paths)} photos: max |diff| = {diff:.2e}, "
              f"top-1 equal {same_top1}/{len(paths)}, max |logit| = {np.abs(reference).max():.1f}")

    if args.latency > 0:
        for size in (1, 8):
            feed = {input_name: np.resize(batch, (size, *batch.shape[1:]))}
            print(f"ORT CPU FP32 batch {size}: median {_median_ms(session, feed, args.latency):.1f} ms "
                  f"over {args.latency} runs ({ort.get_device()}, {session.get_providers()[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
