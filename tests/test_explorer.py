"""The α/β explorer without training: a made-up grid behind the widgets."""

import pytest

pytest.importorskip("ipywidgets")

from advunlearn.course.explorer import Explorer, explorer_figure, metrics_html  # noqa: E402
from advunlearn.evaluation.metrics import avg_disparity  # noqa: E402

ALPHAS, BETAS = (0.0, 1.0, 5.0), (0.0, 0.01, 0.1)
RETRAIN = {"random": {"scheme": "random", "UA": 15.0, "RA": 99.0, "TA": 85.0, "MIA_efficacy": 20.0}}


def _grid():
    grid = {}
    for a in ALPHAS:
        for b in BETAS:
            grid[("random", a, b)] = {
                "scheme": "random", "alpha": a, "beta": b, "iterations": 7,
                "UA": 1.0 + 3 * a + 40 * b, "RA": 99.5 - a - 10 * b, "TA": 85.0 - a / 2, "MIA_efficacy": 5.0 + 2 * a + 50 * b,
                "curve": {"iteration": [0, 7], "attacker_acc": [60.0, 55.0 - a], "forget_acc": [100.0, 99.0 - a],
                          "retain_acc": [100.0, 99.0], "attacker_loss": [-1.2, -1.3], "val_acc": [85.0, 85.0]}}
    return grid


def _vlines(fig):
    return sorted((s.xref, s.x0) for s in fig.layout.shapes if s.x0 == s.x1 and s.type == "line")


def test_explorer_follows_the_sliders():
    grid = _grid()
    ran = []

    def fake_fresh(scheme, alpha, beta):
        ran.append((scheme, alpha, beta))
        return dict(grid[(scheme, alpha, beta)])

    ex = Explorer(grid, {"random": None}, retrain=RETRAIN, run_fresh=fake_fresh)
    assert ex.fresh_iterations == 7  # the fresh run repeats the grid's iteration count
    seen = {}
    for a in ALPHAS:
        for b in BETAS:
            ex.alpha.value, ex.beta.value = a, b
            p = grid[("random", a, b)]
            html = ex.numbers.value
            assert f"grid: random α={a:g} β={b:g}" in html and f"{p['UA']:.2f}" in html
            assert f"{avg_disparity(p, RETRAIN['random']):.2f}" in html and "Retrain (target)" in html
            # the fresh-run boxes follow the sliders
            assert (ex.fresh_alpha.value, ex.fresh_beta.value) == (a, b)
            fig = ex.figure()
            seen[(a, b)] = (ex.disparity(), _vlines(fig))
            # Retrain's value of every metric as a reference line in both trade-off panels
            hlines = {round(s.y0, 6) for s in fig.layout.shapes if s.y0 == s.y1}
            assert {15.0, 99.0, 85.0, 20.0} <= hlines
    # the disparity readout and the current-α/β marks change with α and with β
    assert seen[(0.0, 0.0)][0] != seen[(5.0, 0.0)][0] and seen[(0.0, 0.0)][0] != seen[(0.0, 0.1)][0]
    assert seen[(0.0, 0.0)][1] != seen[(5.0, 0.0)][1] and seen[(0.0, 0.0)][1] != seen[(0.0, 0.1)][1]
    ex.alpha.value, ex.beta.value = 1.0, 0.01
    p = ex.fresh()
    assert ran == [("random", 1.0, 0.01)] and p["UA"] == grid[("random", 1.0, 0.01)]["UA"]
    assert "fresh run: random α=1 β=0.01" in ex.fresh_out.value and "grid point it should match" in ex.fresh_out.value
    names = [t.name for t in ex.figure().data]
    assert "forget acc (fresh run)" in names and "forget acc (grid)" in names


def test_metrics_table_has_borders_and_one_row_per_source():
    p = _grid()[("random", 1.0, 0.0)]
    html = metrics_html([("Retrain (target)", "retrain", {**RETRAIN["random"], "alpha": 0, "beta": 0}), ("grid", "", p)],
                        RETRAIN["random"])
    assert html.count("<tr>") == 3 and "border:1px solid" in html
    assert 'class="au-UA"' in html and 'class="au-retrain-UA"' in html


def test_explorer_figure_axes_are_titled():
    fig = explorer_figure(_grid(), RETRAIN, "random", 1.0, 0.01)
    for ax in ("xaxis", "xaxis2", "xaxis3", "xaxis4", "yaxis", "yaxis2", "yaxis3", "yaxis4"):
        assert fig.layout[ax].title.text, ax
    assert fig.layout.width is None  # follows the notebook's width


def test_explorer_opens_at_the_course_configuration():
    from advunlearn.course import course_grid

    alphas, betas = course_grid(1.0, 0.01)
    assert (1.0 in alphas and 0.0 in alphas and max(alphas) > 1.0) and (0.01 in betas and 0.0 in betas and max(betas) > 0.01)
    grid = _grid()
    ex = Explorer(grid, {"random": None}, retrain=RETRAIN, run_fresh=lambda *a: None, start=(1.0, 0.01))
    assert (ex.alpha.value, ex.beta.value) == (1.0, 0.01) and ex.start == (1.0, 0.01)
    # starred in the heatmap
    star = [t for t in ex.figure().data if t.name == "the course's configuration (tuned)"]
    assert len(star) == 1 and (star[0].x[0], star[0].y[0]) == ("1", "0.01")
    # a start that is not a grid point: the middle of the grid, nothing starred
    ex = Explorer(grid, {"random": None}, retrain=RETRAIN, run_fresh=lambda *a: None, start=(2.0, 0.01))
    assert (ex.alpha.value, ex.beta.value) == (1.0, 0.01) and ex.start is None


def test_explorer_axes_stay_put_and_colours_are_distinct():
    grid = _grid()
    ranges = set()
    for a in ALPHAS:
        for b in BETAS:
            fig = explorer_figure(grid, RETRAIN, "random", a, b)
            ranges.add((tuple(fig.layout.yaxis.range), tuple(fig.layout.yaxis2.range), tuple(fig.layout.yaxis4.range)))
            colours = {}
            for t in fig.data:
                if t.type == "heatmap" or t.mode == "markers" or t.x == (None,):
                    continue
                colours.setdefault((t.xaxis, t.yaxis), []).append(t.line.color)
            for panel, cs in colours.items():
                assert len(set(cs)) == len(cs), (panel, cs)
            # UA's red is not reused for a curve anywhere in the figure
            ua = next(t.line.color for t in fig.data if t.name == "UA")
            assert all(t.line.color != ua for t in fig.data if t.type == "scatter" and t.name != "UA")
    assert len(ranges) == 1  # the y axes do not rescale while sliding
    lo, hi = ranges.pop()[0]
    vals = [p[k] for p in grid.values() for k in ("UA", "RA", "TA", "MIA_efficacy")]
    assert lo < min(vals) and hi > max(vals)


def test_the_disparity_colour_bar_is_beside_the_heatmap():
    fig = explorer_figure(_grid(), RETRAIN, "random", 1.0, 0.01)
    heat = next(t for t in fig.data if t.type == "heatmap")
    z = [v for row in heat.z for v in row]
    assert (heat.zmin, heat.zmax) == (min(z), max(z))
    x_end = fig.layout.xaxis3.domain[1]
    y0, y1 = fig.layout.yaxis3.domain
    assert 0 <= heat.colorbar.x - x_end <= 0.03 and y0 <= heat.colorbar.y <= y1
