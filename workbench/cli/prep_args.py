"""The input-preparation flags of the command line (image folders only), defined once.

They give the fields of a :class:`workbench.data.InputPreparation`; what is not given comes from
the model, and each command prints where every field came from (:meth:`PreprocessArgs.report`).
"""
from __future__ import annotations

import argparse


def _resize_arg(text: str):
    """--resize: a policy name, or (the former meaning) a short side in pixels (0: none)."""
    from ..data import RESIZE_POLICIES

    if text.lower() in RESIZE_POLICIES:
        return text.lower()
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(RESIZE_POLICIES)} (or a short side in "
                                         f"pixels), got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"a short side must be 0 or more pixels, got {n}")
    return n


class PreprocessArgs:
    """How images become the model's input (image folders only): the fields of an
    :class:`workbench.data.InputPreparation`; what is not given comes from the model."""

    def add(self, parser: argparse.ArgumentParser) -> None:
        pre = parser.add_argument_group(
            "input preparation (image folders only; what is not given comes from the model, guesses are printed)")
        pre.add_argument("--preset", default=None,
                         help="efficientnet-lite | imagenet | caffe | unit | symmetric: channel order, "
                              "normalisation and resize policy; flags below override single fields")
        pre.add_argument("--size", type=int, nargs="+", metavar=("H", "W"), default=None,
                         help="target height and width (one value: square; 0: each image's own, rounded to "
                              "the model's stride); default: the model's static size, else each image's own")
        pre.add_argument("--resize", type=_resize_arg, default=None, metavar="POLICY",
                         help="stretch | crop (shorter side, then centre crop) | letterbox (keep aspect, pad) | "
                              "none; a number N keeps the former meaning: shorter side to N, then centre crop")
        pre.add_argument("--short-side", type=int, default=None,
                         help="crop: resize the shorter side to N first (default size/0.875; 0: no resize)")
        pre.add_argument("--crop", type=int, default=None, help="centre crop NxN (same as --size N --resize crop)")
        pre.add_argument("--pad-value", type=float, default=None, help="letterbox pad, in pixels 0..255 (default 0)")
        pre.add_argument("--channel-order", "--color", dest="channel_order", choices=["RGB", "BGR"], default=None,
                         help="channel order the model takes")
        pre.add_argument("--scale", type=float, default=None, help="multiply 0..255 pixels by this first")
        pre.add_argument("--mean", type=float, nargs="+", default=None, help="per-channel mean (scaled units)")
        pre.add_argument("--std", type=float, nargs="+", default=None, help="per-channel std (scaled units)")
        pre.add_argument("--layout", choices=["NCHW", "NHWC"], default=None, help="default: from the model")
        pre.add_argument("--stride", type=int, default=None,
                         help="multiple a dynamic H/W is rounded to (default: from the model's graph)")

    def validate(self, args) -> None:
        """Refuse bad preparation flags (--std 0, --size 0 -1, an unknown preset) before any work."""
        self.parse(args)

    def parse(self, args) -> dict:
        """The request of the flags given (a dict of InputPreparation fields), checked."""
        from ..data.prepare import check_request

        req = {k: getattr(args, k, None) for k in ("preset", "short_side", "pad_value", "channel_order", "scale",
                                                   "layout", "stride")}
        for k in ("mean", "std"):
            if getattr(args, k, None) is not None:
                req[k] = tuple(getattr(args, k))
        size, resize, crop = getattr(args, "size", None), getattr(args, "resize", None), getattr(args, "crop", None)
        if size is not None:
            if len(size) > 2:
                from ..errors import WorkbenchError

                raise WorkbenchError(f"--size takes H and W (or one value for a square), got {len(size)} values.")
            req["size"] = tuple(size) if len(size) == 2 else (size[0], size[0])
        if crop is not None:
            req["size"], req["resize"] = (crop, crop), "crop"
        if isinstance(resize, int):  # the former --resize N: shorter side N, then the centre crop
            req["resize"] = "crop" if resize or crop is not None else "stretch"
            if resize or crop is not None:
                req["short_side"] = resize
        elif resize is not None:
            req["resize"] = resize
        return check_request(req)

    @staticmethod
    def report(args, data) -> None:
        """Print, once per command, the preparation ``data`` uses and where each field came from."""
        prep = getattr(data, "preparation", None)
        if prep is None or getattr(args, "_preparation_printed", False):
            return
        args._preparation_printed = True
        print("Input preparation:\n" + prep.describe())
