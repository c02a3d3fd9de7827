"""The α/β explorer: a precomputed grid of unlearning runs behind ipywidgets sliders.

:func:`compute_grid` runs adversarial unlearning for every (scheme, α, β) of a small grid (each run
cached in the store, so the grid is computed once); :class:`Explorer` shows the grid with sliders,
so sliding only looks values up.  What it shows for the current point, always against Retrain:

* a table: Retrain's UA, RA, TA and MIA-efficacy (the target), the grid point's, and its
  Avg. Disparity (mean distance to Retrain over the four);
* the metrics along α (at the current β) and along β (at the current α), with Retrain's values as
  dotted reference lines and the current α/β marked;
* a heatmap of Avg. Disparity over the whole α × β grid, the current point circled;
* the run's curves over its iterations (forget/retain accuracy, the held-out attacker's accuracy).

A button runs one fresh unlearning at the α/β in its boxes (the boxes follow the sliders) with the
grid's iteration count, and draws it against the grid point it should match.
"""

from __future__ import annotations

import itertools
from typing import Callable, Mapping, Sequence

from ..core.config import check_range

METRICS = ("UA", "RA", "TA", "MIA_efficacy")
CURVE_KEYS = ("attacker_loss", "attacker_acc", "forget_acc", "retain_acc", "val_acc")
TABLE_STYLE = ("border-collapse:collapse;margin:4px 0;font-size:13px",
               "border:1px solid #999;padding:3px 10px;text-align:right")


def _point(exp, alpha: float, beta: float, iterations: int | None, reuse: bool = True) -> dict:
    from ..evaluation.metrics import evaluate
    from ..methods.ours import unlearn_config, unlearn_ours

    over = {"alpha": float(alpha), "beta": float(beta)}
    if iterations:
        over["iterations"] = int(iterations)
    cfg = unlearn_config(exp, **over)
    model, info, hist = unlearn_ours(exp, cfg, reuse=reuse)
    res = evaluate(model, exp, info["run_time_s"], attacks=False)
    recs = hist["records"]
    curve = {"iteration": [r["iteration"] for r in recs]}
    curve.update({k: [r.get(k) for r in recs] for k in CURVE_KEYS})
    return {"scheme": exp.scheme, "alpha": float(alpha), "beta": float(beta), "iterations": cfg.iterations,
            **{k: res[k] for k in (*METRICS, "run_time_s")}, "curve": curve}


def fresh_point(exp, alpha: float, beta: float, iterations: int | None) -> dict:
    """One unlearning run computed now (the stored one is replaced), without a progress bar."""
    was, exp.progress = exp.progress, False  # no progress bar left on the page
    try:
        return _point(exp, alpha, beta, iterations, reuse=False)
    finally:
        exp.progress = was


def retrain_point(exp) -> dict:
    """Retrain's UA, RA, TA and MIA-efficacy on this experiment: the target of every grid point."""
    from ..evaluation.metrics import evaluate

    res = evaluate(exp.retrain()[0], exp, attacks=False)
    return {"scheme": exp.scheme, **{k: res[k] for k in METRICS}}


def _grid_task(_spec, spec: dict, alpha: float, beta: float, iterations: int | None) -> dict:
    """One grid point in a worker process (``spec`` rebuilds that point's experiment)."""
    from ..experiments.workers import _experiment

    return _point(_experiment(spec), alpha, beta, iterations)


def compute_grid(experiments: dict, alphas: Sequence[float], betas: Sequence[float], iterations: int | None = None,
                 progress: bool = True, workers: int = 1) -> dict:
    """{(scheme, alpha, beta): point} for every combination; ``experiments`` maps scheme -> Experiment.

    Each point is a stored unlearning run (computed the first time only).  The progress bar, if any,
    is removed when the grid is done.  ``workers`` > 1 computes the points not stored yet in that many
    single-thread processes (:func:`advunlearn.experiments.workers.run_tasks`), as the runner does its
    methods: the whole call then computes with one thread, here too, so its points are those of a
    one-thread process (``ADVUNLEARN_THREADS=1`` makes a later one-process call reuse them).
    """
    for a in alphas:
        check_range("alpha", a, 0)
    for b in betas:
        check_range("beta", b, 0)
    check_range("workers", workers, 1, integer=True)
    combos = list(itertools.product(experiments, alphas, betas))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(combos), desc="explorer grid", leave=False)
    from ..experiments.experiment import one_thread_if

    try:
        with one_thread_if(workers > 1):
            got: dict = {}
            if workers > 1 and len(combos) > 1:
                from ..experiments.workers import experiment_spec, run_tasks

                specs = {s: experiment_spec(e) for s, e in experiments.items()}
                for e in experiments.values():
                    e.original()  # θ0 once, here, before the workers load it
                first = next(iter(experiments))

                def done(p):
                    got[(p["scheme"], p["alpha"], p["beta"])] = p
                    if bar is not None:
                        bar.update()

                run_tasks(experiments[first], specs[first], _grid_task,
                          [(specs[s], float(a), float(b), iterations) for s, a, b in combos], workers=workers,
                          on_result=done)
            out = {}
            for s, a, b in combos:
                key = (s, float(a), float(b))
                if key not in got:
                    got[key] = _point(experiments[s], a, b, iterations)
                    if bar is not None:
                        bar.update()
                out[key] = got[key]
            return out
    finally:
        if bar is not None:
            bar.close()


