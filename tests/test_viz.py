"""The teaching figures: what each panel holds, and that each panel reads on its own."""

import math
from collections import defaultdict

from advunlearn.course.viz import (CHANCE_LA, LivePlot, confidence_panels, method_colors, mia_figure,
                                   symmetric_scale, tradeoff_figure, unlearning_figure)


def _records(n=3):
    return [dict(iteration=10 * i, attacker_loss=-1.2 + 0.01 * i, attacker_loss_eval=-1.25 + 0.1 * (i == 0), ce=0.01,
                 vss=250.0 - i, vss_eval=249.0, forget_acc=90.0 - i, retain_acc=100.0, val_acc=85.0, attacker_acc=55.0,
                 attacker_auc=0.6, corr_diag_mean=0.01, corr=[[0.08, -0.03], [0.02, -0.11]]) for i in range(n)]


def _panel_of(trace) -> tuple:
    return (trace.xaxis or "x", trace.yaxis or "y")


def _no_shared_colour(fig):
    """No two line/bar traces drawn in one panel share a colour (heatmaps and markers-only marks aside)."""
    seen = defaultdict(list)
    for t in fig.data:
        if t.type == "heatmap" or getattr(t, "mode", None) == "markers":
            continue
        color = (t.line.color if t.type == "scatter" else t.marker.color)
        assert color, f"trace {t.name!r} has no explicit colour"
        seen[_panel_of(t)].append((color, t.name))
    for panel, cs in seen.items():
        colours = [c for c, _ in cs]
        assert len(set(colours)) == len(colours), (panel, cs)
    return seen


def test_unlearning_figure_panels():
    fig = unlearning_figure(_records(), "t")
    by = {(t.yaxis, t.name): t for t in fig.data}
    assert list(by[("y", "held-out pairs")].y) == [-1.15, -1.25, -1.25]
    assert list(by[("y2", "AUC ×100")].y) == [60.0] * 3
    assert list(by[("y4", "held-out pairs")].y) == [0.01] * 3
    # V_ss has a panel of its own (no second y axis beside another panel)
    assert by[("y6", "loop batches")].yaxis != by[("y5", "D_r batches")].yaxis and "yaxis9" not in fig.layout
    # forget and retain accuracy stay distinguishable where they coincide
    f, r = by[("y3", "D_f (forget)")].line, by[("y3", "D_r (retain)")].line
    assert (f.dash, f.width) != (r.dash, r.width)
    heat = next(t for t in fig.data if t.type == "heatmap")
    assert [list(r) for r in heat.z] == [[0.08, -0.03], [0.02, -0.11]]
    # the chance line of L_A, and no fixed width
    assert any(math.isclose(s.y0, CHANCE_LA) for s in fig.layout.shapes)
    assert fig.layout.width is None and fig.layout.title.text == "t"
    for i in range(1, 8):
        assert fig.layout[f"xaxis{'' if i == 1 else i}"].title.text
        assert fig.layout[f"yaxis{'' if i == 1 else i}"].title.text


def test_the_la_panel_holds_the_first_values_and_chance():
    recs = _records(4)
    recs[0].update(attacker_loss=-0.9, attacker_loss_eval=-1.0)  # the attacker winning at the start
    lo, hi = unlearning_figure(recs).layout.yaxis.range
    first = [recs[0]["attacker_loss"], recs[0]["attacker_loss_eval"]]
    assert lo < CHANCE_LA < hi and all(lo < v < hi for v in first)
    # and nothing is written over the panel's data: which way is up is in the axis title
    assert "attacker winning" in unlearning_figure(recs).layout.yaxis.title.text
    assert not [a for a in unlearning_figure(recs).layout.annotations if "winning" in (a.text or "")]


def test_each_panel_has_its_own_legend_and_colours():
    fig = unlearning_figure(_records())
    panels = _no_shared_colour(fig)
    legends = defaultdict(set)
    for t in fig.data:
        if t.type != "heatmap":
            legends[t.legend or "legend"].add(_panel_of(t))
    # one legend per panel, and every line panel has one
    assert all(len(p) == 1 for p in legends.values()) and len(legends) == len(panels) == 6
    for name in legends:
        assert fig.layout[name].orientation == "h"


