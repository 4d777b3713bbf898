"""Argument groups of the backends: ``--backend`` / ``--trt-flavor`` and the TensorRT build options.

The ``--backend`` choices come from the backend registry; ``--trt-flavor`` picks TensorRT 10/11
(``trt``), TensorRT-RTX (``rtx``) or whichever is installed (``auto``). The flavor applies to
the whole command (a process uses one TensorRT, as Polygraphy does): :meth:`TrtFlavorArgs.parse`
sets ``$WORKBENCH_TRT_FLAVOR`` for it.
"""
from __future__ import annotations

import argparse
import os

from ..errors import WorkbenchError


class TrtFlavorArgs:
    """``--trt-flavor auto|trt|rtx``."""

    def add(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--trt-flavor", choices=("auto", "trt", "rtx"), default=None,
                            help="TensorRT to use: trt (TensorRT 10/11, needs an NVIDIA GPU), rtx "
                                 "(TensorRT-RTX: builds without a GPU, runs on compute capability 8.0, "
                                 "8.6, 8.9, 12.x) or auto (default: $WORKBENCH_TRT_FLAVOR, else "
                                 "tensorrt if installed, else tensorrt_rtx)")

    def parse(self, args) -> str | None:
        """The chosen flavor (None for auto); also selects it for this process."""
        from ..backends.trt_import import ENV_VAR

        flavor = getattr(args, "trt_flavor", None)
        if flavor in (None, "auto"):
            return os.environ.get(ENV_VAR) or None
        os.environ[ENV_VAR] = flavor
        return flavor


class BackendArgs:
    """``--backend`` (choices from the backend registry) and ``--trt-flavor``."""

    def __init__(self, default: str = "ort") -> None:
        self.default = default
        self.flavor = TrtFlavorArgs()

    def add(self, parser: argparse.ArgumentParser) -> None:
        from ..backends.registry import backends

        entries = backends()
        parser.add_argument("--backend", choices=[b.name for b in entries], default=self.default,
                            help="; ".join(f"{b.name}: {b.description}" for b in entries)
                            + f". Default: {self.default}")
        self.flavor.add(parser)

    def parse(self, args) -> str:
        self.flavor.parse(args)
        return args.backend


def _shapes(text):
    from ..backends.trt_shapes import parse_shapes

    return parse_shapes(text)


class TrtBuildArgs:
    """The options of ``workbench build``: shapes, profile, workspace, caches, targets, modes."""

    def __init__(self) -> None:
        self.flavor = TrtFlavorArgs()

    def add(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("TensorRT build")
        g.add_argument("--shapes", metavar="SHAPES", help="opt (and min/max unless given) shapes, "
                       "e.g. input:1x3x224x224,mask:1x16 or input:[1,3,224,224]")
        for kind in ("min", "opt", "max"):
            g.add_argument(f"--{kind}-shapes", metavar="SHAPES", help=f"{kind} shapes of the profile")
        g.add_argument("--batch", type=int, default=1, help="opt batch for a dynamic first dimension "
                       "not covered by --shapes (default 1)")
        g.add_argument("--max-batch", type=int, default=None, help="max batch for a dynamic first "
                       "dimension (default: --batch)")
        g.add_argument("--workspace", type=float, metavar="MB", help="workspace limit in MiB "
                       "(default: TensorRT's, the GPU memory)")
        g.add_argument("--timing-cache", metavar="FILE", help="TensorRT 10/11: timing cache to load and "
                       "update (default: one per TensorRT version and GPU under ~/.cache/workbench/trt; "
                       "TensorRT-RTX has none)")
        g.add_argument("--no-timing-cache", action="store_true", help="neither load nor save a timing cache")
        g.add_argument("--compute-capability", action="append", default=[], metavar="X.Y",
                       help="TensorRT-RTX: target GPU (repeatable, e.g. 8.6, 12.0, 7.5 for Turing, or "
                            "'current'); default: the GPU present if supported, else 8.0/8.6/8.9/12.0+")
        g.add_argument("--compare-fp32", metavar="FP32_MODEL", help="also build this FP32 ONNX the same "
                       "way (not saved) and record both engine sizes and build times")
        g.add_argument("--weakly-typed", action="store_true", help="TensorRT 10 only: build with "
                       "FP16+INT8 flags instead of strong typing")
        g.add_argument("--legacy-int8-cache", metavar="FILE", help="TensorRT 8.6-10 only: implicit INT8 "
                       "from the workbench's calibration cache (QUANT_MODEL is then the FP32 ONNX)")
        g.add_argument("--layer-precision", action="append", default=[], metavar="NODE:PREC",
                       help="legacy mode only: per-layer precision (int8/fp16/fp32), repeatable")
        self.flavor.add(g)

    def parse(self, args):
        """A checked :class:`~workbench.backends.trt_config.BuildConfig` (mistakes are reported
        before TensorRT is even imported)."""
        from ..backends.trt_config import BuildConfig

        precisions = {}
        for item in args.layer_precision:
            node, sep, prec = item.rpartition(":")
            if not sep or not node:
                raise WorkbenchError(f"--layer-precision '{item}': expected NODE:PRECISION, e.g. "
                                     f"/conv1/Conv:fp16")
            precisions[node] = prec
        for name in ("batch", "max_batch"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise WorkbenchError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        config = BuildConfig(
            shapes=_shapes(args.shapes), min_shapes=_shapes(args.min_shapes),
            opt_shapes=_shapes(args.opt_shapes), max_shapes=_shapes(args.max_shapes),
            batch=args.batch, max_batch=args.max_batch,
            workspace_bytes=int(args.workspace * (1 << 20)) if args.workspace else None,
            timing_cache=args.timing_cache, use_timing_cache=not args.no_timing_cache,
            strongly_typed=not args.weakly_typed, legacy_int8_cache=args.legacy_int8_cache,
            layer_precisions=precisions, flavor=self.flavor.parse(args),
            compute_capabilities=list(args.compute_capability), compare_fp32=args.compare_fp32)
        config.target_ccs()  # an unreadable --compute-capability is a flag mistake
        return config
