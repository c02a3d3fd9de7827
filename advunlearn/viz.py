"""Plotly figures for the notebooks: the live unlearning plot, histograms, heatmaps, trade-offs.

plotly and IPython are imported lazily so the core runs without them.  The live plot redraws a plain
figure with ``clear_output(wait=True)``: live in JupyterLab, one static figure in an executed
notebook (papermill/nbval).  No figure fixes its width: each follows the notebook's width; every
axis is titled, chance levels are drawn, and each panel's title sits above it.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

# L_A = E[log A(f)] + E[log(1 - A(v))]: an attacker that answers 1/2 everywhere scores 2 ln(1/2).
CHANCE_LA = 2 * math.log(0.5)

LA_KEYS = (("attacker_loss", "L_A, loop batches (attacker's steps)"), ("attacker_loss_eval", "L_A, held-out pairs"))
ATTACK_KEYS = (("attacker_acc", "attacker accuracy, held-out pairs"), ("attacker_auc", "attacker AUC ×100, held-out pairs"))
ACC_KEYS = (("forget_acc", "forget acc (D_f)"), ("retain_acc", "retain acc (D_r)"), ("val_acc", "validation acc (held-out D_v)"))
# distinguishable even where two lines coincide (forget and retain both at 100% before unlearning)
ACC_STYLE = {"forget_acc": dict(color="#d62728", width=4, dash="solid"),
             "retain_acc": dict(color="#1f77b4", width=2, dash="dash"),
             "val_acc": dict(color="#2ca02c", width=2, dash="dot")}
ACC_MARKER = {"forget_acc": "circle", "retain_acc": "x", "val_acc": "diamond"}
PANELS = ("L_A, the attacker's log-likelihood", "held-out attacker: D_f vs D_v", "defender accuracy",
          "mean diagonal of C (D_f × D_v)", "defender cross-entropy on D_r", "V_ss (Barlow Twins)",
          "C, 32 most variable features (latest record)")
# panel -> (row, col) in a two-column grid, narrow enough for a notebook beside a file browser
AT = {"la": (1, 1), "att": (1, 2), "acc": (2, 1), "diag": (2, 2), "ce": (3, 1), "vss": (3, 2), "corr": (4, 1)}


def _series(records, key):
    out = []
    for r in records:
        v = r.get(key)
        out.append(None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v)
    return out


def unlearning_figure(records: Sequence[dict], title: str = "Adversarial unlearning"):
    """Six line panels (L_A with its chance line, the held-out attacker, the accuracies, CE, V_ss, the
    diagonal of C over time) and the latest cross-correlation matrix C, from history records."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=4, cols=2, specs=[[{}, {}], [{}, {}], [{}, {}], [{"colspan": 2}, None]],
                        row_heights=[0.22, 0.22, 0.22, 0.34], vertical_spacing=0.075, horizontal_spacing=0.13,
                        subplot_titles=PANELS)
    it = [r["iteration"] for r in records]

    def line(key, name, row, col, **kw):
        fig.add_trace(go.Scatter(x=it, y=_series(records, key), name=name, mode="lines+markers", **kw), row, col)

    for (k, name), dash in zip(LA_KEYS, ("solid", "dot")):
        line(k, name, *AT["la"], line=dict(dash=dash))
    fig.add_hline(y=CHANCE_LA, line=dict(color="grey", dash="dash"), row=AT["la"][0], col=AT["la"][1],
                  annotation_text="chance 2·ln ½ ≈ −1.39", annotation_position="bottom right")
    # which way is which: higher L_A = the attacker tells D_f from D_v better
    fig.add_annotation(text="↑ attacker winning<br>↓ defender winning", xref="x domain", yref="y domain",
                       x=0.02, y=0.98, showarrow=False, align="left", xanchor="left", yanchor="top",
                       font=dict(size=11), bgcolor="rgba(255,255,255,0.7)", row=AT["la"][0], col=AT["la"][1])
    for k, name in ATTACK_KEYS:
        y = _series(records, k)
        if k == "attacker_auc":
            y = [None if v is None else 100 * v for v in y]
        fig.add_trace(go.Scatter(x=it, y=y, name=name, mode="lines+markers"), *AT["att"])
    fig.add_hline(y=50, line=dict(color="grey", dash="dash"), row=AT["att"][0], col=AT["att"][1], annotation_text="chance 50",
                  annotation_position="bottom right")
    for k, name in ACC_KEYS:
        line(k, name, *AT["acc"], line=ACC_STYLE[k], marker=dict(symbol=ACC_MARKER[k], size=7))
    line("ce", "CE on D_r", *AT["ce"])
    line("vss", "V_ss, loop batches", *AT["vss"])
    line("vss_eval", "V_ss, held-out pairs", *AT["vss"], line=dict(dash="dot"))
    line("corr_diag_mean", "mean C_ii, held-out pairs", *AT["diag"])
    # the whole range of C_ii, so noise around 0 is not magnified into a zigzag: 1 would mean
    # identical features for the paired D_f and D_v samples, 0 unrelated ones
    diag = [v for v in _series(records, "corr_diag_mean") if v is not None]
    fig.update_yaxes(range=[min([-0.25, *diag]) - 0.05, 1.1], row=AT["diag"][0], col=AT["diag"][1])
    fig.add_hline(y=1, line=dict(color="grey", dash="dash"), row=AT["diag"][0], col=AT["diag"][1],
                  annotation_text="1 = identical", annotation_position="bottom right")
    if records and records[-1].get("corr") is not None and len(records[-1]["corr"]):
        fig.add_trace(go.Heatmap(z=records[-1]["corr"], zmin=-1, zmax=1, colorscale="RdBu", reversescale=True,
                                 showscale=True, name="C", colorbar=dict(title="C_ij", len=0.3, y=0.15)), *AT["corr"])
        fig.update_yaxes(autorange="reversed", scaleanchor="x7", title_text="feature of D_v (j)", row=AT["corr"][0], col=1)
        fig.update_xaxes(title_text="feature of D_f (i)", constrain="domain", row=AT["corr"][0], col=1)
    for panel, ytitle in {"la": "L_A (log-likelihood)", "att": "% (chance 50)", "acc": "accuracy (%)",
                          "ce": "cross-entropy", "vss": "V_ss", "diag": "mean C_ii"}.items():
        row, col = AT[panel]
        fig.update_xaxes(title_text="iteration", row=row, col=col)
        fig.update_yaxes(title_text=ytitle, row=row, col=col)
    fig.update_annotations(font_size=13)
    fig.update_layout(title=dict(text=title, x=0, xanchor="left"), autosize=True, height=1350,
                      legend=dict(orientation="h", y=-0.06, yanchor="top", x=0, xanchor="left"),
                      margin=dict(l=60, r=40, t=90, b=40))
    return fig