def test_the_correlation_heatmap_fits_its_values_and_its_bar_is_beside_it():
    fig = unlearning_figure(_records())
    heat = next(t for t in fig.data if t.type == "heatmap")
    assert heat.zmax == -heat.zmin == symmetric_scale(heat.z) and 0.11 <= heat.zmax < 0.12
    x_end = fig.layout[heat.xaxis.replace("x", "xaxis")].domain[1]
    y0, y1 = fig.layout[heat.yaxis.replace("y", "yaxis")].domain
    assert 0 <= heat.colorbar.x - x_end <= 0.03 and y0 <= heat.colorbar.y <= y1
    assert math.isclose(heat.colorbar.len, y1 - y0)


def test_live_plot_collects_without_a_display():
    live = LivePlot("x", display=False)
    for r in _records(4):
        live(r)
    assert len(live.records) == 4 and live.draws == 0
    assert [t.name for t in live.figure.data][0] == "loop batches (attacker's steps)"


def _conf_records():
    return [{"method": m, "confidence": {"forget": [0.0, 0.1, 0.9], "test": [0.05, 0.25, 0.7]}}
            for m in ("retrain", "neggrad_plus", "scrub_r", "ours")]


def test_confidence_panels_use_labels_log_axes_and_highlight_ours():
    fig = confidence_panels(_conf_records() + [{"method": "old"}], before={"forget": [0.0, 0.0, 1.0], "test": [0.0, 1.0]})
    titles = [a.text for a in fig.layout.annotations]
    assert titles[:4] == ["Retrain", "NegGrad+", "SCRUB+R", "<b>Ours</b>"]
    assert not any("neggrad_plus" in t or "scrub_r" in t for t in titles)
    names = {t.name for t in fig.data}
    assert {"D_f (forget set)", "D_t (test set)", "D_f under Retrain (target)", "D_f under θ₀ (before)"} <= names
    assert all(fig.layout[f"yaxis{'' if i == 1 else i}"].type == "log" for i in range(1, 5))
    lo, hi = fig.layout.yaxis.range
    assert lo <= math.log10(0.05) and hi >= 0  # the smallest non-empty bin and a full share of 1 both show
    # Ours framed: one rectangle, around its panel (the 4th)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 1 and rects[0].x0 < fig.layout.xaxis.domain[1] and rects[0].y1 <= fig.layout.yaxis4.domain[1] + 1e-9
    _no_shared_colour(fig)


def test_mia_figure_one_colour_per_method_labels_and_ours_outlined():
    from advunlearn.methods import names

    methods = list(names())
    colours = method_colors(methods)
    assert len(set(colours.values())) == len(methods)
    recs = [{"method": m, "dataset": "d", "scheme": "random", "sparsity": 0.0, "seed": 0, "UA": 1, "RA": 1, "TA": 1,
             "MIA_efficacy": 1, "mia": {"confidence": 10.0 + i, "entropy": 5.0, "m_entropy": 5.0, "correctness": 1.0,
                                        "loss": 2.0}} for i, m in enumerate(methods)]
    fig = mia_figure(recs, "d", "random", 0.0)
    bars = {t.name: t for t in fig.data}
    from advunlearn.methods import label

    assert set(bars) == {label(m) for m in methods}
    assert len({t.marker.color for t in fig.data}) == len(fig.data)
    assert bars["Ours"].marker.line.width > max(t.marker.line.width for t in fig.data if t.name != "Ours")
    assert bars["Retrain"].marker.pattern.shape == "/"
    assert all(t.error_y.array is None for t in fig.data)  # one seed: no error bars


def test_tradeoff_figure_one_panel_per_metric():
    pts = [{"alpha": a, "beta": b, "UA": a + 10 * b, "RA": 99 - a, "TA": 85.0, "MIA_efficacy": 5 + a, "disparity": 3 - a / 10}
           for a in (0.0, 1.0, 4.0) for b in (0.0, 0.01, 0.1)]
    ret = {"UA": 15.0, "RA": 99.0, "TA": 84.0, "MIA_efficacy": 20.0}
    fig = tradeoff_figure(pts, "alpha", "t", retrain=ret, series="beta",
                          keys=("UA", "RA", "TA", "MIA_efficacy", "disparity"), mark={"alpha": 1.0, "beta": 0.01})
    assert [a.text for a in fig.layout.annotations] == ["UA", "RA", "TA", "MIA-efficacy", "Avg. Disparity"]
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == ["β=0", "β=0.01", "β=0.1", "Retrain (target)", "the course's configuration"]
    _no_shared_colour(fig)
    # each panel's range holds its values and Retrain's
    lo, hi = fig.layout.yaxis.range
    assert lo < 0 and hi > 15.0
