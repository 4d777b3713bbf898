"""Skip marks for the TensorRT tests, each with the exact reason from the workbench's own probe.

``needs_builder``: a TensorRT builder is usable here (TensorRT-RTX anywhere, TensorRT 10/11 with
a GPU). ``needs_gpu``: engines can also be run here. CI installs TensorRT-RTX, so the builder
tests run there; the GPU tests run on a machine with a supported NVIDIA GPU."""
from __future__ import annotations

import pytest

from workbench.backends.trt_status import trt_status

STATUS = trt_status()
needs_builder = pytest.mark.skipif(not STATUS.can_build, reason=f"no TensorRT builder here: {STATUS.reason}")
needs_gpu = pytest.mark.skipif(not STATUS.can_run, reason=f"cannot run TensorRT engines here: {STATUS.reason}")
needs_rtx = pytest.mark.skipif(STATUS.flavor != "rtx" or not STATUS.can_build,
                               reason=f"needs the TensorRT-RTX builder (tensorrt_rtx): {STATUS.reason}")
