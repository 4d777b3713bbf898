"""Where the bundled sample lives (EfficientNet-Lite0 + photos)."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import WorkbenchError


def sample_paths() -> dict:
    """Paths of the bundled sample: model, calib and eval folders, class names, preset.

    The folder is ``sample_data/`` next to the package (an editable install) or the folder
    in the ``WORKBENCH_SAMPLE_DIR`` environment variable.
    """
    root = Path(os.environ.get("WORKBENCH_SAMPLE_DIR") or Path(__file__).resolve().parents[1] / "sample_data")
    model = root / "efficientnet_lite0.onnx"
    if not model.exists():
        raise WorkbenchError(f"The bundled sample is missing: '{model}' does not exist. "
                             "Set WORKBENCH_SAMPLE_DIR to the sample_data folder.")
    return {"model": model, "calib": root / "calib", "eval": root / "eval",
            "classes": root / "imagenet_classes.txt", "preset": "efficientnet-lite"}
