"""Rebuild and results: the Rebuild bar with the stale mark, metrics of the last two builds (the
written TensorRT file's, with their context: top-1 as counts, the FP32 output's scale, a flag when
it is near zero, changes labelled as changes), per-layer SQNR chart."""
from __future__ import annotations

import html
import math

from ..._optional import require
from ...session import Event
from ...session.context import NEAR_ZERO_RMS, backend_choices, build_context
from .. import plots
from ..messages import Message, messages_html
from ..plotview import PlotView
from ..style import fmt_delta, fmt_num, fmt_seconds
from .base import Panel

w = require("ipywidgets", "workbench app", "ui")

#: (summary key, label, tooltip, significant digits)
METRICS = (
    ("top1_agreement", "top-1 agreement", "share of samples whose top-1 class equals FP32's (0–1)", 4),
    ("top1_in_ref_top5", "FP32 top-1 in top-5", "share of samples whose FP32 top-1 class is in the top 5", 4),
    ("cosine", "cosine", "cosine similarity of the output with FP32's (1 = identical)", 6),
    ("sqnr_db", "SQNR [dB]", "output signal-to-quantization-noise ratio vs FP32 (higher is better)", 4),
    ("max_abs_error", "max |error|", "largest absolute difference from FP32's output", 3),
    ("mean_abs_error", "mean |error|", "mean absolute difference from FP32's output", 3),
    ("metric", "your metric", "the user metric function (higher is better)", 4),
)
_SKIP = {k for k, *_ in METRICS} | {"latency_ms_b1", "samples", "reference_rms", "near_ties", "top1_margin"}
CHART_HEIGHT = 210


def _latency(b) -> str:
    if b is None:
        return "–"
    if b.latency_ms is None or (isinstance(b.latency_ms, float) and math.isnan(b.latency_ms)):
        return "not measured"
    return f"{b.latency_ms:.2f}"


def _extra_rows(builds) -> list:
    """Numbers a build carries beyond the usual metrics (e.g. an engine's size or build time
    from a build-only backend), shown as they are: nothing is made up for a missing one."""
    keys = []
    for b in builds:
        if b is None:
            continue
        for k, v in b.summary.items():
            if k not in _SKIP and k not in keys and isinstance(v, (int, float)) and not isinstance(v, bool):
                keys.append(k)
    return [(k.replace("_", " "), [fmt_num(b.summary.get(k)) if b is not None and k in b.summary else "–"
                                   for b in builds]) for k in keys]


def _metric_cell(summary: dict, key: str, digits: int) -> str:
    """A metric with its context: top-1 shares with counts (38/41), SQNR and errors flagged when
    the FP32 output is near zero."""
    value, n = summary.get(key), summary.get("samples")
    text = fmt_num(value, digits)
    if key.startswith("top1") and isinstance(value, float) and n and math.isfinite(value):
        text += f" ({round(value * n)}/{n})"
    rms = summary.get("reference_rms")
    if key in ("sqnr_db", "max_abs_error", "mean_abs_error") and rms is not None and rms < NEAR_ZERO_RMS:
        text += " ⚠ FP32 output near zero"
    return text


def _change(before, after, key: str, digits: int) -> str:
    """``after - before`` of one metric, signed (a change, never read as a level)."""
    a, b = before.summary.get(key), after.summary.get(key)
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or not math.isfinite(b - a):
        return "–"
    return fmt_delta(b - a, {4: 4, 6: 6}.get(digits, 3) if key != "sqnr_db" else 2)


def context_messages(build) -> list:
    """Sentences that let the figures of ``build`` be read: the samples and the FP32 output's scale,
    what the SQNR means as an error share, a warning when the output is near zero."""
    ctx = build_context(build)
    if ctx["rms"] is None:
        return []
    sqnr = build.summary.get("sqnr_db")
    text = (f"Compared with the FP32 output (RMS {fmt_num(ctx['rms'], 3)})"
            + (f" on {ctx['samples']} evaluation samples" if ctx["samples"] else ""))
    if ctx["near_zero"]:
        return [Message("warning", text + f": that output is near zero, so its SQNR ({fmt_num(sqnr, 3)} dB) "
                                          "compares the error with almost nothing; read max |error| "
                                          f"({fmt_num(build.summary.get('max_abs_error'), 3)}) against the "
                                          "output's RMS instead.")]
    if ctx["error_rms_share"] is not None:
        text += f"; SQNR {fmt_num(sqnr, 3)} dB is an error RMS of {fmt_num(100 * ctx['error_rms_share'], 3)} % of it"
    return [Message("note", text + ".")]


