"""Argument groups of the ``workbench`` command line, in Polygraphy's ``tools/args`` style.

Each group defines its options once (``add(parser)``) and turns the parsed namespace into core
objects (``parse(args, ...)``). A command composes the groups it needs; no option is defined
twice. Core imports happen inside ``parse`` so ``workbench --help`` stays fast.
"""
from __future__ import annotations

import argparse

from .backend_args import BackendArgs  # noqa: F401 - the backends' argument group (--backend, --trt-flavor)
from .executor_args import ExecutorArgs  # noqa: F401 - where sweeps run (--workers, --scheduler)
from .prep_args import PreprocessArgs  # the input-preparation flags (--preset, --size, --resize, ...)


class DataArgs:
    """A data source: ``--{prefix}data DIR`` or ``--{prefix}data-loader-script FILE.py[:FUNC]``.

    Args:
        prefix: "" for calibration data, "eval-" for held-out evaluation data.
        required: one source must be given.
        batch: also add ``--samples`` and ``--batch-size`` (the calibration group owns them).
    """

    def __init__(self, prefix: str = "", *, required: bool = True, title: str = "data",
                 batch: bool = True) -> None:
        self.prefix, self.required, self.title, self.batch = prefix, required, title, batch
        self.preprocess = PreprocessArgs()

    @property
    def _key(self) -> str:
        return self.prefix.replace("-", "_")

    def add(self, parser: argparse.ArgumentParser):
        g = parser.add_argument_group(self.title)
        src = g.add_mutually_exclusive_group(required=self.required)
        src.add_argument(f"--{self.prefix}data", metavar="DIR",
                         help="folder of images (jpg/png/bmp/webp) or of .npy/.npz files (npz keyed by input name)")
        src.add_argument(f"--{self.prefix}data-loader-script", metavar="FILE.py[:FUNC]",
                         help="Polygraphy-style script; FUNC (default load_data) returns an iterable of "
                              "{input_name: array} batches")
        if self.batch:
            g.add_argument("--samples", type=int, default=None, help="use at most N samples (default: all)")
            g.add_argument("--batch-size", type=int, default=8, help="samples per inference batch (default 8)")
            g.add_argument("--allow-nonfinite", action="store_true",
                           help="accept samples whose inputs are all NaN/Inf (refused by default)")
            self.preprocess.add(parser)
        else:
            g.add_argument(f"--{self.prefix}samples", type=int, default=None,
                           help="use at most N of these samples (default: all)")
        return g

    def validate(self, args) -> None:
        """Refuse bad sample counts, batch sizes and preprocessing before any work."""
        from ..validate import check_positive_int

        if self.batch:
            check_positive_int(getattr(args, "samples", None), "--samples", allow_none=True)
            check_positive_int(getattr(args, "batch_size", None), "--batch-size")
            self.preprocess.validate(args)
        else:
            check_positive_int(getattr(args, f"{self.prefix.replace('-', '_')}samples", None),
                               f"--{self.prefix}samples", allow_none=True)

    def given(self, args) -> bool:
        return bool(getattr(args, f"{self._key}data", None) or getattr(args, f"{self._key}data_loader_script", None))

    def parse(self, args, model, limit: int | None = None):
        """Open the data for ``model`` (a CalibrationData)."""
        from ..data import open_data

        if limit is None:
            limit = getattr(args, f"{self._key}samples", None)
        data = open_data(getattr(args, f"{self._key}data"), model, preparation=self.preprocess.parse(args),
                         loader_script=getattr(args, f"{self._key}data_loader_script"), limit=limit,
                         allow_nonfinite=getattr(args, "allow_nonfinite", False), origin="flag")
        self.preprocess.report(args, data)
        return data


class MetricArgs:
    """``--metric-script FILE.py[:FUNC]``: the user's accuracy metric."""

    def add(self, parser_or_group) -> None:
        parser_or_group.add_argument(
            "--metric-script", metavar="FILE.py[:FUNC]",
            help="your accuracy metric: FUNC(outputs, labels=None) -> float, higher is better "
                 "(default FUNC: metric); reported as 'metric' and usable in --target 'metric>=X'")

    def parse(self, args):
        """FUNC of the script (default ``metric``), or None."""
        spec = getattr(args, "metric_script", None)
        if not spec:
            return None
        import functools

        from ..data import call_user_function, load_function

        func = load_function(spec, default="metric", what="metric script")
        # sys.exit in the user's metric is reported naming the script, not a silent exit status
        return functools.wraps(func)(lambda *a, **k: call_user_function(func, f"metric script '{spec}'", *a, **k))


