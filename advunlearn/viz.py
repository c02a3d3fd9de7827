"""Plotly figures for the notebooks: the live unlearning plot, the cross-correlation heatmap, trade-offs.

plotly and IPython are imported lazily so the core runs without them.  The live plot redraws a plain
figure with ``clear_output(wait=True)``: live in JupyterLab, one static figure in an executed
notebook (papermill/nbval).
"""

from __future__ import annotations

from typing import Sequence

LOSS_KEYS = (("attacker_loss", "attacker loss L_A"), ("ce", "defender CE on D_r"), ("vss", "V_ss"))
ACC_KEYS = (("forget_acc", "forget acc"), ("retain_acc", "retain acc"), ("attacker_acc", "attacker acc (D_f vs D_v)"))


def unlearning_figure(records: Sequence[dict], title: str = "Adversarial unlearning"):
    """Three panels: losses, accuracies (%), and the latest D_f-D_v feature cross-correlation matrix."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    # V_ss (a sum over d² correlation entries) is orders of magnitude above the other losses: it
    # gets its own right-hand axis so the attacker and defender losses stay readable.
    fig = make_subplots(rows=1, cols=3, column_widths=[0.36, 0.36, 0.28], horizontal_spacing=0.1,
                        specs=[[{"secondary_y": True}, {}, {}]],
                        subplot_titles=("losses", "accuracy (%)", "cross-correlation C (D_f × D_v)"))
    it = [r["iteration"] for r in records]
    for k, name in LOSS_KEYS:
        fig.add_trace(go.Scatter(x=it, y=[r.get(k) for r in records], name=name + (" (right axis)" if k == "vss" else ""),
                                 mode="lines+markers"), 1, 1, secondary_y=k == "vss")
    for k, name in ACC_KEYS:
        fig.add_trace(go.Scatter(x=it, y=[r.get(k) for r in records], name=name, mode="lines+markers"), 1, 2)
    if records and records[-1].get("corr") is not None:
        fig.add_trace(go.Heatmap(z=records[-1]["corr"], zmin=-1, zmax=1, colorscale="RdBu", reversescale=True,
                                 showscale=True, colorbar=dict(x=1.02, len=0.9)), 1, 3)
        fig.update_yaxes(autorange="reversed", row=1, col=3)
    fig.update_yaxes(title_text="V_ss", secondary_y=True, row=1, col=1, showgrid=False)
    fig.update_xaxes(title_text="iteration", row=1, col=1)
    fig.update_xaxes(title_text="iteration", row=1, col=2)
    fig.update_layout(title=title, height=380, width=1150, legend=dict(orientation="h", y=-0.25),
                      margin=dict(l=40, r=40, t=60, b=40))
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


def heatmap(matrix, title: str = "cross-correlation", zmin: float = -1, zmax: float = 1):
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=matrix, zmin=zmin, zmax=zmax, colorscale="RdBu", reversescale=True))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, height=380, width=440, margin=dict(l=30, r=30, t=50, b=30))
    return fig


def feature_histograms(member: dict, nonmember: dict, title: str = "attacker inputs"):
    """Histograms of (confidence, mean sensitivity) for members vs non-members; dicts of 1-D arrays."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    keys = list(member)
    fig = make_subplots(rows=1, cols=len(keys), subplot_titles=keys)
    for j, k in enumerate(keys, 1):
        for d, name, col in ((member, "members (D)", "#1f77b4"), (nonmember, "non-members (D_v)", "#ff7f0e")):
            fig.add_trace(go.Histogram(x=list(map(float, d[k])), name=name, marker_color=col, opacity=0.6,
                                       histnorm="probability", nbinsx=40, showlegend=j == 1), 1, j)
    fig.update_layout(barmode="overlay", title=title, height=330, width=900, margin=dict(l=30, r=30, t=60, b=30))
    return fig


def training_curve(records: Sequence[dict], title: str = "training loss"):
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[r["step"] for r in records], y=[r["loss"] for r in records], mode="lines"))
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="cross-entropy", height=300, width=600,
                      margin=dict(l=40, r=20, t=50, b=40))
    return fig


def tradeoff_figure(points: Sequence[dict], x: str = "alpha", title: str = "forget / retain trade-off"):
    """Accuracies and MIA-efficacy against one hyperparameter, from grid result records."""
    import plotly.graph_objects as go

    pts = sorted(points, key=lambda p: p[x])
    fig = go.Figure()
    for k in ("UA", "RA", "TA", "MIA_efficacy"):
        fig.add_trace(go.Scatter(x=[p[x] for p in pts], y=[p[k] for p in pts], name=k, mode="lines+markers"))
    fig.update_layout(title=title, xaxis_title=x, yaxis_title="%", height=340, width=620)
    return fig


__all__ = ["unlearning_figure", "LivePlot", "heatmap", "feature_histograms", "training_curve", "tradeoff_figure"]
