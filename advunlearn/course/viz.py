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

# Short trace names: each panel has its own legend, under its x axis, and its title says what is drawn.
LA_KEYS = (("attacker_loss", "loop batches (attacker's steps)"), ("attacker_loss_eval", "held-out pairs"))
ATTACK_KEYS = (("attacker_acc", "accuracy"), ("attacker_auc", "AUC ×100"))
ACC_KEYS = (("forget_acc", "D_f (forget)"), ("retain_acc", "D_r (retain)"), ("val_acc", "D_v (held out)"))
# distinguishable even where two lines coincide (forget and retain both at 100% before unlearning)
ACC_STYLE = {"forget_acc": dict(color="#d62728", width=4, dash="solid"),
             "retain_acc": dict(color="#1f77b4", width=2, dash="dash"),
             "val_acc": dict(color="#2ca02c", width=2, dash="dot")}
ACC_MARKER = {"forget_acc": "circle", "retain_acc": "x", "val_acc": "diamond"}
# one colour per series inside a panel (panels are read one at a time: a colour means nothing across panels)
LA_COLORS = ("#9467bd", "#ff7f0e")
ATTACK_COLORS = ("#8c564b", "#17becf")
PANELS = ("L_A, the attacker's log-likelihood", "held-out attacker: D_f vs D_v", "defender accuracy (%)",
          "mean diagonal of C (D_f × D_v), held-out pairs", "defender cross-entropy on D_r",
          "V_ss (Barlow Twins)", "C, 32 most variable features (latest record)")
# panel -> (row, col) in a two-column grid, narrow enough for a notebook beside a file browser
AT = {"la": (1, 1), "att": (1, 2), "acc": (2, 1), "diag": (2, 2), "ce": (3, 1), "vss": (3, 2), "corr": (4, 1)}
LEGEND_OF = {"la": "legend", "att": "legend2", "acc": "legend3", "diag": "legend4", "ce": "legend5", "vss": "legend6"}
FIG_HEIGHT, FIG_MARGIN = 1500, dict(l=70, r=90, t=90, b=40)


def _series(records, key):
    out = []
    for r in records:
        v = r.get(key)
        out.append(None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v)
    return out


def padded_range(values: Sequence[float | None], *always: float, pad: float = 0.08) -> list[float]:
    """[lo, hi] holding every value (None skipped) and every ``always`` value (e.g. a chance level), padded."""
    v = [float(x) for x in (*values, *always) if x is not None and math.isfinite(float(x))]
    if not v:
        return [0.0, 1.0]
    lo, hi = min(v), max(v)
    span = (hi - lo) or max(abs(hi), 1.0) * 0.1
    return [lo - pad * span, hi + pad * span]


def symmetric_scale(matrix) -> float:
    """The colour-scale bound of a correlation matrix: its largest |value|, rounded up to 2 significant digits."""
    m = max((abs(float(v)) for row in matrix for v in row if v is not None and math.isfinite(float(v))), default=1.0)
    if m == 0:
        return 1.0
    e = math.floor(math.log10(m)) - 1
    return min(1.0, math.ceil(m / 10 ** e) * 10 ** e)


def _panel_legends(fig, used: Mapping[str, str], height: int, margin: Mapping) -> None:
    """One legend per panel, just under the panel's x-axis title, left-aligned with the panel."""
    plot_h = height - margin["t"] - margin["b"]
    below = 58 / plot_h  # tick labels and the x-axis title, in paper units
    for panel, legend in used.items():
        row, col = AT[panel]
        sub = fig.get_subplot(row, col)
        x0 = sub.xaxis.domain[0]
        y0 = sub.yaxis.domain[0]
        fig.update_layout({legend: dict(x=x0, xanchor="left", y=y0 - below, yanchor="top", orientation="h",
                                        font=dict(size=11), bgcolor="rgba(255,255,255,0)", tracegroupgap=0)})