def metrics_html(before, after, stale: list | None = None) -> str:
    """A before/after table of the last two builds (``before`` may be None) with a column of the
    changes, marked stale with the reasons when the plan or ranges changed since ``after`` was built."""
    builds = [before, after] if before is not None else [after]
    rows = []
    for key, label, tip, digits in METRICS:
        if key in after.summary or (before is not None and key in before.summary):
            change = [_change(before, after, key, digits)] if before is not None else []
            rows.append((label, tip, [_metric_cell(b.summary, key, digits) for b in builds] + change))
    rows.append(("INT8 / FP16 nodes", "nodes in each precision in the built plan",
                 [f"{b.n_int8} / {b.n_fp16}" for b in builds]))
    rows.append(("latency [ms]", "batch-1 latency, when 'measure latency' is ticked and the backend can time here "
                                 "(see the notes)", [_latency(b) for b in builds]))
    rows.append(("backend", "where the build was made and timed", [html.escape(str(b.backend)) for b in builds]))
    rows += [(label, "reported by the backend", cells) for label, cells in _extra_rows(builds)]
    head = "<tr><th>metric</th>" + "".join(
        f"<th>build {b.id}{' (before)' if b is before else ' (latest)'}</th>" for b in builds) + (
        "<th title='latest minus before'>change</th>" if before is not None else "") + "</tr>"
    bold = len(builds) - 1  # the latest build's column
    body = "".join(f"<tr><td title='{html.escape(tip)}'>{html.escape(label)}</td>"
                   + "".join(f"<td>{'<b>' + c + '</b>' if i == bold else c}</td>" for i, c in enumerate(cells))
                   + "</tr>" for label, tip, cells in rows)
    notes = "".join(f"<div class='wb-note'>{html.escape(str(n))}</div>" for n in after.notes)
    if getattr(after, "semantics", ""):
        notes += f"<div class='wb-note'>accuracy: {html.escape(after.semantics)}</div>"
    files = "".join(f"<div class='wb-note'>{html.escape(k)}: <code>{html.escape(str(v))}</code></div>"
                    for k, v in (after.paths or {}).items())
    state = "stale" if stale else "fresh"
    mark = ("<div class='wb-stale-note'>These numbers are out of date: " + html.escape("; ".join(stale))
            + ". Press Rebuild.</div>") if stale else ""
    return (f"{mark}<table class='wb-metrics {'wb-is-stale' if stale else ''}' data-build='{after.id}' "
            f"data-state='{state}'>{head}{body}</table>{messages_html(context_messages(after))}"
            f"<div class='wb-note'>against the FP32 model on the evaluation data; build + evaluation took "
            f"{fmt_seconds(after.seconds)}</div>{notes}{files}")