class LivePlot:
    """A callback for :func:`advunlearn.unlearn.adversarial_unlearn` that redraws the figure per record."""

    def __init__(self, title: str = "Adversarial unlearning", every: int = 1, display: bool = True):
        self.records: list[dict] = []
        self.title, self.every, self.display = title, every, display
        self.draws = 0

    def __call__(self, record: dict) -> None:
        self.records.append(record)
        if self.display and len(self.records) % self.every == 0:
            self.draw()

    def draw(self) -> None:
        from IPython.display import clear_output

        clear_output(wait=True)
        unlearning_figure(self.records, self.title).show()
        self.draws += 1

    @property
    def figure(self):
        return unlearning_figure(self.records, self.title)


def heatmap(matrix, title: str = "cross-correlation", zmin: float = -1, zmax: float = 1,
            xtitle: str = "feature i", ytitle: str = "feature j"):
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=matrix, zmin=zmin, zmax=zmax, colorscale="RdBu", reversescale=True))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", title_text=ytitle)
    fig.update_xaxes(title_text=xtitle, constrain="domain")
    fig.update_layout(title=title, autosize=True, height=420, margin=dict(l=60, r=30, t=50, b=50))
    return fig


def feature_histograms(member: dict, nonmember: dict, title: str = "attacker inputs",
                       names: tuple[str, str] = ("members (D)", "non-members (D_v)")):
    """Histograms of each feature (a dict of 1-D arrays) for members vs non-members."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    keys = list(member)
    fig = make_subplots(rows=1, cols=len(keys), subplot_titles=keys)
    for j, k in enumerate(keys, 1):
        for d, name, col in ((member, names[0], "#1f77b4"), (nonmember, names[1], "#ff7f0e")):
            fig.add_trace(go.Histogram(x=list(map(float, d[k])), name=name, marker_color=col, opacity=0.6,
                                       histnorm="probability", nbinsx=40, showlegend=j == 1), 1, j)
        fig.update_xaxes(title_text=k, row=1, col=j)
        fig.update_yaxes(title_text="share of samples", row=1, col=j)
    fig.update_layout(barmode="overlay", title=title, autosize=True, height=340, margin=dict(l=60, r=30, t=60, b=50))
    return fig


def confidence_histograms(panels: Mapping[str, Mapping[str, Sequence[float]]], title: str = "confidence p_y",
                          bins: int = 30, cols: int = 3):
    """One panel per model (e.g. per method), each overlaying histograms of the defender's confidence
    p_y on several sets (e.g. D_f and D_t); ``panels`` maps panel title -> {set name: values in [0, 1]}.
    A set name shared by panels keeps one colour everywhere."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(panels)
    rows = max(1, math.ceil(len(names) / cols))
    fig = make_subplots(rows=rows, cols=min(cols, len(names)) or 1, subplot_titles=names, vertical_spacing=0.16 / rows * 2)
    palette = ["#d62728", "#1f77b4", "#7f7f7f", "#2ca02c", "#9467bd", "#ff7f0e"]
    colors: dict[str, str] = {}
    for i, name in enumerate(names):
        r, c = i // cols + 1, i % cols + 1
        for label, values in panels[name].items():
            first = label not in colors
            color = colors.setdefault(label, palette[len(colors) % len(palette)])
            fig.add_trace(go.Histogram(x=list(map(float, values)), name=label, legendgroup=label, showlegend=first,
                                       marker_color=color, opacity=0.5, histnorm="probability",
                                       xbins=dict(start=0, end=1.0001, size=1 / bins)), r, c)
        fig.update_xaxes(title_text="confidence p_y", range=[0, 1.02], row=r, col=c)
        fig.update_yaxes(title_text="share", row=r, col=c)
    fig.update_layout(barmode="overlay", title=title, autosize=True, height=300 * rows + 80,
                      legend=dict(orientation="h", y=-0.08, yanchor="top"), margin=dict(l=60, r=30, t=80, b=50))
    return fig