def unlearning_figure(records: Sequence[dict], title: str = "Adversarial unlearning"):
    """Six line panels (L_A with its chance line, the held-out attacker, the accuracies, CE, V_ss, the
    diagonal of C over time) and the latest cross-correlation matrix C, from history records.

    Each panel has its own legend (under it) and its own colours; the L_A panel's range holds every
    value and the chance line; C's colour scale is fitted to its values, with the colour bar beside it."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=4, cols=2, specs=[[{}, {}], [{}, {}], [{}, {}], [{"colspan": 2}, None]],
                        row_heights=[0.2, 0.2, 0.2, 0.4], vertical_spacing=0.1, horizontal_spacing=0.13,
                        subplot_titles=PANELS)
    it = [r["iteration"] for r in records]
    used: dict[str, str] = {}

    def line(panel, key, name, y=None, **kw):
        row, col = AT[panel]
        used[panel] = LEGEND_OF[panel]
        fig.add_trace(go.Scatter(x=it, y=_series(records, key) if y is None else y, name=name, mode="lines+markers",
                                 legend=LEGEND_OF[panel], **kw), row, col)

    la_values = []
    for (k, name), dash, color in zip(LA_KEYS, ("solid", "dot"), LA_COLORS):
        la_values += _series(records, k)
        line("la", k, name, line=dict(dash=dash, color=color))
    # the range holds the first values (where the attacker is winning) and the chance line
    fig.update_yaxes(range=padded_range(la_values, CHANCE_LA, pad=0.12), row=AT["la"][0], col=AT["la"][1])
    fig.add_hline(y=CHANCE_LA, line=dict(color="grey", dash="dash"), row=AT["la"][0], col=AT["la"][1],
                  annotation_text="chance 2·ln ½ ≈ −1.39", annotation_position="bottom left",
                  annotation_font_size=10)
    for (k, name), color in zip(ATTACK_KEYS, ATTACK_COLORS):
        y = _series(records, k)
        if k == "attacker_auc":
            y = [None if v is None else 100 * v for v in y]
        line("att", k, name, y=y, line=dict(color=color))
    fig.add_hline(y=50, line=dict(color="grey", dash="dash"), row=AT["att"][0], col=AT["att"][1], annotation_text="chance 50",
                  annotation_position="bottom right", annotation_font_size=10)
    for k, name in ACC_KEYS:
        line("acc", k, name, line=ACC_STYLE[k], marker=dict(symbol=ACC_MARKER[k], size=7))
    line("ce", "ce", "D_r batches", line=dict(color="#1f77b4"))
    line("vss", "vss", "loop batches", line=dict(color="#e377c2"))
    line("vss", "vss_eval", "held-out pairs", line=dict(color="#7f7f7f", dash="dot"))
    line("diag", "corr_diag_mean", "held-out pairs", line=dict(color="#bcbd22"))
    # the whole range of C_ii, so noise around 0 is not magnified into a zigzag: 1 would mean
    # identical features for the paired D_f and D_v samples, 0 unrelated ones
    diag = [v for v in _series(records, "corr_diag_mean") if v is not None]
    fig.update_yaxes(range=[min([-0.25, *diag]) - 0.05, 1.1], row=AT["diag"][0], col=AT["diag"][1])
    fig.add_hline(y=1, line=dict(color="grey", dash="dash"), row=AT["diag"][0], col=AT["diag"][1],
                  annotation_text="1 = identical", annotation_position="bottom right", annotation_font_size=10)
    if records and records[-1].get("corr") is not None and len(records[-1]["corr"]):
        corr = records[-1]["corr"]
        bound = symmetric_scale(corr)
        sub = fig.get_subplot(*AT["corr"])
        y0, y1 = sub.yaxis.domain
        # the colour scale fitted to the values (symmetric around 0), its bar right beside the matrix
        fig.add_trace(go.Heatmap(z=corr, zmin=-bound, zmax=bound, zmid=0, colorscale="RdBu", reversescale=True,
                                 showscale=True, name="C", showlegend=False,
                                 colorbar=dict(title=dict(text="C_ij", side="right"), x=sub.xaxis.domain[1] + 0.01,
                                               xanchor="left", y=(y0 + y1) / 2, yanchor="middle", len=y1 - y0,
                                               thickness=14)), *AT["corr"])
        fig.update_yaxes(autorange="reversed", title_text="feature of D_v (j)", row=AT["corr"][0], col=1)
        fig.update_xaxes(title_text="feature of D_f (i)", row=AT["corr"][0], col=1)
    for panel, ytitle in {"la": "L_A (↑ attacker winning)", "att": "% (chance 50)", "acc": "accuracy (%)",
                          "ce": "cross-entropy", "vss": "V_ss", "diag": "mean C_ii"}.items():
        row, col = AT[panel]
        fig.update_xaxes(title_text="iteration", row=row, col=col)
        fig.update_yaxes(title_text=ytitle, row=row, col=col)
    for a in fig.layout.annotations:
        if a.text in PANELS:
            a.font = dict(size=13)
    _panel_legends(fig, used, FIG_HEIGHT, FIG_MARGIN)
    fig.update_layout(title=dict(text=title, x=0, xanchor="left"), autosize=True, height=FIG_HEIGHT,
                      margin=FIG_MARGIN)
    return fig


class LivePlot:
    """A callback for :func:`advunlearn.dau.unlearn.adversarial_unlearn` that redraws the figure per record."""

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


def method_label(name: str) -> str:
    """A method's table label (``neggrad_plus`` -> ``NegGrad+``), as the tables print it."""
    from ..methods import label

    return label(name)


