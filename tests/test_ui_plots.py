"""Plot functions: assert on the figures' data (no browser)."""
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("plotly")
from workbench.ui import plots  # noqa: E402


def _half_normal_hist(n=20000, bins=2048, top=6.0, seed=0):
    x = np.abs(np.random.default_rng(seed).standard_normal(n))
    hist, _ = np.histogram(x, bins=bins, range=(0, top))
    return hist, top / bins


def test_histogram_has_one_line_per_method_and_chosen():
    hist, width = _half_normal_hist()
    fig = plots.histogram_figure(hist, width, {"minmax": 5.5, "entropy": 3.0, "mse": 2.5}, 3.0)
    metas = [t.meta for t in fig.data]
    assert metas[:2] == ["histogram", "clipped"]
    for m, v in [("minmax", 5.5), ("entropy", 3.0), ("mse", 2.5), ("chosen", 3.0)]:
        (line,) = plots.traces_by_meta(fig, m)
        assert tuple(line.x) == (v, v)
    assert fig.layout.yaxis.type == "log"
    assert plots.histogram_figure(hist, width, log_y=False).layout.yaxis.type == "linear"


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
    assert f"clipped {100 * frac:.4g}%" in fig.layout.title.text


def test_histogram_rebins_for_display_without_losing_counts():
    hist, width = _half_normal_hist()
    fig = plots.histogram_figure(hist, width, max_bins=256)
    (kept,) = plots.traces_by_meta(fig, "histogram")
    assert len(kept.x) == 256
    assert sum(kept.y) == hist.sum()
    assert kept.width == pytest.approx(width * 8)


def test_histogram_manual_line_only_when_given():
    hist, width = _half_normal_hist()
    assert not plots.traces_by_meta(plots.histogram_figure(hist, width, {}, 3.0), "manual")
    (m,) = plots.traces_by_meta(plots.histogram_figure(hist, width, {}, 3.0, manual_amax=1.25), "manual")
    assert tuple(m.x) == (1.25, 1.25)


def test_layer_error_figure_colours_by_precision_and_carries_node_names():
    fig = plots.layer_error_figure(["a", "b", "c"], [30.0, 12.0, np.nan],
                                   precisions=["INT8", "FP16", "FP32"], selected="b")
    (bars,) = fig.data
    assert list(bars.customdata) == ["a", "b", "c"]
    assert bars.marker.color[1] == plots.PRECISION_COLORS["FP16"]
    assert list(bars.marker.line.width) == [0, 3, 0]
    assert bars.y[0] == 30.0


def test_tradeoff_figure_drops_rows_without_cost_and_labels_points():
    df = pd.DataFrame({"build": [0, 1, 2], "latency_ms": [5.0, None, 3.0],
                       "top1_agreement": [1.0, 0.9, 0.95], "n_int8": [0, 10, 20]})
    fig = plots.tradeoff_figure(df, highlight=2)
    (pts,) = fig.data
    assert list(pts.customdata) == [0, 2]
    assert list(pts.x) == [5.0, 3.0]
    assert list(pts.marker.size) == [10, 16]
    fig2 = plots.tradeoff_figure(df, x="n_int8")
    assert list(fig2.data[0].x) == [0, 10, 20]
    with pytest.raises(KeyError):
        plots.tradeoff_figure(df, x="nope")


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
    assert [t.meta for t in fw.data] == ["histogram", "clipped", "chosen", "manual"]
