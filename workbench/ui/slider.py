"""A range slider that reports only what the user does (anywidget).

ipywidgets' FloatSlider sends values back to Python when Python sets it (clamping to an old
range, snapping to its step, or replaying an earlier value when updates arrive quickly), and
each of those looked like a drag: a live preview the user never asked for. This slider's
``value`` goes from Python to the browser only; the browser sends a message for each move
of the user's hand (``input`` events), which Python hands to the :meth:`DragSlider.on_drag`
callbacks.
"""
from __future__ import annotations

from typing import Callable

from .._optional import require

anywidget = require("anywidget", "workbench app", "ui")
traitlets = require("traitlets", "workbench app", "ui")

_ESM = r"""
function render({ model, el }) {
  const wrap = document.createElement("div");
  wrap.className = "wb-drag-slider";
  const label = document.createElement("label");
  const input = document.createElement("input");
  input.type = "range";
  input.min = "0";
  input.max = "1";
  wrap.append(label, input);
  el.append(wrap);
  const sync = () => {
    label.textContent = model.get("description");
    wrap.title = model.get("tooltip") || "";
    input.step = String(model.get("step"));
    input.value = String(model.get("value"));
    input.disabled = model.get("disabled");
  };
  input.addEventListener("input", () => model.send({ type: "drag", value: Number(input.value) }));
  // Python puts the thumb back where its value already is (the model did not change: no sync)
  model.on("msg:custom", (msg) => { if (msg && msg.type === "show") input.value = String(msg.value); });
  model.on("change", sync);
  sync();
}
export default { render };
"""

_CSS = """
.wb-drag-slider { display: flex; align-items: center; gap: 6px; width: 100%; }
.wb-drag-slider label { white-space: nowrap; font-size: var(--jp-widgets-font-size, 13px); }
.wb-drag-slider input { flex: 1 1 auto; min-width: 80px; }
"""


class DragSlider(anywidget.AnyWidget):
    """A 0-1 slider whose moves by the user reach Python as :meth:`on_drag` callbacks.

    Traits (Python to browser): ``value`` (position), ``step``, ``description``, ``tooltip``,
    ``disabled``.
    """

    _esm = _ESM
    _css = _CSS
    value = traitlets.Float(0.5).tag(sync=True)
    step = traitlets.Float(0.0005).tag(sync=True)
    description = traitlets.Unicode("").tag(sync=True)
    tooltip = traitlets.Unicode("").tag(sync=True)
    disabled = traitlets.Bool(False).tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._drag: list[Callable[[float], None]] = []
        self.position = self.value  # where the thumb is (set by Python or moved by the user)
        self.observe(lambda ch: setattr(self, "position", ch["new"]), names="value")
        self.on_msg(self._message)

    def on_drag(self, callback: Callable[[float], None]) -> None:
        """Call ``callback(position)`` for each move the user makes."""
        self._drag.append(callback)

    def show(self, position: float) -> None:
        """Put the thumb at ``position`` from Python. The browser's thumb may have moved since Python
        last set ``value`` (drags are not written back): setting the same value again changes
        nothing in the browser's model, so the thumb is moved by a message then."""
        position = min(max(float(position), 0.0), 1.0)
        if position == self.value and position != self.position:
            self.send({"type": "show", "value": position})
        self.value = position
        self.position = position

    def drag(self, position: float) -> None:
        """What the user's moving the slider to ``position`` does (for scripts and tests)."""
        self.value = min(max(float(position), 0.0), 1.0)
        self._moved(self.value)

    def _moved(self, position: float) -> None:
        # not written back to ``value``: the browser shows it already, and an echo arriving
        # while the hand moves on would pull the thumb back
        self.position = position
        for cb in list(self._drag):
            cb(position)

    def _message(self, widget, content, buffers) -> None:
        if isinstance(content, dict) and content.get("type") == "drag":
            self._moved(min(max(float(content.get("value", 0.0)), 0.0), 1.0))
