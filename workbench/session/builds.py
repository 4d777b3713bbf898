"""Rebuild + evaluate, TensorRT builds, sensitivity and automatic mixed precision of a session."""
from __future__ import annotations

import time

from ..errors import WorkbenchError
from .context import change_label
from .state import Build, Event


class BuildsMixin:
    """Part of :class:`workbench.session.Session`: builds, history, searches."""

    def rebuild(self, *, latency: bool = False, backend: str = "ort", label: str = "",
                trt_flavor: str | None = None) -> Build:
        """Build the quantized model for the current plan and ranges and evaluate it.

        Args:
            latency: also measure batch-1 latency (ONNX Runtime CPU; TensorRT with ``backend="trt"``).
            backend: "ort" (always available) or "trt": builds a TensorRT engine (TensorRT 10/11
                with a GPU, or TensorRT-RTX anywhere) and times it where a supported GPU exists;
                without any builder, WorkbenchError with the reason.
            label: text stored with the build (default: what changed since the previous build,
                :func:`workbench.session.context.change_label`).
            trt_flavor: "trt", "rtx" or None (whichever is installed) for ``backend="trt"``.
        """
        from ..backends.registry import backend_names
        from ..validate import check_bool, check_choice, check_type

        check_bool(latency, "rebuild(latency=...)")
        check_choice(backend, backend_names(), "rebuild(backend=...)")
        check_type(label, str, "rebuild(label=...)")
        ranges = self._need_ranges()
        started = time.perf_counter()
        plan = self.plan.copy()
        notes, paths, lat_ms = self._reference_notes(), {}, None
        model, built_ranges, built_plan = self._export_source(plan, ranges)  # the improved model while current
        if model is not self.model_info:
            notes.append("accuracy steps applied: " + ", ".join(self.improvement.applied()))
        elif self.improvement_note():
            notes.append(self.improvement_note())
        # the figures of the file a user deploys: the TensorRT Q/DQ file, real float16 tensors included
        if self.state.eval_reuse is None:  # what did not change since the last build is not recomputed
            from ..evaluate.reuse import ReuseCache

            self.state.eval_reuse = ReuseCache()
        result = self.evaluator.evaluate(built_plan, built_ranges, variant="trt", per_layer=True,
                                         latency=latency and backend == "ort", batch_sizes=(1,), model=model,
                                         reuse=self.state.eval_reuse)
        if latency and backend == "ort" and 1 in result.latency:
            lat_ms = float(result.latency[1].median_ms)
            notes.append("latency: ONNX Runtime CPU running the TensorRT Q/DQ file, not a TensorRT number")
        if backend == "trt":
            lat_ms, trt_paths, trt_notes = self._trt_build(plan, ranges, len(self.history), trt_flavor)
            paths.update(trt_paths)
            notes.extend(trt_notes)
        label = label or change_label(self.history[-1] if self.history else None, plan, self.calib_settings.method,
                                      ranges_recomputed=self.ranges_changed_since_build())
        summary = result.summary()
        summary.update(self.evaluator.context())  # samples and the reference's scale, for the numbers' context
        build = Build(len(self.history), plan, self.calib_settings.method, summary, result.outputs,
                      result.per_layer, lat_ms, backend, len(plan.int8_nodes()), len(plan.fp16_nodes()),
                      time.perf_counter() - started, notes, paths, label,
                      f"{result.semantics}, on the TensorRT Q/DQ file as exported")
        self.history.append(build)
        self._autosave()
        self._notify(Event.BUILD)
        return build

    def _trt_build(self, plan, ranges, build_id: int, flavor: str | None = None) -> tuple:
        """Export the TensorRT Q/DQ model, build the engine and time it where a GPU allows
        (:func:`workbench.backends.trt_rebuild.build_and_time`)."""
        from ..backends.trt_rebuild import build_and_time

        out = self._export_dir() / f"build{build_id}"
        onnx_path = self._export_model(plan, ranges, out / "model.onnx", "trt")
        result = build_and_time(onnx_path, out / "model.engine", flavor=flavor, fp32_onnx=self.model_info.path,
                                feed=self.evaluator.latency_feed(1))
        return result.latency_ms, {"onnx": str(onnx_path), **result.paths}, result.notes

    def restore(self, build_id: int) -> None:
        """Make the plan of build ``build_id`` the current plan (undoable)."""
        if not 0 <= build_id < len(self.history):
            raise WorkbenchError(f"No build {build_id}; the history has builds 0..{len(self.history) - 1}.")
        old = self.history[build_id]
        self._change_plan(lambda p: None, f"restore build {build_id}")
        self.plan = old.plan.copy()
        if old.method != self.calib_settings.method and self.stats is not None:
            self.set_method(old.method)
        self._notify(Event.PLAN)

    # ------------------------------------------------------------------ sensitivity and auto
    def run_sensitivity(self, *, samples: int | None = 16, progress=None, cancel=None, live: bool = True,
                        executor=None, workers: int | None = None):
        """Rank the INT8 nodes by sensitivity (see :func:`workbench.search.sensitivity.sensitivity`).

        With ``live`` (default) ``sensitivity_table`` fills in as nodes are scored (an
        ``Event.SENSITIVITY`` each, ``attrs["complete"]`` False until the end); when the run is
        cancelled the partial ranking stays (Cancelled is raised after it is stored). ``executor``:
        where the rows are scored (:mod:`workbench.search.executor`; default in this process), or
        ``workers``: N local worker processes (the same ranking).
        """
        from ..search.executor import make_executor
        from ..validate import check_positive_int

        check_positive_int(samples, "run_sensitivity(samples=...)", allow_none=True)
        check_positive_int(workers, "run_sensitivity(workers=...)", allow_none=True)
        if executor is None and workers is not None:
            with make_executor(workers) as ex:
                return self.run_sensitivity(samples=samples, progress=progress, cancel=cancel, live=live, executor=ex)
        from ..errors import Cancelled
        from ..search.sensitivity import rank_rows, sensitivity

        rows: list = []

        def step(done, total):
            if live:
                self._set_ranking(rank_rows(rows, samples=samples), complete=False)
            if progress is not None:
                progress(done, total)

        try:
            table = sensitivity(self.evaluator, self._need_ranges(), self.plan, samples=samples,
                                progress=step, cancel=cancel, partial=rows, executor=executor)
        except Cancelled:
            if rows:
                self._set_ranking(rank_rows(rows, samples=samples), complete=False)
            raise
        self._set_ranking(table, complete=True)
        return self.sensitivity_table

    def _set_ranking(self, table, *, complete: bool) -> None:
        table.attrs["complete"] = complete
        self.sensitivity_table = table
        self._notify(Event.SENSITIVITY)

    def mixed_precision(self, target: str = "top1>=0.99", *, progress=None, cancel=None, workers: int | None = None,
                        **kw):
        """Automatic mixed precision to ``target`` (e.g. "top1>=0.99", "sqnr>=30"); the plan
        found becomes the current plan (undoable). Returns the AutoResult (with ``curve``).

        Without a complete sensitivity ranking, one is made first (it fills in live and is
        kept when cancelled, see :meth:`run_sensitivity`); ``progress`` counts ranked nodes,
        then scored plans. The result's figures and ``met`` are those of the TensorRT file the plan
        exports to (``result.file``), judged on every evaluation sample with exact ONNX semantics.
        ``workers``: score the ranking and the sweep in N local worker processes (the same
        plan; or pass ``executor=``)."""
        from ..search.executor import make_executor
        from ..search.sensitivity import search_estimate, auto_mixed_precision
        from ..validate import check_positive_int, check_text

        check_text(target, "mixed_precision(target=...)", example="'top1>=0.99'")
        check_positive_int(workers, "mixed_precision(workers=...)", allow_none=True)
        if kw.get("executor") is None and workers is not None:
            with make_executor(workers) as ex:
                return self.mixed_precision(target, progress=progress, cancel=cancel, executor=ex, **kw)

        ranking, offset = self.sensitivity_table, 0
        if ranking is None or not ranking.attrs.get("complete", True):
            samples = kw.pop("sensitivity_samples", 16)
            ranking = self.run_sensitivity(samples=samples, cancel=cancel, executor=kw.get("executor"), progress=(
                (lambda d, t: progress(d, t + search_estimate(t))) if progress else None))
            offset = len(ranking)
        else:
            kw.pop("sensitivity_samples", None)
        step = (lambda d, t: progress(offset + d, offset + t)) if progress else None
        result = auto_mixed_precision(self.evaluator, self._need_ranges(), self.plan, target,
                                      ranking=ranking, progress=step, cancel=cancel, **kw)
        self.mixed_precision_result = result
        if self.sensitivity_table is None:
            self.sensitivity_table = result.sensitivity
        self._change_plan(lambda p: None, f"auto {target}")
        self.plan = result.plan.copy()
        self._notify(Event.PLAN)
        return result