def with_disparity(point: Mapping, retrain: Mapping) -> float:
    from ..evaluation.metrics import avg_disparity

    return avg_disparity(point, retrain)


def metrics_html(rows: Sequence[tuple[str, str, Mapping]], retrain: Mapping | None = None) -> str:
    """A bordered table, one row per (label, class prefix, point); Avg. Disparity against ``retrain``.

    The row of prefix ``""`` gets the cell classes ``au-UA``, ``au-RA``, ...; the others ``au-<prefix>-UA``...
    """
    table, cell = TABLE_STYLE
    head = "".join(f'<th style="{cell}">{h}</th>' for h in ("", "UA", "RA", "TA", "MIA-Efficacy", "Avg. Disparity"))
    body = []
    for label, prefix, p in rows:
        cls = f"au-{prefix}-" if prefix else "au-"
        src = "au-source" if not prefix else f"au-{prefix}-source"
        cells = "".join(f'<td class="{cls}{k}" style="{cell}">{p[k]:.2f}</td>' for k in METRICS)
        dis = "target" if prefix == "retrain" else (f"{with_disparity(p, retrain):.2f}" if retrain else "n/a")
        body.append(f'<tr><td class="{src}" style="{cell};text-align:left">{label}</td>{cells}'
                    f'<td class="{cls}disparity" style="{cell};font-weight:bold">{dis}</td></tr>')
    return f'<table class="au-metrics" style="{table}"><tr>{head}</tr>{"".join(body)}</table>'


def point_label(p: Mapping, source: str = "grid") -> str:
    return f"{source}: {p['scheme']} α={p['alpha']:g} β={p['beta']:g}"


# the run's curves: colours none of the metrics uses (UA is red in the panels above)
CURVE_STYLE = (("forget_acc", "forget acc", "#8c564b"), ("retain_acc", "retain acc", "#17becf"),
               ("attacker_acc", "held-out attacker acc", "#ff7f0e"))


def grid_ranges(grid: Mapping, retrain: Mapping[str, Mapping], scheme: str) -> tuple[list[float], list[float]]:
    """Fixed y ranges for the explorer (the metrics panels, the curves panel) over the whole grid of
    ``scheme``, so that the axes stay put while the sliders move."""
    from .viz import padded_range

    pts = [p for k, p in grid.items() if k[0] == scheme]
    metrics = [p[k] for p in pts for k in METRICS] + [retrain[scheme][k] for k in METRICS]
    curves = [v for p in pts for k, _n, _c in CURVE_STYLE for v in (p.get("curve", {}).get(k) or []) if v is not None]
    return padded_range(metrics, pad=0.05), padded_range(curves, 50.0, pad=0.05)


