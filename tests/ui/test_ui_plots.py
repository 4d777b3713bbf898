"""Plot functions: assert on the figures' data (no browser)."""
import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("plotly")
from workbench.errors import InternalError  # noqa: E402
from workbench.ui import plots  # noqa: E402


def _half_normal_hist(n=20000, bins=2048, top=6.0, seed=0):
    x = np.abs(np.random.default_rng(seed).standard_normal(n))
    hist, _ = np.histogram(x, bins=bins, range=(0, top))
    return hist, top / bins


def test_histogram_has_one_line_per_method_and_chosen():
    hist, width = _half_normal_hist()
    fig = plots.histogram_figure(hist, width, {"minmax": 5.5, "entropy": 3.0, "mse": 2.5}, 3.2)
    metas = [t.meta for t in fig.data]
    assert metas[:2] == ["histogram", "clipped"]
    for m, v in [("minmax", 5.5), ("entropy", 3.0), ("mse", 2.5), ("chosen", 3.2)]:
        (line,) = plots.traces_by_meta(fig, m)
        assert tuple(line.x) == (v, v)
    assert fig.layout.yaxis.type == "log"
    assert plots.histogram_figure(hist, width, log_y=False).layout.yaxis.type == "linear"


def test_histogram_x_range_covers_every_threshold_and_the_data_max():
    hist, width = _half_normal_hist()
    # a threshold beyond the last non-empty bin (like min-max 59.1 on an axis ending at 57)
    fig = plots.histogram_figure(hist, width, {"minmax": 7.5, "model": 0.4}, 3.0, data_max=7.4)
    lo, hi = fig.layout.xaxis.range
    assert lo == 0 and hi > 7.5
    assert fig.layout.xaxis.autorange is False
    # lines the data carries beyond the methods (an imported model's own threshold) are drawn too
    (model,) = plots.traces_by_meta(fig, "model")
    assert model.x[0] == 0.4 and model.line.color != plots.traces_by_meta(fig, "minmax")[0].line.color


def test_coinciding_thresholds_share_one_line_with_a_merged_label_and_one_flag_each():
    hist, width = _half_normal_hist()
    fig = plots.histogram_figure(hist, width, {"entropy": 4.0, "entropy_zero_fix": 4.0, "mse": 2.5}, 2.5)
    (both,) = plots.traces_by_meta(fig, "entropy")
    assert plots.traces_by_meta(fig, "entropy_zero_fix") == [both]
    assert both.name == "entropy = entropy_zero_fix 4"
    (chosen,) = plots.traces_by_meta(fig, "chosen")
    assert plots.traces_by_meta(fig, "mse") == [chosen] and chosen.name == "chosen = mse 2.5"
    (flags,) = plots.traces_by_meta(fig, "flags")
    at4 = [y for x, y in zip(flags.x, flags.y) if x == 4.0]
    assert len(at4) == 2 and len(set(at4)) == 2  # stacked, not drawn on top of each other
    assert len(set(flags.marker.color)) == 4  # chosen, mse, entropy, entropy_zero_fix
    # distinct values a little apart are named separately in one entry
    fig2 = plots.histogram_figure(hist, width, {"a": 4.0, "b": 4.01}, None)
    assert fig2.data[2].name == "a 4 ≈ b 4.01"


def test_histogram_clipped_trace_holds_mass_above_threshold():
    hist, width = _half_normal_hist()
    amax = 2.0
    fig = plots.histogram_figure(hist, width, None, amax, max_bins=0)
    (kept,) = plots.traces_by_meta(fig, "histogram")
    (clipped,) = plots.traces_by_meta(fig, "clipped")
    assert max(kept.x) <= amax < min(clipped.x)
    # no count is lost or duplicated between the two traces
    assert sum(kept.y) + sum(clipped.y) == hist.sum()
    # the bin holding amax counts pro rata: between "all of it" and "none of it"
    k = int(amax / width)
    frac = plots.clipped_fraction(hist, width, amax)
    assert hist[k + 1:].sum() / hist.sum() <= frac <= hist[k:].sum() / hist.sum()
    assert f"clipped {100 * frac:.3g} %" in fig.layout.title.text
    (shade,) = fig.layout.shapes
    assert shade.x0 == amax and shade.x1 == fig.layout.xaxis.range[1]


def test_histogram_rebins_for_display_without_losing_counts():
    hist, width = _half_normal_hist()
    fig = plots.histogram_figure(hist, width, max_bins=256)
    (kept,) = plots.traces_by_meta(fig, "histogram")
    assert len(kept.x) <= 256
    assert sum(kept.y) == hist.sum()
    factor = kept.width / width
    assert factor == int(factor) > 1


def test_histogram_zoom_ranges_and_finer_bins():
    hist, width = _half_normal_hist()
    lines = {"minmax": 4.5, "mse": 2.0}
    full = plots.histogram_figure(hist, width, lines, 2.0, max_bins=128)
    kept = plots.histogram_figure(hist, width, lines, 2.0, zoom="chosen", max_bins=128)
    tail = plots.histogram_figure(hist, width, lines, 2.0, zoom="tail", max_bins=128)
    assert kept.layout.xaxis.range == (0.0, 2.5)
    assert tail.layout.xaxis.range[0] == pytest.approx(1.6) and tail.layout.xaxis.range[1] > 4.5
    assert kept.data[0].width < full.data[0].width  # a zoom shows finer bins