class ResultsPanel(Panel):
    name, title = "results", "Results"
    events = frozenset({Event.BUILD, Event.MODEL, Event.SELECTION, Event.PLAN, Event.RANGES})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.rebuild = w.Button(description="Rebuild & evaluate", button_style="primary", icon="refresh",
                                tooltip="export the current plan and ranges and compare with FP32",
                                layout=w.Layout(width="auto", min_width="170px"))
        self.rebuild.add_class("wb-rebuild")
        self.rebuild.on_click(lambda _: self.run_rebuild())
        self.busy_controls = [self.rebuild]
        self.latency = w.Checkbox(value=False, description="measure latency", indent=False,
                                  tooltip="also time batch 1 (ONNX Runtime CPU, or the TensorRT engine)",
                                  layout=w.Layout(width="auto", flex="0 0 auto"))
        options, note = self._backends()
        self.backend = w.Dropdown(options=options, value=options[0][1], description="Backend",
                                  tooltip="where to build and time", layout=w.Layout(width="270px"),
                                  style={"description_width": "56px"})
        self.backend.add_class("wb-backend")
        self.backend_note = w.HTML(note, layout=w.Layout(width="auto", max_width="380px"))
        self.stale = w.HTML(layout=w.Layout(flex="1 1 auto", min_width="0"))
        self.stale.add_class("wb-stale")
        self.toolbar = w.HBox([self.rebuild, self.latency, self.backend, self.backend_note, self.stale],
                              layout=w.Layout(align_items="center", flex_flow="row wrap", width="100%"))
        self.metrics = w.HTML("<i>No builds yet.</i>", layout=w.Layout(min_width="0"))
        self.metrics.add_class("wb-results")
        self.layer_errors = PlotView(plots.layer_error_figure([], [], height=CHART_HEIGHT))
        self.layer_errors.add_class("wb-layer-errors")
        self.layer_errors.on_click("layers", lambda pt: self.runner.guard(self.ctx.select)(pt["customdata"]))
        self.widget = w.GridBox([self.metrics, self.layer_errors],
                                layout=w.Layout(grid_template_columns="minmax(0, 2fr) minmax(0, 3fr)",
                                                grid_gap="12px", width="100%"))

    @staticmethod
    def _backends() -> tuple:
        """Backend choices (``(label, (backend, TensorRT flavor))``, one per installed TensorRT
        flavor that can build here: :func:`workbench.session.context.backend_choices`) and a note
        on what each can do here (e.g. TensorRT-RTX builds but cannot time without a GPU)."""
        options, notes = [], []
        for c in backend_choices():
            if c["available"]:
                options.append((c["label"] + ("" if c["runs"] else " (build only)"), (c["backend"], c["flavor"])))
            if not c["available"] or not c["runs"]:
                short = "builds only (no GPU)" if "build only" in c["reason"] else \
                    c["reason"].split(" (")[0].split(": running")[0]
                notes.append(f"<span style='font-size:11px;color:#666' title='{html.escape(c['reason'])}'>"
                             f"{html.escape(c['label'])}: {html.escape(short)}</span>")
        return options or [("ONNX Runtime", ("ort", None))], " ".join(notes)

    def run_rebuild(self) -> None:
        latency, (backend, flavor) = self.latency.value, self.backend.value
        extra = {"trt_flavor": flavor} if backend == "trt" and flavor else {}
        self.runner.run("Rebuilding and evaluating",
                        lambda progress, cancel: self.session.rebuild(latency=latency, backend=backend, **extra),
                        cancellable=False)

    def redraw_stale(self) -> None:
        s = self.session
        reasons = s.staleness()
        if not s.history:
            self.stale.value = ("<span class='wb-stale-badge' data-state='none' title='press Rebuild to compare the "
                                "quantized model with FP32'>no build yet</span>")
        elif reasons:
            self.stale.value = ("<span class='wb-stale-badge' data-state='stale' title='"
                                + html.escape("; ".join(reasons)) + "'>⚠ out of date: "
                                + html.escape(reasons[0]) + (f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else "")
                                + "</span>")
        else:
            self.stale.value = (f"<span class='wb-stale-badge' data-state='fresh' title='the results below are for "
                                f"the current plan and ranges'>✓ up to date (build {s.history[-1].id})</span>")
        self.rebuild.button_style = "danger" if reasons else "primary"
        if s.history:
            prev = s.history[-2] if len(s.history) > 1 else None
            self.metrics.value = metrics_html(prev, s.history[-1], reasons)

    def redraw_layers(self) -> None:
        s = self.session
        if not s.history or s.history[-1].per_layer is None:
            return
        pl = s.history[-1].per_layer
        fig = plots.layer_error_figure(list(pl["node"]), list(pl["sqnr_db"]),
                                       precisions=[str(p).upper() for p in pl["precision"]],
                                       selected=s.selected, height=CHART_HEIGHT)
        self.layer_errors.show(fig)

    def show_selection(self) -> None:
        """Outline the selected layer's bar (no redraw of the chart)."""
        bars = self.layer_errors.data[0] if self.layer_errors.data else None
        if bars is None or bars.customdata is None:
            return
        sel = self.session.selected
        self.layer_errors.restyle("layers", **{"marker.line.width": [3 if n == sel else 0 for n in bars.customdata]})

    def refresh(self, event) -> None:
        s = self.session
        if event in (Event.BUILD, Event.ALL, Event.MODEL):
            if not s.history:
                self.metrics.value = "<i>No builds yet: press Rebuild.</i>"
            self.redraw_layers()
        if event == Event.SELECTION:
            self.show_selection()
            return
        self.redraw_stale()