def explorer_figure(grid: Mapping, retrain: Mapping[str, Mapping], scheme: str, alpha: float, beta: float,
                    fresh: Mapping | None = None, course: tuple[float, float] | None = None):
    """The explorer's figure for the current (scheme, α, β): see the module docstring.  ``course``
    (α, β) is starred in the heatmap when it is a grid point."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from .viz import METRIC_COLORS, METRIC_NAMES

    alphas = sorted({k[1] for k in grid if k[0] == scheme})
    betas = sorted({k[2] for k in grid if k[0] == scheme})
    ret = retrain[scheme]
    cur = grid[(scheme, alpha, beta)]
    bl = [f"{b:g}" for b in betas]
    metric_range, curve_range = grid_ranges(grid, retrain, scheme)
    fig = make_subplots(rows=2, cols=2, vertical_spacing=0.2, horizontal_spacing=0.16,
                        subplot_titles=(f"along α (β={beta:g})", f"along β (α={alpha:g})",
                                        "Avg. Disparity to Retrain (lower is closer)",
                                        "this run over its iterations"))
    for k in METRICS:
        c = METRIC_COLORS[k]
        fig.add_trace(go.Scatter(x=alphas, y=[grid[(scheme, a, beta)][k] for a in alphas], mode="lines+markers",
                                 name=METRIC_NAMES[k], legendgroup=k, line=dict(color=c)), 1, 1)
        fig.add_trace(go.Scatter(x=bl, y=[grid[(scheme, alpha, b)][k] for b in betas], mode="lines+markers",
                                 name=METRIC_NAMES[k], legendgroup=k, showlegend=False, line=dict(color=c)), 1, 2)
        for col in (1, 2):  # Retrain's value: the target of this metric
            fig.add_hline(y=ret[k], line=dict(color=c, dash="dot", width=1.5), row=1, col=col)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="Retrain (dotted)",
                             line=dict(color="grey", dash="dot")), 1, 1)
    # the current α and β
    fig.add_vline(x=alpha, line=dict(color="black", width=1), row=1, col=1)
    fig.add_vline(x=bl.index(f"{beta:g}"), line=dict(color="black", width=1), row=1, col=2)
    z = [[with_disparity(grid[(scheme, a, b)], ret) for a in alphas] for b in betas]
    heat = fig.get_subplot(2, 1)
    y0, y1 = heat.yaxis.domain
    # the colour scale spans this grid's disparities; its bar stands right beside the heatmap
    fig.add_trace(go.Heatmap(z=z, x=[f"{a:g}" for a in alphas], y=bl, colorscale="Viridis", reversescale=True,
                             zmin=min(map(min, z)), zmax=max(map(max, z)),
                             colorbar=dict(title=dict(text="points", side="right"), x=heat.xaxis.domain[1] + 0.01,
                                           xanchor="left", y=(y0 + y1) / 2, yanchor="middle", len=y1 - y0, thickness=12),
                             text=[[f"{v:.1f}" for v in r] for r in z],
                             texttemplate="%{text}", name="Avg. Disparity", showlegend=False), 2, 1)
    fig.add_trace(go.Scatter(x=[f"{alpha:g}"], y=[f"{beta:g}"], mode="markers", name="current point",
                             marker=dict(symbol="circle-open", size=26, color="red", line=dict(width=3)),
                             showlegend=False), 2, 1)
    if course is not None and (scheme, float(course[0]), float(course[1])) in grid:
        fig.add_trace(go.Scatter(x=[f"{course[0]:g}"], y=[f"{course[1]:g}"], mode="markers",
                                 name="the course's configuration (tuned)",
                                 marker=dict(symbol="star", size=14, color="gold", line=dict(color="black", width=1))),
                      2, 1)
    c = cur["curve"]
    for k, name, color in CURVE_STYLE:
        fig.add_trace(go.Scatter(x=c["iteration"], y=c.get(k), mode="lines+markers", name=f"{name} (grid)",
                                 line=dict(color=color)), 2, 2)
        if fresh is not None and fresh.get("curve"):
            f = fresh["curve"]
            fig.add_trace(go.Scatter(x=f["iteration"], y=f.get(k), mode="lines", name=f"{name} (fresh run)",
                                     line=dict(color=color, dash="dash", width=3)), 2, 2)
    fig.add_hline(y=50, line=dict(color="grey", dash="dash"), row=2, col=2, annotation_text="chance 50",
                  annotation_position="bottom right")
    fig.update_xaxes(title_text="α", row=1, col=1)
    fig.update_xaxes(title_text="β", type="category", row=1, col=2)
    fig.update_xaxes(title_text="α", type="category", row=2, col=1)
    fig.update_yaxes(title_text="β", type="category", row=2, col=1)
    fig.update_xaxes(title_text="iteration", row=2, col=2)
    for col in (1, 2):
        fig.update_yaxes(title_text="%", range=metric_range, row=1, col=col)
    fig.update_yaxes(title_text="accuracy (%)", range=curve_range, row=2, col=2)
    fig.update_annotations(font_size=13)
    fig.update_layout(title=dict(text=f"{scheme}: α={alpha:g}, β={beta:g}", x=0, xanchor="left"), autosize=True,
                      height=800, legend=dict(orientation="h", y=-0.1, yanchor="top", x=0),
                      margin=dict(l=60, r=40, t=80, b=40))
    return fig


class Explorer:
    """Sliders for α and β (and a scheme toggle) over a precomputed grid, plus a fresh-run button."""

    def __init__(self, grid: dict, experiments: dict, retrain: Mapping[str, Mapping] | None = None,
                 fresh_iterations: int | None = None, run_fresh: Callable | None = None,
                 start: tuple[float, float] | None = None):
        """``start``: the (α, β) the sliders open at (the course's configuration) when it is a grid
        point; else the middle of the grid."""
        import ipywidgets as W

        self.grid, self.experiments = grid, experiments
        self.retrain = dict(retrain) if retrain is not None else {s: retrain_point(e) for s, e in experiments.items()}
        schemes = sorted({k[0] for k in grid})
        alphas = sorted({k[1] for k in grid})
        betas = sorted({k[2] for k in grid})
        its = {p.get("iterations") for p in grid.values()}
        # the fresh run repeats the grid's iteration count, so it is comparable with a grid point
        self.fresh_iterations = fresh_iterations or (its.pop() if len(its) == 1 else None)
        self.scheme = W.ToggleButtons(options=schemes, description="scheme")
        a0, b0 = alphas[len(alphas) // 2], betas[len(betas) // 2]
        self.start = None
        if start is not None and any((s, float(start[0]), float(start[1])) in grid for s in schemes):
            a0, b0 = self.start = (float(start[0]), float(start[1]))
        self.alpha = W.SelectionSlider(options=alphas, value=a0, description="α", continuous_update=False)
        self.beta = W.SelectionSlider(options=betas, value=b0, description="β", continuous_update=False)
        for w, c in ((self.scheme, "au-scheme"), (self.alpha, "au-alpha"), (self.beta, "au-beta")):
            w.add_class(c)
        self.numbers = W.HTML()
        self.numbers.add_class("au-numbers")
        self.plot = W.Output()
        self.fresh_alpha = W.BoundedFloatText(value=self.alpha.value, min=0, max=1000, step=0.1, description="fresh α")
        self.fresh_beta = W.BoundedFloatText(value=self.beta.value, min=0, max=100, step=1e-3, description="fresh β")
        self.button = W.Button(description=f"run fresh unlearning ({self.fresh_iterations} it.)",
                               button_style="primary", layout=W.Layout(width="auto"))
        self.button.add_class("au-run")
        self.fresh_out = W.HTML()
        self.fresh_out.add_class("au-fresh")
        self.fresh_point: dict | None = None
        self._run_fresh = run_fresh or self._default_fresh
        for w in (self.scheme, self.alpha, self.beta):
            w.observe(lambda _change: self.update(), names="value")
        # the fresh-run boxes follow the sliders (type another value to leave the grid)
        self.alpha.observe(lambda ch: setattr(self.fresh_alpha, "value", ch["new"]), names="value")
        self.beta.observe(lambda ch: setattr(self.fresh_beta, "value", ch["new"]), names="value")
        self.button.on_click(lambda _b: self.fresh())
        self.widget = W.VBox([self.scheme, self.alpha, self.beta, self.numbers, self.plot,
                              W.HBox([self.fresh_alpha, self.fresh_beta, self.button]), self.fresh_out],
                             layout=W.Layout(width="100%"))
        self.update()

    def key(self) -> tuple:
        return (self.scheme.value, self.alpha.value, self.beta.value)

    def current(self) -> dict:
        return self.grid[self.key()]

    def disparity(self) -> float:
        return with_disparity(self.current(), self.retrain[self.scheme.value])

    def figure(self):
        fresh = self.fresh_point if self.fresh_point and self._fresh_matches() else None
        return explorer_figure(self.grid, self.retrain, *self.key(), fresh=fresh, course=self.start)

    def _fresh_matches(self) -> bool:
        f = self.fresh_point
        return f is not None and (f["scheme"], f["alpha"], f["beta"]) == self.key()

    def update(self) -> None:
        from IPython.display import clear_output

        s = self.scheme.value
        p = self.current()
        self.numbers.value = metrics_html([("Retrain (target)", "retrain", {**self.retrain[s], "alpha": 0, "beta": 0}),
                                           (point_label(p), "", p)], self.retrain[s])
        with self.plot:
            clear_output(wait=True)
            self.figure().show()

    def _default_fresh(self, scheme: str, alpha: float, beta: float) -> dict:
        return fresh_point(self.experiments[scheme], alpha, beta, self.fresh_iterations)

    def fresh(self) -> dict:
        s, a, b = self.scheme.value, float(self.fresh_alpha.value), float(self.fresh_beta.value)
        self.fresh_out.value = f"<i>running {self.fresh_iterations} iterations at α={a:g}, β={b:g}…</i>"
        p = self._run_fresh(s, a, b)
        self.fresh_point = p
        rows = [(point_label(p, "fresh run"), "fresh", p)]
        g = self.grid.get((s, a, b))
        if g is not None:
            rows.append((point_label(g, "grid point it should match"), "match", g))
        note = ("" if g is not None else "<br><i>(not a grid point: nothing stored to compare with)</i>")
        self.fresh_out.value = metrics_html(rows, self.retrain[s]) + note
        if g is not None and (a, b) == (self.alpha.value, self.beta.value):
            self.update()  # draw the fresh curves over the grid point's
        return p

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


__all__ = ["compute_grid", "fresh_point", "Explorer", "explorer_figure", "metrics_html", "retrain_point", "point_label",
           "grid_ranges"]