# 24 distinct colours for the methods (a registry of 15 and more): Retrain dark grey, Ours the red that
# the course uses for it, the others in registry order, no red among them.
OURS_COLOR, RETRAIN_COLOR = "#d62728", "#444444"
_METHOD_PALETTE = ("#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#bcbd22", "#e377c2", "#000080",
                   "#00a08b", "#b68100", "#511cfb", "#6c7c32", "#862a16", "#620042", "#778aae", "#1ca71c", "#da60ca",
                   "#6c4516", "#0d2a63", "#22ffa7", "#b2828d", "#750d86", "#2e91e5")


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """One distinct colour per method: Retrain grey, Ours (and its ablation) in reds, the rest from a palette."""
    fixed = {"retrain": RETRAIN_COLOR, "retrain_seed2": "#999999", "ours": OURS_COLOR, "ours_no_vss": "#ff9896"}
    out, i = {}, 0
    for m in methods:
        if m in fixed:
            out[m] = fixed[m]
        else:
            out[m] = _METHOD_PALETTE[i % len(_METHOD_PALETTE)]
            i += 1
    return out


def is_ours(name: str) -> bool:
    """Whether ``name`` is the paper's method (highlighted in the figures; its ablation is not)."""
    return name == "ours"


def confidence_panels(records: Sequence[Mapping], before: Mapping[str, Sequence[float]] | None = None,
                      title: str = "the defender's confidence p_y, per method", cols: int = 3):
    """04's histograms from result records' ``confidence`` (shares per equal bin of p_y on [0, 1]):
    one panel per method (titled with its table label; Ours framed in red) with its D_f and D_t as
    bars, Retrain's D_f (dashed) and θ₀'s D_f before unlearning (``before``, dotted) as reference lines.
    The share axis is logarithmic: most of the mass sits at p_y ≈ 1, the tail below is what differs.
    Records without ``confidence`` are skipped."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    recs = [r for r in records if r.get("confidence")]
    ret = next((r for r in recs if r["method"] == "retrain"), None)
    n = max(1, len(recs))
    rows, cols = math.ceil(n / cols), min(cols, n)
    titles = [(f"<b>{method_label(r['method'])}</b>" if is_ours(r["method"]) else method_label(r["method"]))
              for r in recs] or ["(no records)"]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles,
                        vertical_spacing=min(0.3, 0.5 / rows), horizontal_spacing=0.08)
    shown = set()
    positive = [v for rec in recs for k in ("forget", "test") for v in rec["confidence"][k] if v > 0]
    positive += [v for v in (before or {}).get("forget", []) if v > 0]
    floor = min(positive, default=1e-3)
    y_range = [math.log10(floor) - 0.3, 0.05]  # log axis: every non-empty bin and the full share 1

    def trace(kind, name, values, color, r, c, **kw):
        bins = len(values)
        x = [(i + 0.5) / bins for i in range(bins)]
        first = name not in shown
        shown.add(name)
        y = [v if v > 0 else None for v in values]  # an empty bin has no height on a log axis
        if kind == "bar":
            t = go.Bar(x=x, y=y, width=1 / bins, name=name, marker_color=color, opacity=0.55,
                       legendgroup=name, showlegend=first)
        else:
            t = go.Scatter(x=x, y=y, mode="lines", name=name, line=dict(color=color, shape="hvh", **kw),
                           legendgroup=name, showlegend=first, connectgaps=False)
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
        fig.update_yaxes(title_text="share (log)", type="log", range=y_range, dtick=1, exponentformat="power", row=r, col=c)
        if is_ours(rec["method"]):  # Ours highlighted: a red frame around its panel
            sub = fig.get_subplot(r, c)
            fig.add_shape(type="rect", xref="paper", yref="paper", x0=sub.xaxis.domain[0] - 0.005,
                          x1=sub.xaxis.domain[1] + 0.005, y0=sub.yaxis.domain[0], y1=sub.yaxis.domain[1],
                          line=dict(color=OURS_COLOR, width=3), fillcolor="rgba(0,0,0,0)", layer="above")
    height = 290 * rows + 130
    # the legend under the figure's title, above the first row's panel titles
    fig.update_layout(barmode="overlay", title=dict(text=title, y=1 - 12 / height, yanchor="top"), autosize=True,
                      height=height, legend=dict(orientation="h", yref="container", y=1 - 48 / height, yanchor="top",
                                                 x=0, xanchor="left"),
                      margin=dict(l=60, r=30, t=130, b=50))
    return fig


def mia_figure(records: Sequence[Mapping], dataset: str, scheme: str, sparsity: float = 0.0, title: str | None = None):
    """Figure 2 for teaching: MIA efficacy on D_f per metric attack (x), one bar per method in its own
    colour, labelled as in the tables; Retrain (the target) hatched, Ours outlined in black.  A single
    seed has no error bar."""
    import plotly.graph_objects as go

    from ..report import ATTACK_LABELS, figure2_data

    data = figure2_data(records, dataset, scheme, sparsity)
    if not data:
        raise ValueError(f"no records with 'mia' for {dataset}/{scheme}/sparsity={sparsity}")
    colors = method_colors(list(data))
    x = [ATTACK_LABELS[a] for a in ATTACK_LABELS]
    fig = go.Figure()
    for m, stats in data.items():
        n = max(len(stats[a].values) for a in ATTACK_LABELS)
        err = dict(type="data", array=[stats[a].std for a in ATTACK_LABELS], visible=True) if n > 1 else None
        fig.add_bar(name=method_label(m), x=x, y=[stats[a].mean for a in ATTACK_LABELS], error_y=err,
                    marker=dict(color=colors[m], pattern_shape="/" if m == "retrain" else "",
                                line=dict(color="black", width=3 if is_ours(m) else 0.5)),
                    hovertemplate="%{x}: %{y:.2f}%<extra>" + method_label(m) + "</extra>")
    fig.update_layout(barmode="group", template="plotly_white", yaxis_title="MIA efficacy on D_f (%)",
                      yaxis_range=[0, 105], xaxis_title="metric attack", legend_title_text="method",
                      title=title or f"MIA efficacy on D_f per attack ({dataset}, {scheme}, sparsity {sparsity:g}): "
                                     "Retrain (hatched) is the target, Ours outlined",
                      autosize=True, height=460, margin=dict(l=60, r=30, t=60, b=50))
    return fig


def training_curve(records: Sequence[dict], title: str = "training loss"):
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[r["step"] for r in records], y=[r["loss"] for r in records], mode="lines"))
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="cross-entropy", autosize=True, height=300,
                      margin=dict(l=60, r=20, t=50, b=50))
    return fig


METRIC_NAMES = {"UA": "UA", "RA": "RA", "TA": "TA", "MIA_efficacy": "MIA-efficacy", "disparity": "Avg. Disparity"}
METRIC_COLORS = {"UA": "#d62728", "RA": "#1f77b4", "TA": "#2ca02c", "MIA_efficacy": "#9467bd", "disparity": "#000000"}
# the lines of one trade-off panel: one per value of the other hyperparameter
SERIES_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")


def tradeoff_figure(points: Sequence[dict], x: str = "alpha", title: str = "forget / retain trade-off",
                    retrain: Mapping | None = None, series: str | None = None,
                    keys: Sequence[str] = ("UA", "RA", "TA", "MIA_efficacy"), mark: Mapping | None = None):
    """Metrics against one hyperparameter ``x`` from grid points: one small panel per metric (its own
    y range, Retrain's value as a dotted black line), one coloured line per value of ``series`` (e.g. β)
    with a legend of those values only; ``mark`` ({"alpha": .., "beta": ..}, e.g. the course's
    configuration) is circled where the grid has it."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[METRIC_NAMES.get(k, k) for k in keys],
                        vertical_spacing=0.2 if rows > 1 else 0.1, horizontal_spacing=0.09)
    # β spans orders of magnitude and includes 0: its values are drawn as evenly spaced categories
    category = x == "beta"
    xs = (lambda v: f"{v:g}") if category else (lambda v: v)
    groups = sorted({p[series] for p in points}) if series else [None]
    for i, k in enumerate(keys):
        r, c = i // cols + 1, i % cols + 1
        vals = [p[k] for p in points] + ([retrain[k]] if retrain and k in retrain else [])
        for g_i, g in enumerate(groups):
            pts = sorted((p for p in points if series is None or p[series] == g), key=lambda p: p[x])
            name = f"{_greek(series)}={g:g}" if series else METRIC_NAMES.get(k, k)
            fig.add_trace(go.Scatter(x=[xs(p[x]) for p in pts], y=[p[k] for p in pts], name=name, mode="lines+markers",
                                     legendgroup=name, showlegend=i == 0,
                                     line=dict(color=SERIES_COLORS[g_i % len(SERIES_COLORS)] if series else METRIC_COLORS.get(k))),
                          r, c)
        if retrain and k in retrain:
            fig.add_hline(y=retrain[k], line=dict(color="black", dash="dot", width=1.5), row=r, col=c)
            if i == 0:
                fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="Retrain (target)",
                                         line=dict(color="black", dash="dot")), r, c)
        if mark is not None:
            hit = [p for p in points if all(abs(p[h] - mark[h]) < 1e-12 for h in ("alpha", "beta") if h in mark)]
            if hit:
                fig.add_trace(go.Scatter(x=[xs(hit[0][x])], y=[hit[0][k]], mode="markers", name="the course's configuration",
                                         legendgroup="mark", showlegend=i == 0,
                                         marker=dict(symbol="star", size=15, color="gold", line=dict(color="black", width=1))),
                              r, c)
        fig.update_yaxes(range=padded_range(vals), title_text="points" if k == "disparity" else "%", row=r, col=c)
        fig.update_xaxes(title_text=_greek(x), type="category" if category else None, row=r, col=c)
    height = 300 * rows + 130
    # the legend under the figure's title, above the panels' titles
    fig.update_layout(title=dict(text=title, y=1 - 12 / height, yanchor="top"), autosize=True, height=height,
                      legend=dict(orientation="h", yref="container", y=1 - 48 / height, yanchor="top", x=0,
                                  xanchor="left", title_text=f"{_greek(series)}:" if series else None),
                      margin=dict(l=60, r=30, t=130, b=50))
    return fig


def _greek(name: str | None) -> str:
    return {"alpha": "α", "beta": "β"}.get(name or "", name or "")


__all__ = ["unlearning_figure", "LivePlot", "heatmap", "feature_histograms", "confidence_histograms", "confidence_panels",
           "training_curve", "tradeoff_figure", "mia_figure", "method_label", "method_colors", "padded_range",
           "symmetric_scale", "CHANCE_LA"]