class EvalArgs:
    """Held-out evaluation data (same preprocessing as calibration) and the metric."""

    def __init__(self) -> None:
        self.data = DataArgs("eval-", required=False, batch=False,
                             title="evaluation data (held out from calibration; same preprocessing)")
        self.metric = MetricArgs()
        self.calib_data: DataArgs | None = None

    def add(self, parser: argparse.ArgumentParser, calib_data: DataArgs) -> None:
        self.calib_data = calib_data
        g = self.data.add(parser)
        self.metric.add(g)

    def parse(self, args, model):
        """An Evaluator on --eval-data, else on the calibration samples the one hold-out rule
        holds out (:func:`workbench.search.calibration.hold_out`); built once per command
        (calibration's search and the final report share it, see :meth:`adopt`)."""
        cached = getattr(self, "_cached", None)
        if cached is not None and cached[0] is args and cached[1] is model:
            return cached[2]
        from ..evaluate.evaluator import Evaluator
        from ..search.calibration import hold_out, judge

        metric_fn = self.metric.parse(args)
        if self.data.given(args):
            evaluator = Evaluator(model, self.data.parse(args, model), batch_size=args.batch_size,
                                  metric_fn=metric_fn)
        else:
            holdout = hold_out(self.calib_data.parse(args, model, limit=args.samples))
            print(f"note: {holdout.note()}")
            evaluator = judge(model, holdout, batch_size=args.batch_size, metric_fn=metric_fn,
                              max_samples=args.eval_samples)
        self._cached = (args, model, evaluator)
        return evaluator

    def adopt(self, args, model, evaluator) -> None:
        """Use ``evaluator`` (built by the calibration over the held-out samples) for this command."""
        self._cached = (args, model, evaluator)


#: Held-out samples the auto range search uses by default (each candidate costs one run over them).
AUTO_SAMPLES = 16


