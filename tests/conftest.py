import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]
SAMPLE_MODEL = REPO / "sample_data" / "efficientnet_lite0.onnx"


def pytest_collection_modifyitems(config, items):
    try:
        import tensorrt  # noqa: F401
        have_trt = True
    except Exception:
        have_trt = False
    skip_trt = pytest.mark.skip(reason="needs the 'tensorrt' package and an NVIDIA GPU")
    for item in items:
        if "trt" in item.keywords and not have_trt:
            item.add_marker(skip_trt)


@pytest.fixture
def sample_model_path():
    if not SAMPLE_MODEL.exists():
        pytest.fail(f"sample model missing: {SAMPLE_MODEL} (run sample_data/make_sample_model.py)")
    return SAMPLE_MODEL
