"""Run and inspect a serialized engine with Polygraphy's ``TrtRunner`` (needs a supported GPU).

Polygraphy picks ``tensorrt`` or ``tensorrt_rtx`` once per process, when its TensorRT backend
is first imported (``POLYGRAPHY_USE_TENSORRT_RTX``); :func:`polygraphy_trt` sets that switch
from the engine's flavor and refuses to mix flavors in one process.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import WorkbenchError
from ..outputs.names import sidecar_path
from .base import Runner, TensorSpec
from .trt_import import import_trt
from .trt_status import trt_status


def engine_record(engine) -> dict:
    """The build record ``<engine>.json`` written by :func:`build_engine` ({} when absent)."""
    if isinstance(engine, (str, os.PathLike)):
        sidecar = sidecar_path(engine)
        if sidecar.is_file():
            try:
                record = json.loads(sidecar.read_text())
            except (OSError, ValueError):
                return {}
            return record if isinstance(record, dict) else {}
    return {}


def _runnable(status, record: dict) -> bool:
    """Whether this machine runs the engine: the flavor's verdict, or (TensorRT-RTX on a GPU it
    supports only with an explicit target, e.g. Turing 7.5) the engine's recorded targets."""
    if status.can_run:
        return True
    if status.flavor == "rtx" and status.gpu is not None:
        return status.gpu.cc in record.get("targets", [])
    return False


def polygraphy_trt(flavor: str):
    """Polygraphy's TensorRT backend modules, set up for ``flavor`` ("trt" or "rtx")."""
    import sys

    from polygraphy import config as pg_config

    want = flavor == "rtx"
    if "polygraphy.backend.trt" in sys.modules and bool(pg_config.USE_TENSORRT_RTX) != want:
        loaded = "TensorRT-RTX" if pg_config.USE_TENSORRT_RTX else "TensorRT"
        raise WorkbenchError(f"Polygraphy's TensorRT backend is already loaded for {loaded} in this "
                             f"process; engines of the other flavor need a new process")
    pg_config.USE_TENSORRT_RTX = want
    import polygraphy.backend.trt as pg_trt

    return pg_trt


def _polygraphy_call(call, what: str):
    """Run a Polygraphy call, turning its exceptions into one WorkbenchError."""
    from polygraphy.exception import PolygraphyException

    try:
        return call()
    except PolygraphyException as exc:
        raise WorkbenchError(f"{what} failed: {exc}") from None


def _read_engine(engine) -> bytes:
    if isinstance(engine, (bytes, bytearray, memoryview)):
        return bytes(engine)
    path = Path(engine)
    if not path.is_file():
        raise WorkbenchError(f"TensorRT engine not found: '{path}'")
    return path.read_bytes()


def _numpy_dtype(trt_dtype) -> np.dtype:
    from polygraphy.datatype import DataType

    return np.dtype(DataType.to_dtype(DataType.from_dtype(trt_dtype, "tensorrt"), "numpy"))