class CalibArgs:
    """Range method, its parameters (from the range-method registry), and reuse of saved ranges
    or statistics.

    Args:
        reuse_ranges: add ``--ranges ranges.json`` (commands that consume ranges).
    """

    def __init__(self, *, reuse_ranges: bool = True) -> None:
        self.reuse_ranges = reuse_ranges

    def add(self, parser: argparse.ArgumentParser) -> None:
        from ..calib import registry

        g = parser.add_argument_group("calibration")
        g.add_argument("--method", choices=registry.method_names(), default=registry.DEFAULT_METHOD,
                       help=f"range method (default {registry.DEFAULT_METHOD}: per tensor, the candidate amax "
                            "that gives the best network output on held-out data; "
                            + "; ".join(f"'{m.name}': {m.description}" for m in registry.REGISTRY.values()
                                        if not m.output_aware) + ")")
        for prm in registry.all_params().values():  # one flag per registered method parameter
            g.add_argument(prm.flag, type=int if prm.integer else float, default=None,
                           help=f"{prm.help} (default {prm.default:g})")
        g.add_argument("--auto-samples", type=int, default=AUTO_SAMPLES,
                       help=f"held-out samples the auto search scores each candidate on (default {AUTO_SAMPLES})")
        g.add_argument("--auto-objective", default="sqnr", metavar="sqnr|metric|TARGET",
                       help="what auto maximises: output SQNR (default), the --metric-script value, or the "
                            "metric of a target such as 'top1>=0.99'")
        if self.reuse_ranges:
            g.add_argument("--ranges", metavar="ranges.json", help="reuse ranges from `workbench calibrate` "
                           "(checked against the model) instead of calibrating")
            g.add_argument("--allow-other-model", action="store_true",
                           help="use a --ranges or --plan file made for another model (its fingerprint "
                                "differs; tensors and nodes are matched by name) instead of refusing it")
        g.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    @staticmethod
    def params(args) -> dict:
        """The range-method parameters given on the command line (registry names)."""
        from ..calib import registry

        return {n: getattr(args, n) for n in registry.all_params() if getattr(args, n, None) is not None}

    @staticmethod
    def percentile(args) -> float:
        """--percentile, or the registry's default."""
        from ..calib.algorithms import DEFAULT_PERCENTILE

        return DEFAULT_PERCENTILE if args.percentile is None else args.percentile

    def validate(self, args) -> None:
        """Refuse bad range parameters (whatever the method) before any work."""
        from ..calib import registry
        from ..evaluate.metrics import Target
        from ..validate import check_percentile, check_positive_int

        check_percentile(args.percentile, "--percentile", allow_none=True)
        registry.check_params(self.params(args))
        check_positive_int(getattr(args, "auto_samples", None), "--auto-samples")
        if getattr(args, "auto_objective", "sqnr") not in ("sqnr", "metric"):
            Target(args.auto_objective)

    def parse(self, args, model, data_args: DataArgs, tensors="default", eval_args=None, plan_args=None,
              executor=None):
        """Calibrate (or load --ranges) and return Ranges for ``model``; ``tensors``: what to
        observe (see :func:`workbench.calib.collect.tensors_to_observe`).

        ``auto`` (the default) scores candidates on --eval-data (``eval_args``), else on
        calibration samples held out from the range choice, under the plan of ``plan_args``, its
        runs on ``executor`` (``ExecutorArgs``; None: here). The outcome (guard warnings, the
        search) is kept in ``self.outcome`` and printed."""
        import warnings

        from ..errors import StaleError
        from ..calib.ranges import Ranges

        if getattr(args, "ranges", None):
            ranges = Ranges.load(args.ranges)
            if ranges.model_fingerprint and ranges.model_fingerprint != model.fingerprint():
                what = (f"'{args.ranges}' was calibrated for another model (fingerprint "
                        f"{ranges.model_fingerprint[:12]}, '{model.name}' is {model.fingerprint()[:12]})")
                if not getattr(args, "allow_other_model", False):
                    raise StaleError(f"{what}; recalibrate, or pass --allow-other-model to use it anyway.")
                warnings.warn(f"{what}; used anyway (--allow-other-model).", stacklevel=2)
            if args.percentile is not None and args.percentile != ranges.percentile:
                raise StaleError(
                    f"--percentile {args.percentile:g} cannot be applied to --ranges '{args.ranges}': it holds "
                    f"amax values computed at percentile {ranges.percentile:g}, not the histograms. "
                    "Recalibrate with --percentile (or `workbench calibrate --statistics statistics.npz`).")
            if args.method != ranges.method and args.method != "auto":
                return ranges.with_method(args.method)
            return ranges
        return self.run(args, model, data_args.parse(args, model), tensors, eval_args, plan_args,
                        executor=executor).ranges

    def run(self, args, model, data, tensors="default", eval_args=None, plan_args=None, statistics=None,
            executor=None):
        """Statistics and the ranges of --method through the one calibration path
        (:func:`workbench.search.calibration.calibrate`: one default, one hold-out rule); a
        :class:`~workbench.search.calibration.CalibrationResult`. Keeps ``stats``, ``evaluator``
        (where ranges were judged, which ``eval_args`` then reuses) and ``histogram_data``."""
        from ..calib.stats import Statistics
        from ..search.calibration import calibrate
        from .common import progress_bar

        evaluator = eval_args.parse(args, model) if eval_args is not None and eval_args.data.given(args) else None
        metric_fn = eval_args.metric.parse(args) if eval_args is not None and evaluator is None else None

        def load(histogram_data):
            stats = Statistics.load(statistics, model.fingerprint(), histogram_data.fingerprint())
            print(f"Reusing statistics from {statistics} ({stats.num_samples} samples).")
            return stats

        from ..calib import registry

        # the plan the searches judge under, made once the statistics exist (FP16 safety reads ranges)
        plan = (lambda base_ranges: plan_args.parse(args, model, base_ranges)) if plan_args is not None else None

        auto = registry.get_method(args.method).output_aware
        with progress_bar("auto ranges" if auto else "scoring methods", "run", args.quiet or not auto) as bar:
            outcome = calibrate(model, data, method=args.method, evaluator=evaluator, params=self.params(args),
                                plan=plan, tensors=tensors, batch_size=args.batch_size,
                                statistics=load if statistics else None,
                                objective=getattr(args, "auto_objective", "sqnr"),
                                auto_samples=getattr(args, "auto_samples", None), metric_fn=metric_fn,
                                collect_progress=not args.quiet, search_progress=bar, executor=executor)
        print(f"note: {outcome.holdout.note()}")
        if eval_args is not None:
            eval_args.adopt(args, model, outcome.evaluator)
        self.stats, self.evaluator, self.outcome = outcome.stats, outcome.evaluator, outcome
        self.histogram_data = outcome.holdout.histogram_data
        if outcome.auto is not None:
            print(f"auto ranges: {outcome.auto.summary()}")
        for note in outcome.notes:
            print(f"WARNING: {note}")
        return outcome


