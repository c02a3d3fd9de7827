"""The α/β explorer: a precomputed grid of unlearning runs behind ipywidgets sliders.

:func:`compute_grid` runs adversarial unlearning for every (scheme, α, β) of a small grid (each run
cached in the store, so the grid is computed once); :class:`Explorer` shows the grid with sliders,
so sliding only looks values up, and a button runs one fresh short unlearning at any α/β.
"""

from __future__ import annotations

import itertools
from typing import Callable, Sequence

from .config import check_range


def _point(exp, alpha: float, beta: float, iterations: int | None, reuse: bool = True) -> dict:
    from .metrics import evaluate
    from .runner import unlearn_config, unlearn_ours

    over = {"alpha": float(alpha), "beta": float(beta)}
    if iterations:
        over["iterations"] = int(iterations)
    cfg = unlearn_config(exp, **over)
    model, info, hist = unlearn_ours(exp, cfg, reuse=reuse)
    res = evaluate(model, exp, info["run_time_s"], attacks=False)
    recs = hist["records"]
    return {"scheme": exp.scheme, "alpha": float(alpha), "beta": float(beta),
            **{k: res[k] for k in ("UA", "RA", "TA", "MIA_efficacy", "run_time_s")},
            "curve": {"iteration": [r["iteration"] for r in recs], "attacker_loss": [r["attacker_loss"] for r in recs],
                      "forget_acc": [r["forget_acc"] for r in recs]}}


def compute_grid(experiments: dict, alphas: Sequence[float], betas: Sequence[float], iterations: int | None = None,
                 progress: bool = True) -> dict:
    """{(scheme, alpha, beta): point} for every combination; ``experiments`` maps scheme -> Experiment."""
    for a in alphas:
        check_range("alpha", a, 0)
    for b in betas:
        check_range("beta", b, 0)
    combos = list(itertools.product(experiments, alphas, betas))
    it = combos
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(combos, desc="explorer grid")
    return {(s, float(a), float(b)): _point(experiments[s], a, b, iterations) for s, a, b in it}


def curve_figure(point: dict):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    c = point["curve"]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=c["iteration"], y=c["attacker_loss"], name="attacker loss L_A"), secondary_y=False)
    fig.add_trace(go.Scatter(x=c["iteration"], y=c["forget_acc"], name="forget acc (%)", line=dict(dash="dot")),
                  secondary_y=True)
    fig.update_layout(title=f"{point['scheme']}: α={point['alpha']:g}, β={point['beta']:g}", height=320, width=640,
                      margin=dict(l=40, r=40, t=50, b=40), legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title_text="iteration")
    return fig


def metrics_html(point: dict, label: str = "grid") -> str:
    cells = "".join(f'<td class="au-{k}">{point[k]:.2f}</td>' for k in ("UA", "RA", "TA", "MIA_efficacy"))
    return ('<table class="au-metrics"><tr><th>source</th><th>UA</th><th>RA</th><th>TA</th><th>MIA-Efficacy</th></tr>'
            f'<tr><td class="au-source">{label}: {point["scheme"]} α={point["alpha"]:g} β={point["beta"]:g}</td>'
            f'{cells}</tr></table>')


class Explorer:
    """Sliders for α and β (and a scheme toggle) over a precomputed grid, plus a fresh-run button."""

    def __init__(self, grid: dict, experiments: dict, fresh_iterations: int = 60,
                 run_fresh: Callable | None = None):
        import ipywidgets as W

        self.grid, self.experiments = grid, experiments
        schemes = sorted({k[0] for k in grid})
        alphas = sorted({k[1] for k in grid})
        betas = sorted({k[2] for k in grid})
        self.scheme = W.ToggleButtons(options=schemes, description="scheme")
        self.alpha = W.SelectionSlider(options=alphas, value=alphas[len(alphas) // 2], description="α",
                                       continuous_update=False)
        self.beta = W.SelectionSlider(options=betas, value=betas[0], description="β", continuous_update=False)
        for w, c in ((self.scheme, "au-scheme"), (self.alpha, "au-alpha"), (self.beta, "au-beta")):
            w.add_class(c)
        self.numbers = W.HTML()
        self.numbers.add_class("au-numbers")
        self.plot = W.Output()
        self.fresh_alpha = W.BoundedFloatText(value=1.0, min=0, max=100, step=0.1, description="fresh α")
        self.fresh_beta = W.BoundedFloatText(value=1e-3, min=0, max=10, step=1e-3, description="fresh β")
        self.button = W.Button(description="run fresh unlearning", button_style="primary")
        self.button.add_class("au-run")
        self.fresh_out = W.HTML()
        self.fresh_out.add_class("au-fresh")
        self.fresh_iterations = fresh_iterations
        self._run_fresh = run_fresh or self._default_fresh
        for w in (self.scheme, self.alpha, self.beta):
            w.observe(lambda _change: self.update(), names="value")
        self.button.on_click(lambda _b: self.fresh())
        self.widget = W.VBox([self.scheme, self.alpha, self.beta, self.numbers, self.plot,
                              W.HBox([self.fresh_alpha, self.fresh_beta, self.button]), self.fresh_out])
        self.update()

    def current(self) -> dict:
        return self.grid[(self.scheme.value, self.alpha.value, self.beta.value)]

    def update(self) -> None:
        from IPython.display import clear_output

        p = self.current()
        self.numbers.value = metrics_html(p)
        with self.plot:
            clear_output(wait=True)
            curve_figure(p).show()

    def _default_fresh(self, scheme: str, alpha: float, beta: float) -> dict:
        return _point(self.experiments[scheme], alpha, beta, self.fresh_iterations, reuse=False)

    def fresh(self) -> dict:
        self.fresh_out.value = "<i>running…</i>"
        p = self._run_fresh(self.scheme.value, float(self.fresh_alpha.value), float(self.fresh_beta.value))
        self.fresh_out.value = metrics_html(p, label="fresh run")
        return p

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


__all__ = ["compute_grid", "Explorer", "curve_figure", "metrics_html"]