def confidence_panels(records: Sequence[Mapping], before: Mapping[str, Sequence[float]] | None = None,
                      title: str = "the defender's confidence p_y, per method", cols: int = 3):
    """04's histograms from result records' ``confidence`` (shares per equal bin of p_y on [0, 1]):
    one panel per method with its D_f and D_t as bars, Retrain's D_f (dashed) and θ₀'s D_f before
    unlearning (``before``, dotted) as reference lines.  Records without ``confidence`` are skipped."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    recs = [r for r in records if r.get("confidence")]
    ret = next((r for r in recs if r["method"] == "retrain"), None)
    n = max(1, len(recs))
    rows, cols = math.ceil(n / cols), min(cols, n)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[r["method"] for r in recs] or ["(no records)"],
                        vertical_spacing=min(0.3, 0.5 / rows), horizontal_spacing=0.08)
    shown = set()

    def trace(kind, name, values, color, r, c, **kw):
        bins = len(values)
        x = [(i + 0.5) / bins for i in range(bins)]
        first = name not in shown
        shown.add(name)
        if kind == "bar":
            t = go.Bar(x=x, y=values, width=1 / bins, name=name, marker_color=color, opacity=0.55,
                       legendgroup=name, showlegend=first)
        else:
            t = go.Scatter(x=x, y=values, mode="lines", name=name, line=dict(color=color, shape="hvh", **kw),
                           legendgroup=name, showlegend=first)
        fig.add_trace(t, r, c)

    for i, rec in enumerate(recs):
        r, c = i // cols + 1, i % cols + 1
        trace("bar", "D_f (forget set)", rec["confidence"]["forget"], "#d62728", r, c)
        trace("bar", "D_t (test set)", rec["confidence"]["test"], "#1f77b4", r, c)
        if ret is not None:
            trace("line", "D_f under Retrain (target)", ret["confidence"]["forget"], "black", r, c, dash="dash", width=2)
        if before is not None:
            trace("line", "D_f under θ₀ (before)", before["forget"], "#ff7f0e", r, c, dash="dot", width=2)
        fig.update_xaxes(title_text="confidence p_y", range=[0, 1], row=r, col=c)
        fig.update_yaxes(title_text="share", row=r, col=c)
    fig.update_layout(barmode="overlay", title=title, autosize=True, height=290 * rows + 110,
                      legend=dict(orientation="h", y=-0.08, yanchor="top"), margin=dict(l=60, r=30, t=80, b=50))
    return fig


def training_curve(records: Sequence[dict], title: str = "training loss"):
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[r["step"] for r in records], y=[r["loss"] for r in records], mode="lines"))
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="cross-entropy", autosize=True, height=300,
                      margin=dict(l=60, r=20, t=50, b=50))
    return fig


METRIC_NAMES = {"UA": "UA", "RA": "RA", "TA": "TA", "MIA_efficacy": "MIA-efficacy", "disparity": "Avg. Disparity"}
METRIC_COLORS = {"UA": "#d62728", "RA": "#1f77b4", "TA": "#2ca02c", "MIA_efficacy": "#9467bd", "disparity": "#000000"}


def tradeoff_figure(points: Sequence[dict], x: str = "alpha", title: str = "forget / retain trade-off",
                    retrain: Mapping | None = None, series: str | None = None,
                    keys: Sequence[str] = ("UA", "RA", "TA", "MIA_efficacy")):
    """Metrics against one hyperparameter ``x`` from grid points; one line per metric, or per metric and
    value of ``series`` (e.g. β, in dashes); ``retrain``'s value of each metric as a dotted reference line."""
    import plotly.graph_objects as go

    fig = go.Figure()
    # β spans orders of magnitude and includes 0: its values are drawn as evenly spaced categories
    category = x == "beta"
    xs = (lambda v: f"{v:g}") if category else (lambda v: v)
    groups = sorted({p[series] for p in points}) if series else [None]
    dashes = ["solid", "dash", "dot", "dashdot", "longdash"]
    for g_i, g in enumerate(groups):
        pts = sorted((p for p in points if series is None or p[series] == g), key=lambda p: p[x])
        for k in keys:
            name = METRIC_NAMES.get(k, k) + (f" ({_greek(series)}={g:g})" if series else "")
            fig.add_trace(go.Scatter(x=[xs(p[x]) for p in pts], y=[p[k] for p in pts], name=name, mode="lines+markers",
                                     legendgroup=k, line=dict(color=METRIC_COLORS.get(k), dash=dashes[g_i % len(dashes)])))
    if retrain:
        for k in keys:
            if k in retrain:
                fig.add_hline(y=retrain[k], line=dict(color=METRIC_COLORS.get(k), dash="dot", width=1),
                              annotation_text=f"Retrain {METRIC_NAMES.get(k, k)}", annotation_position="right",
                              annotation_font_size=10)
    fig.update_layout(title=title, xaxis_title=_greek(x), yaxis_title="% (Avg. Disparity: points)", autosize=True,
                      height=400, margin=dict(l=60, r=110, t=50, b=50))
    if category:
        fig.update_xaxes(type="category")
    return fig


def _greek(name: str | None) -> str:
    return {"alpha": "α", "beta": "β"}.get(name or "", name or "")


__all__ = ["unlearning_figure", "LivePlot", "heatmap", "feature_histograms", "confidence_histograms", "confidence_panels",
           "training_curve", "tradeoff_figure", "CHANCE_LA"]
