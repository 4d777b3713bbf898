"""Input preparation panel: the fields of :class:`workbench.data.InputPreparation`, where each
came from, and a preview of one prepared input (as an image, with its shape and min/max).

The one control of the input preparation in the app (the model panel has none): a preset given
to the Session (``Workbench(..., preset=...)``) shows here and becomes a field of the request on
Apply. Thin: the request goes to :meth:`Session.set_data` (which resolves and checks it against the
model); the preview is :meth:`workbench.data.folder.ImageFolderData.preview`. Errors show next
to the panel and clear on the next success.
"""
from __future__ import annotations

import html
import io
from dataclasses import asdict

from ..._optional import require
from ...errors import WorkbenchError
from ...session import Event
from .base import Panel

w = require("ipywidgets", "workbench app", "ui")

FROM_MODEL = "from model"


def _values(text: str, what: str):
    """'0.485, 0.456, 0.406' -> (0.485, 0.456, 0.406); '' -> None."""
    text = text.strip()
    if not text:
        return None
    try:
        return tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise WorkbenchError(f"{what} must be numbers separated by commas, got '{text}'.") from None


def _png(image) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


class PreparationPanel(Panel):
    """How images become the model's input: preset, size, resize policy, layout, channel order,
    normalisation; Apply checks them against the model and shows one prepared image."""

    name, title = "preparation", "Input preparation"
    events = frozenset({Event.MODEL, Event.DATA})

    def __init__(self, ctx):
        from ...data import PRESETS, RESIZE_POLICIES

        super().__init__(ctx)
        req = self._requested()
        narrow, style = w.Layout(width="200px"), {"description_width": "70px"}

        def choice(label, options, key, tip):
            box = w.Dropdown(options=[FROM_MODEL, *options], value=req.get(key) or FROM_MODEL, description=label,
                             tooltip=tip, layout=w.Layout(width="230px"), style=style)
            box.add_class(f"wb-prep-{key.replace('_', '-')}")
            return box

        self.preset = choice("Preset", list(PRESETS), "preset", "channel order, normalisation and resize policy")
        self.resize = choice("Resize", list(RESIZE_POLICIES), "resize",
                             "stretch; crop = shorter side then centre crop; letterbox = keep aspect and pad")
        self.layout = choice("Layout", ["NCHW", "NHWC"], "layout", "where the channels sit")
        self.order = choice("Channels", ["RGB", "BGR"], "channel_order", "channel order the model takes")
        size = tuple(req.get("size") or (0, 0))
        self.height = w.BoundedIntText(value=size[0] or 0, min=0, max=16384, description="Height", layout=narrow,
                                       style=style, tooltip="0: the model's (or each image's own, for dynamic H)")
        self.width = w.BoundedIntText(value=size[1] or 0, min=0, max=16384, description="Width", layout=narrow,
                                      style=style, tooltip="0: the model's (or each image's own, for dynamic W)")
        self.height.add_class("wb-prep-height")
        self.width.add_class("wb-prep-width")
        self.pad = w.FloatText(value=req.get("pad_value", 0.0), description="Pad value", layout=narrow, style=style,
                               tooltip="letterbox padding in pixels 0..255, before normalisation")

        def numbers(label, key, tip):
            v = req.get(key)
            text = w.Text(value="" if v is None else ", ".join(f"{x:g}" for x in (v if isinstance(v, (list, tuple))
                                                                                  else [v])),
                          description=label, placeholder="from preset / model", tooltip=tip,
                          layout=w.Layout(width="290px"), style=style)
            text.add_class(f"wb-prep-{key}")
            return text

        self.scale = numbers("Scale", "scale", "pixels (0..255) are multiplied by this first")
        self.mean = numbers("Mean", "mean", "one value or one per channel, in scaled units")
        self.std = numbers("Std", "std", "one value or one per channel, in scaled units (not 0)")
        self.apply = w.Button(description="Apply & preview", icon="eye", button_style="info",
                              tooltip="check the preparation against the model and show one prepared image",
                              layout=w.Layout(width="auto"))
        self.apply.add_class("wb-prep-apply")
        self.apply.on_click(lambda _: self.runner.guard(self.apply_fields)())
        self.busy_controls = [self.apply]
        self.error = w.HTML()
        self.error.add_class("wb-prep-error")
        self.sources = w.HTML()
        self.sources.add_class("wb-prep-sources")
        self.image = w.Image(format="png", layout=w.Layout(max_width="224px", max_height="224px"))
        self.image.add_class("wb-prep-image")
        self.info = w.HTML()
        self.info.add_class("wb-prep-info")
        wrap = w.Layout(flex_flow="row wrap")
        fields = w.VBox([w.HBox([self.preset, self.resize, self.layout, self.order], layout=wrap),
                         w.HBox([self.height, self.width, self.pad], layout=w.Layout(flex_flow="row wrap")),
                         w.HBox([self.scale, self.mean, self.std], layout=w.Layout(flex_flow="row wrap")),
                         w.HBox([self.apply, self.error], layout=w.Layout(align_items="center"))])
        self.widget = w.VBox([w.HTML("<b>Input preparation</b>"), fields,
                              w.HBox([w.VBox([self.image, self.info]), self.sources],
                                     layout=w.Layout(flex_flow="row wrap", grid_gap="12px"))],
                             layout=w.Layout(width="100%"))
        self.widget.add_class("wb-prep")

    def _requested(self) -> dict:
        """The session's requested fields (a Session-level preset as the preset field)."""
        d = self.session.data_settings
        req = dict(d.preparation or {})
        req = req if "inputs" not in req else {}
        if d.preset and not req.get("preset"):
            req["preset"] = d.preset
        return req

    # ------------------------------------------------------------------ actions
    def request(self) -> dict:
        """The fields set in the panel (what was left on "from the model" is not in it)."""
        req = {}
        for key, box in (("preset", self.preset), ("resize", self.resize), ("layout", self.layout),
                         ("channel_order", self.order)):
            if box.value != FROM_MODEL:
                req[key] = box.value
        if self.height.value or self.width.value:
            req["size"] = (self.height.value or None, self.width.value or None)
        if self.pad.value:
            req["pad_value"] = float(self.pad.value)
        scale = _values(self.scale.value, "Scale")
        if scale is not None:
            if len(scale) != 1:
                raise WorkbenchError(f"Scale is one number, got {len(scale)}.")
            req["scale"] = scale[0]
        for key, text in (("mean", self.mean), ("std", self.std)):
            v = _values(text.value, key.capitalize())
            if v is not None:
                req[key] = v
        return req

    def apply_fields(self) -> None:
        """Set the session's preparation from the panel (checked against the model), then preview."""
        s = self.session
        try:
            # the panel's preset is the request's; none left in the settings beside it
            s.set_data(**{**asdict(s.data_settings), "preset": None, "preparation": self.request()})
        except WorkbenchError as exc:
            self.show_error(str(exc))
            return
        self.show_error(None)  # the DATA event redrew the sources and the preview

    def show_error(self, message: str | None) -> None:
        self.error.value = "" if not message else (
            "<div style='color:#a00;background:#fee;border:1px solid #e99;padding:2px 6px;font-size:12px'>"
            f"{html.escape(message)}</div>")

    # ------------------------------------------------------------------ views
    def refresh(self, event) -> None:
        s = self.session
        preset = self._requested().get("preset") or FROM_MODEL
        if preset in self.preset.options:  # settings changed from code or a loaded project
            self.preset.value = preset
        if s.model_info is None:
            self.sources.value, self.info.value = "<i>No model open.</i>", ""
            return
        try:
            prep = s.preparation
            preview = s.data.preview(0) if prep is not None and hasattr(s.data, "preview") else None
        except WorkbenchError as exc:
            self.show_error(str(exc))
            return
        if prep is None:
            self.sources.value = "<i>The data is not an image folder: its arrays are fed as they are.</i>"
            self.image.value, self.info.value = b"", ""
            return
        text = prep.describe()
        body, _, warn = text.partition("\nWARNING: ")
        self.sources.value = (f"<pre style='font-size:11px;margin:0'>{html.escape(body)}</pre>" +
                              (f"<div class='wb-prep-warning' style='color:#7a5200;background:#fff3cd;"
                               f"border:1px solid #e0b000;padding:2px 6px;font-size:12px'>⚠ {html.escape(warn)}</div>"
                               if warn else ""))
        if preview is None:
            self.image.value, self.info.value = b"", "<i>Give an image folder to see a prepared input.</i>"
            return
        self.image.value = _png(preview["image"])
        name = preview["file"].replace("\\", "/").rsplit("/", 1)[-1]
        self.info.value = (f"<div class='wb-prep-stats' style='font-size:12px'>{html.escape(name)}<br>"
                           f"shape <b>{'x'.join(str(d) for d in preview['shape'])}</b> · "
                           f"min <b>{preview['min']:.4g}</b> · max <b>{preview['max']:.4g}</b></div>")