class TrtRunner(Runner):
    """Runs a serialized TensorRT / TensorRT-RTX engine with Polygraphy's ``TrtRunner`` (GPU).

    Args:
        engine: path to a ``.engine`` / ``.plan`` file, or its bytes.
        optimization_profile: profile index to use (default 0).
        flavor: ``"trt"`` / ``"rtx"``; default: the flavor in ``<engine>.json``, else auto.
    """

    backend = "trt"
    latency_note = ("TensorRT GPU latency of one infer() call, including host<->device copies "
                    "(Polygraphy TrtRunner); trtexec reports pure GPU compute time.")

    def __init__(self, engine, *, optimization_profile: int = 0, flavor: str | None = None) -> None:
        super().__init__()
        self._source = engine
        self.optimization_profile = optimization_profile
        self._record = engine_record(engine)
        self.flavor = flavor or self._record.get("flavor")
        self.engine = None
        self._runner = None

    def _activate(self) -> None:
        mod = import_trt(self.flavor, "TensorRT inference")
        status = trt_status(mod.flavor.key)
        if not _runnable(status, self._record):
            raise WorkbenchError(f"Cannot run the TensorRT engine here: {status.reason}")
        self._trt = mod.module
        pg_trt = polygraphy_trt(mod.flavor.key)
        self.engine = _polygraphy_call(pg_trt.EngineFromBytes(_read_engine(self._source)),
                                       f"Loading the engine with {mod.describe()}")
        self._runner = pg_trt.TrtRunner(self.engine, optimization_profile=self.optimization_profile)
        _polygraphy_call(self._runner.activate, f"Creating the {mod.describe()} execution context")

    def _deactivate(self) -> None:
        if self._runner is not None:
            self._runner.deactivate()
        self._runner, self.engine = None, None

    def _io_names(self, mode) -> list[str]:
        names = (self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors))
        return [n for n in names if self.engine.get_tensor_mode(n) == mode]

    def _input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(n, _numpy_dtype(self.engine.get_tensor_dtype(n)),
                           tuple(int(d) if d >= 0 else None for d in self.engine.get_tensor_shape(n)))
                for n in self._io_names(self._trt.TensorIOMode.INPUT)]

    def _output_names(self) -> list[str]:
        return self._io_names(self._trt.TensorIOMode.OUTPUT)

    def _check_feed_extra(self, feed: dict[str, np.ndarray]) -> None:
        for name, arr in feed.items():
            try:
                lo, _, hi = self.engine.get_tensor_profile_shape(name, self.optimization_profile)
            except (RuntimeError, ValueError, TypeError):
                continue  # static engine without a profile: the generic checks are enough
            if any(not (a <= s <= b) for a, s, b in zip(lo, arr.shape, hi)):
                raise WorkbenchError(
                    f"input '{name}': shape {tuple(arr.shape)} is outside the engine's optimization "
                    f"profile (min {tuple(lo)}, max {tuple(hi)}); rebuild with --min-shapes/--max-shapes")

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = _polygraphy_call(lambda: self._runner.infer(feed), "TensorRT inference")
        # Polygraphy reuses its host buffers between calls: copy before returning.
        return {name: np.array(outputs[name], copy=True) for name in self.output_names}

    def inspector_json(self) -> str:
        """Engine-inspector JSON for this engine with the current input shapes set.

        Setting the context's shapes first makes TensorRT print formats instead of
        "N/A due to dynamic shapes"."""
        self.activate()
        context = self._runner.context
        for name in self._io_names(self._trt.TensorIOMode.INPUT):
            shape = tuple(context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                _, opt, _ = self.engine.get_tensor_profile_shape(name, self.optimization_profile)
                context.set_input_shape(name, tuple(opt))
        inspector = self.engine.create_engine_inspector()
        inspector.execution_context = context
        return inspector.get_engine_information(self._trt.LayerInformationFormat.JSON)


def inspect_engine(engine, flavor: str | None = None) -> str:
    """Engine-inspector JSON of a serialized engine (path or bytes); parse it with
    :func:`workbench.backends.trt_inspect.layers_dataframe`. Needs TensorRT and a supported GPU."""
    with TrtRunner(engine, flavor=flavor) as runner:
        return runner.inspector_json()


def runner_for(model, **kw) -> TrtRunner:
    """A TrtRunner for an engine file/bytes, or for an ONNX path built in memory first.

    For ONNX, ``kw`` are :class:`BuildConfig` fields and the engine is built into a temporary
    folder that is removed after loading."""
    if isinstance(model, (str, os.PathLike)) and str(model).lower().endswith(".onnx"):
        import tempfile

        from .trt_build import build_engine
        from .trt_config import BuildConfig

        config = BuildConfig(**kw)
        status = trt_status(config.flavor)
        if not status.can_run:  # building first would only fail later, after the build
            raise WorkbenchError(f"Cannot run a TensorRT engine here: {status.reason}")
        with tempfile.TemporaryDirectory(prefix="workbench-trt-") as tmp:
            engine_path = Path(tmp) / "model.engine"
            report = build_engine(model, engine_path, config)
            return TrtRunner(engine_path.read_bytes(), flavor=report.flavor)
    import_trt(kw.get("flavor"), "TensorRT backend")
    return TrtRunner(model, **kw)
