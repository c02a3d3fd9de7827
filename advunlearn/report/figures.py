"""Figure 2 of the paper: the metric MIAs' success per method (plotly, imported when drawn)."""

from __future__ import annotations

from typing import Iterable, Mapping

from .records import (ATTACK_LABELS, DATASET_LABELS, SCHEME_LABELS, Stat, _dedupe, _label, method_key,
                      method_label, method_order)
from .tables import _settings, sparsity_label


def figure2_data(records: Iterable[Mapping], dataset: str, scheme: str, sparsity: float) -> dict[str, dict[str, Stat]]:
    """method -> attack -> Stat of MIA efficacy over seeds, for one setting (records with ``mia``)."""
    out: dict[str, dict[str, Stat]] = {}
    for r in _dedupe(records):
        if (r["dataset"], r["scheme"], r["sparsity"]) != (dataset, scheme, float(sparsity)) or not r.get("mia"):
            continue
        d = out.setdefault(method_key(r), {a: Stat() for a in ATTACK_LABELS})
        for a in ATTACK_LABELS:
            if a in r["mia"] and r["mia"][a] is not None:
                d[a].values.append(float(r["mia"][a]))
    order = list(method_order())
    return dict(sorted(out.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])))


def figure2(records: Iterable[Mapping], dataset: str, scheme: str, sparsity: float = 0.0):
    """Figure 2: grouped bars of MIA efficacy per metric attack (x) and method (bars); Retrain hatched.

    Error bars are the std over seeds.  The target is Retrain's bar, not 0 or 100.
    """
    import plotly.graph_objects as go

    data = figure2_data(records, dataset, scheme, sparsity)
    if not data:
        raise ValueError(f"no records with 'mia' for {dataset}/{scheme}/sparsity={sparsity}")
    x = [ATTACK_LABELS[a] for a in ATTACK_LABELS]
    fig = go.Figure()
    for m, stats in data.items():
        is_rt = m == "retrain"
        fig.add_bar(
            name=method_label(m), x=x, y=[stats[a].mean for a in ATTACK_LABELS],
            error_y=dict(type="data", array=[stats[a].std for a in ATTACK_LABELS], visible=True),
            marker=dict(color="#444444" if is_rt else None, pattern_shape="/" if is_rt else "",
                        line=dict(color="black", width=1.5 if is_rt else 0)),
            hovertemplate="%{x}: %{y:.2f}%<extra>" + method_label(m) + "</extra>")
    fig.update_layout(
        barmode="group", template="plotly_white", yaxis_title="MIA efficacy on D_f (%)", yaxis_range=[0, 105],
        title=f"MIA robustness: {_label(DATASET_LABELS, dataset)} {_label(SCHEME_LABELS, scheme)}, "
              f"{sparsity_label(sparsity)} (Retrain hatched = target)",
        legend_title_text="Method")
    return fig


def figure2_settings(records: Iterable[Mapping]) -> list[tuple[str, str, float]]:
    """Settings (dataset, scheme, sparsity) that have Figure 2 data, in table order."""
    recs = _dedupe(records)
    out = []
    for ds, sc in _settings(recs):
        for sp in sorted({r["sparsity"] for r in recs if r["dataset"] == ds and r["scheme"] == sc and r.get("mia")}):
            out.append((ds, sc, sp))
    return out
