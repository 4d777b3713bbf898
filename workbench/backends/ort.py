"""ONNX Runtime backend (CPU): a session loader and a runner.

Always available: it runs the FP32 model for statistics and the Q/DQ / emulation models
to measure error on any laptop. Its latency is CPU latency and says nothing about
TensorRT GPU speed; :class:`LatencyStats.note` says so.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import WorkbenchError
from .base import Runner, TensorSpec

# ONNX Runtime type strings -> numpy dtypes.
_ORT_TO_NUMPY = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16, "tensor(int32)": np.int32, "tensor(uint32)": np.uint32,
    "tensor(int64)": np.int64, "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_,
}

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")

ORT_LATENCY_NOTE = ("ONNX Runtime CPU latency; it is not a proxy for TensorRT GPU speed "
                    "(build an engine and use --backend trt on a GPU machine for that).")


class OrtSessionLoader:
    """Stores how to open a model; calling it returns an ``onnxruntime.InferenceSession``.

    Args:
        model: ONNX path (str / Path), serialized bytes, or ``onnx.ModelProto``.
        threads: ``intra_op_num_threads``; None lets ONNX Runtime choose (all cores).
        optimization: graph optimisation level, one of ``OPTIMIZATION_LEVELS``. Default
            ``"disable"``: exact ONNX semantics (:mod:`workbench.graph.semantics`); ``"all"`` is
            ONNX Runtime's deployed path (fused kernels), for latency and FP32 speed only. A
            quantized model opened with optimizations is on the deployed path: the caller marks
            it with :func:`~workbench.graph.semantics.deployed_path` (the tests refuse it otherwise).
        extra_outputs: names of intermediate tensors to expose as additional outputs.
        spinning: let ONNX Runtime's idle pool threads busy-wait (its default, lowest latency);
            False when other work (the calibration's histogram thread) needs the cores.
    """

    def __init__(self, model, *, threads: int | None = None, optimization: str = "disable",
                 extra_outputs: Sequence[str] = (), spinning: bool = True, external: dict | None = None,
                 shared_arena: bool = False) -> None:
        if optimization not in OPTIMIZATION_LEVELS:
            raise WorkbenchError(f"Unknown ONNX Runtime optimization level '{optimization}'; "
                                 f"choose one of: {', '.join(OPTIMIZATION_LEVELS)}")
        if threads is not None and threads < 1:
            raise WorkbenchError(f"threads must be >= 1, got {threads}")
        self.model = model
        self.threads = threads
        self.optimization = optimization
        self.extra_outputs = list(extra_outputs)
        self.spinning = spinning
        self.external = external or {}
        self.shared_arena = shared_arena

    def _model_source(self):
        """Path or bytes for InferenceSession, adding the extra outputs when asked."""
        import onnx

        model = self.model
        if isinstance(model, (str, os.PathLike)) and not Path(model).is_file():
            raise WorkbenchError(f"ONNX model not found: '{model}'")
        if not self.extra_outputs:
            if isinstance(model, onnx.ModelProto):
                return model.SerializeToString()
            return str(model) if isinstance(model, (str, os.PathLike)) else model
        if isinstance(model, (str, os.PathLike)):
            model = onnx.load(str(model))
        elif isinstance(model, (bytes, bytearray)):
            model = onnx.load_from_string(bytes(model))
        else:
            model = onnx.ModelProto.FromString(model.SerializeToString())  # never edit the caller's
        known = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
        present = {o.name for o in model.graph.output}
        for name in self.extra_outputs:
            if name not in known:
                raise WorkbenchError(f"requested output '{name}' is not a tensor of the model "
                                     f"(e.g. {', '.join(sorted(known)[:8])}, ...)")
            if name not in present:  # ONNX Runtime infers the type of an untyped output
                model.graph.output.append(onnx.ValueInfoProto(name=name))
                present.add(name)
        return model.SerializeToString()

    def __call__(self):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if self.threads is not None:
            opts.intra_op_num_threads = int(self.threads)
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.optimization]
        opts.log_severity_level = 3  # errors only: warnings about unused initializers are noise here
        if not self.spinning:  # idle pool threads sleep instead of spinning (frees cores for other work)
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.shared_arena:
            _register_shared_arena(ort)
            opts.add_session_config_entry("session.use_env_allocators", "1")
        source = self._model_source()
        kept = []
        if self.external:  # initializers held in memory (in_memory_initializers): not serialized
            import onnx

            proto = self.model if isinstance(self.model, onnx.ModelProto) else None
            names = [t.name for t in proto.graph.initializer if t.name in self.external] if proto is not None else []
            kept = [ort.OrtValue.ortvalue_from_numpy(self.external[n]) for n in names]
            if names:
                opts.add_external_initializers(names, kept)
        # no deployed_path() here: a caller that wants a quantized model on the deployed path
        # (latency, the cpu_uint8 file as deployed) opens it itself, so the tests see any other use
        try:
            session = ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])
            session._workbench_external = kept  # the session reads these buffers: keep them alive
            return session
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph...)
            from .ort_errors import load_failure

            where = f"'{self.model}'" if isinstance(self.model, (str, os.PathLike)) else "the model"
            raise WorkbenchError(load_failure(where, exc, self.model)) from None


_SHARED_ARENA = []


def _register_shared_arena(ort) -> None:
    """Register one CPU arena allocator in ONNX Runtime's environment (once per process).

    Sessions opened with ``shared_arena=True`` allocate from it instead of an arena of their own.
    A search opens a dozen sessions over parts of one graph, and every rebuild in the app a new
    session for the file it evaluates, each run only a few times; with its own arena every
    session pays for growing and first touching its memory on those runs (the sample's full pass:
    ~0.33 s cold, ~0.19 s warm; the app's plan change + evaluation 0.6 s -> 0.29 s median). The
    shared arena stays warm. It is kept for the life of the process, at the size of the largest
    run's needs (freed blocks are reused, not added up).
    """
    if not _SHARED_ARENA:
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(info, None)
        _SHARED_ARENA.append(info)


def in_memory_initializers(model, min_bytes: int = 1024) -> tuple:
    """(copy of ``model``, {name: array}): the initializers of at least ``min_bytes`` are marked
    external and their values returned, for :class:`OrtSessionLoader` ``external=``. Sessions over
    (parts of) one large model are then built without serializing its weights each time; ONNX
    Runtime treats them as the same constant initializers (same kernels, same pre-packing)."""
    import onnx
    from onnx import numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    values = {}
    for t in out.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL or t.ByteSize() < min_bytes:
            continue
        values[t.name] = np.ascontiguousarray(numpy_helper.to_array(t))
        for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data",
                      "string_data"):
            t.ClearField(field)
        t.data_location = onnx.TensorProto.EXTERNAL
        del t.external_data[:]
        for key, value in (("location", f"in-memory:{t.name}"), ("offset", "0"), ("length", str(values[t.name].nbytes))):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
    return out, values


class OrtRunner(Runner):
    """Runs an ONNX model with ONNX Runtime on the CPU.

    Args:
        model_or_path: ONNX path, bytes or ``onnx.ModelProto``.
        output_names: outputs to return (graph outputs or intermediate tensors, which are
            then exposed as extra outputs). None returns all graph outputs.
        threads: ``intra_op_num_threads`` (None: ONNX Runtime default).
        optimization: ONNX Runtime graph optimisation level (default ``"disable"``: exact ONNX
            semantics; ``"all"`` for latency on ONNX Runtime's deployed path).
    """

    backend = "ort"
    latency_note = ORT_LATENCY_NOTE

    def __init__(self, model_or_path, *, output_names: Sequence[str] | None = None,
                 threads: int | None = None, optimization: str = "disable", shared_arena: bool = False) -> None:
        super().__init__()
        self._requested = list(output_names) if output_names is not None else None
        self.loader = OrtSessionLoader(model_or_path, threads=threads, optimization=optimization,
                                       extra_outputs=self._requested or (), shared_arena=shared_arena)
        self.session = None

    def _activate(self) -> None:
        self.session = self.loader()

    def _deactivate(self) -> None:
        self.session = None

    def _input_specs(self) -> list[TensorSpec]:
        specs = []
        for i in self.session.get_inputs():
            if i.type not in _ORT_TO_NUMPY:
                raise WorkbenchError(f"input '{i.name}' has type {i.type}, which the workbench cannot feed")
            shape = tuple(d if isinstance(d, int) else (d or None) for d in i.shape)
            specs.append(TensorSpec(i.name, np.dtype(_ORT_TO_NUMPY[i.type]), shape))
        return specs

    def _output_names(self) -> list[str]:
        if self._requested is not None:
            return list(self._requested)
        return [o.name for o in self.session.get_outputs()]

    def infer_some(self, feed, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Like :meth:`infer`, returning only ``names`` (some of :attr:`output_names`): the others
        are not copied out of ONNX Runtime."""
        return self._infer(self.check_feed(feed), list(names))

    def _infer(self, feed: dict[str, np.ndarray], names=None) -> dict[str, np.ndarray]:
        names = self.output_names if names is None else names
        try:
            values = self.session.run(names, feed)
        except Exception as exc:  # shape errors inside the graph, e.g. a wrong spatial size
            raise WorkbenchError(f"ONNX Runtime failed to run the model: {exc}") from None
        return dict(zip(names, values))