def test_histogram_manual_and_preview_lines_only_when_given():
    hist, width = _half_normal_hist()
    assert not plots.traces_by_meta(plots.histogram_figure(hist, width, {}, 3.0), "manual")
    fig = plots.histogram_figure(hist, width, {}, 3.0, manual_amax=1.25, preview_amax=2.0)
    (m,) = plots.traces_by_meta(fig, "manual")
    assert tuple(m.x) == (1.25, 1.25)
    (p,) = plots.traces_by_meta(fig, "preview")
    assert tuple(p.x) == (2.0, 2.0)


def test_layer_error_figure_colours_by_precision_and_carries_node_names():
    fig = plots.layer_error_figure(["a", "b", "c"], [30.0, 12.0, np.nan],
                                   precisions=["INT8", "FP16", "FP32"], selected="b")
    (bars,) = fig.data
    assert list(bars.customdata) == ["a", "b", "c"]
    assert bars.marker.color[1] == plots.PRECISION_COLORS["FP16"]
    assert list(bars.marker.line.width) == [0, 3, 0]
    assert bars.y[0] == 30.0
    assert "click" in fig.layout.title.text
    assert "click" not in plots.layer_error_figure(["a"], [1.0], interactive=False).layout.title.text


def test_tradeoff_figure_sorted_by_x_with_every_point_in_view():
    df = pd.DataFrame({"build": [0, 1, 2], "latency_ms": [5.0, None, 3.0],
                       "top1_agreement": [1.0, 0.9, 0.95], "n_int8": [59, 58, 58.6]})
    fig = plots.tradeoff_figure(df, highlight=2)
    (pts,) = fig.data
    assert list(pts.customdata) == [2, 0] and list(pts.x) == [3.0, 5.0]
    assert list(pts.marker.size) == [15, 9]
    fig2 = plots.tradeoff_figure(df, x="n_int8")
    xs = list(fig2.data[0].x)
    assert xs == sorted(xs)
    lo, hi = fig2.layout.xaxis.range
    assert lo < 58 and hi > 59  # build 0's point at 59 stays in view
    ylo, yhi = fig2.layout.yaxis.range
    assert 0.8 < ylo < 0.9 and 1.0 <= yhi < 1.05  # a fraction, zoomed, and said so
    assert "zoomed: from" in fig2.layout.yaxis.title.text
    with pytest.raises(InternalError):
        plots.tradeoff_figure(df, x="nope")


def test_tradeoff_fraction_axis_never_runs_past_one():
    one = pd.DataFrame({"build": [0], "n_int8": [10], "top1_agreement": [1.0]})
    ylo, yhi = plots.tradeoff_figure(one, x="n_int8").layout.yaxis.range
    assert ylo <= 0 and 1.0 <= yhi <= 1.05  # not 0-2 for a single point at 1


def test_tradeoff_chosen_point_is_a_star_outside_the_curve():
    curve = pd.DataFrame({"n_fallback": [0, 1, 2, 2], "n_int8": [49, 48, 47, 47],
                          "sqnr_db": [18.0, 19.0, 19.5, 20.1], "chosen": [False, False, False, True]})
    fig = plots.tradeoff_figure(curve, x="n_int8", y="sqnr_db", label="n_fallback", chosen="chosen")
    (line,) = plots.traces_by_meta(fig, "points")
    (star,) = plots.traces_by_meta(fig, "chosen")
    assert list(line.x) == [47, 48, 49] and list(star.y) == [20.1]


def test_curve_with_infinite_values_draws_and_serializes():
    x = np.arange(6.0)
    kl = np.array([np.inf, np.inf, 0.5, 0.2, 0.3, np.nan])
    fig = plots.curve_figure(x, kl, marker_x=3.0, title="KL")
    (curve,) = plots.traces_by_meta(fig, "curve")
    assert list(curve.y) == [None, None, 0.5, 0.2, 0.3, None]
    assert "3 of 6 points" in fig.layout.title.text
    json.loads(fig.to_json())  # valid JSON: no inf reaches the browser
    lo, hi = fig.layout.yaxis.range
    assert lo < 0.2 and hi > 0.5


def test_method_comparison_is_ratio_to_minmax():
    df = pd.DataFrame({"tensor": ["t0", "t1"], "minmax": [4.0, 2.0], "entropy": [2.0, 2.0],
                       "percentile": [1.0, 0.0]})
    fig = plots.method_comparison_figure(df)
    (ent,) = plots.traces_by_meta(fig, "entropy")
    assert list(ent.y) == [0.5, 1.0]
    (pct,) = plots.traces_by_meta(fig, "percentile")
    assert list(pct.y) == [0.25, 0.0]
    assert not plots.traces_by_meta(fig, "minmax")


def test_update_figure_in_place_keeps_widget_and_changes_data():
    go = pytest.importorskip("plotly.graph_objects")
    hist, width = _half_normal_hist()
    fw = go.FigureWidget(plots.histogram_figure(hist, width, {"minmax": 5.0}, 3.0))
    plots.update_figure_in_place(fw, plots.histogram_figure(hist, width, {"minmax": 4.0}, 2.0))
    (line,) = plots.traces_by_meta(fw, "minmax")
    assert tuple(line.x) == (4.0, 4.0)
    assert "2" in fw.layout.title.text
    # a different trace structure replaces the traces
    plots.update_figure_in_place(fw, plots.histogram_figure(hist, width, {}, 3.0, manual_amax=1.0))
    assert [t.meta for t in fw.data] == ["histogram", "clipped", "manual", "chosen", "flags"]