class PlanArgs:
    """The precision plan: a saved plan or the default, plus per-node / per-op overrides."""

    def add(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("precision plan")
        g.add_argument("--plan", metavar="plan.json", help="start from a saved plan")
        g.add_argument("--base", choices=["fp32", "fp16"], default="fp32",
                       help="precision of nodes that are not INT8 (default fp32)")
        for prec, what in (("int8", "run in INT8"), ("fp16", "keep in FP16"), ("fp32", "keep in FP32")):
            g.add_argument(f"--{prec}", action="append", default=[], metavar="PATTERN",
                           help=f"regex of node names to {what} (repeatable)")
        for prec in ("fp16", "fp32"):
            g.add_argument(f"--op-{prec}", action="append", default=[], metavar="OP",
                           help=f"op type to keep in {prec.upper()} (repeatable)")

    def parse(self, args, model, ranges, start=None):
        """The default plan (or ``start``, e.g. a Q/DQ model's own, or --plan) with the
        overrides applied and FP16 safety checked."""
        from ..precision.plan import PrecisionPlan

        if args.plan:
            self.check_fingerprint(args, model)
        if args.plan:
            plan = PrecisionPlan.load(args.plan, model)
        else:
            plan = start.copy() if start is not None else PrecisionPlan.default(model, args.base)
        for prec in ("fp16", "fp32"):
            for op in getattr(args, f"op_{prec}"):
                plan.set_op_type(op, prec, origin=f"--op-{prec} {op}")
        matched: dict = {}  # node -> [(flag, pattern)] of every pattern that set it
        for prec in ("int8", "fp16", "fp32"):
            for pattern in getattr(args, prec):
                for node in plan.set_pattern(pattern, prec, origin=f"--{prec} {pattern}"):
                    matched.setdefault(node, []).append((f"--{prec}", pattern))
        if not getattr(args, "_overlaps_said", False):  # the plan is parsed more than once per command
            from .common import say_overlaps

            args._overlaps_said = say_overlaps(matched, plan)
        return plan.with_fp16_safety(model, ranges)


    @staticmethod
    def check_fingerprint(args, model) -> None:
        """Refuse a --plan saved for another model (its recorded fingerprint differs) unless
        --allow-other-model; a plan without a fingerprint is matched by node names only."""
        import json
        import warnings
        from pathlib import Path

        from ..errors import StaleError

        try:
            saved = json.loads(Path(args.plan).read_text(encoding="utf-8")).get("model_fingerprint")
        except (OSError, ValueError, AttributeError):
            return  # PrecisionPlan.load reports unreadable files
        if not saved or saved == model.fingerprint():
            return
        what = (f"Plan file '{args.plan}' was made for another model (fingerprint {str(saved)[:12]}, "
                f"'{model.name}' is {model.fingerprint()[:12]})")
        if not getattr(args, "allow_other_model", False):
            raise StaleError(f"{what}; make a plan for this model, or pass --allow-other-model to use it "
                             "anyway (nodes are matched by name).")
        warnings.warn(f"{what}; used anyway (--allow-other-model).", stacklevel=2)


class OutputArgs:
    """``-o/--output`` and ``--overwrite``."""

    def __init__(self, metavar: str, help: str, *, required: bool = True, default: str | None = None) -> None:
        self.metavar, self.help, self.required, self.default = metavar, help, required, default

    def add(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-o", "--output", required=self.required, default=self.default,
                            metavar=self.metavar, help=self.help)
        parser.add_argument("--overwrite", action="store_true", help="replace existing output files")

