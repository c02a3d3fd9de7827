"""U-LiRA's records as the report's tables, and the figures of notebook 06.

The records are what ``advunlearn ulira`` writes (:func:`advunlearn.studies.ulira.ulira_evaluate`);
:func:`ulira_markdown` and :func:`ulira_seeds_markdown` are the report's ``ulira`` parts.  The figures
(plotly, imported when called) show one example's φ, the shadows' membership, the interval against
the number of shadows and the NeurIPS score's per-example ε.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

from ..evaluation.neurips_score import bucket_points
from ..methods import names as registered
from .records import method_label


# ---------------------------------------------------------------------------------------------
# figures (plotly, imported when called)
# ---------------------------------------------------------------------------------------------
def phi_figure(groups: dict, title: str, bins: int = 30):
    """Overlaid histograms of φ per group with each group's fitted Gaussian (one example's view)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    allv = np.concatenate([np.asarray(v, float) for v in groups.values()])
    grid = np.linspace(allv.min() - 1, allv.max() + 1, 200)
    for i, (label, v) in enumerate(groups.items()):
        v = np.asarray(v, float)
        color = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")[i % 4]
        fig.add_histogram(x=v, nbinsx=bins, histnorm="probability density", name=f"{label} (n={v.size})",
                          opacity=0.45, marker_color=color)
        if v.size >= 2:
            fig.add_scatter(x=grid, y=stats.norm.pdf(grid, v.mean(), max(v.std(ddof=1), 1e-3)), mode="lines",
                            line=dict(color=color), name=f"{label}: N({v.mean():.2f}, {v.std(ddof=1):.2f}²)")
    fig.update_layout(barmode="overlay", title=title, xaxis_title="logit-scaled confidence φ = log(p_y / (1 − p_y))",
                      yaxis_title="density", template="plotly_white", autosize=True)
    return fig


def membership_figure(member, n_targets: int = 60):
    """Which target each shadow trains on and forgets (the first ``n_targets`` targets)."""
    import plotly.graph_objects as go

    m = np.asarray(member, bool)[:, :n_targets].astype(int)
    fig = go.Figure(go.Heatmap(z=m, colorscale=[[0, "#f0f0f0"], [1, "#1f77b4"]], showscale=False,
                               hovertemplate="shadow %{y}, target %{x}: %{z}<extra></extra>"))
    fig.update_layout(title="Shadow membership: blue = trained on, then unlearned (pairs of complementary halves)",
                      xaxis_title="target example", yaxis_title="shadow model", template="plotly_white",
                      yaxis_autorange="reversed", height=320, autosize=True)
    return fig


def ci_vs_shadows_figure(curves: dict, metric: str = "accuracy"):
    """``{method: ci_vs_shadows rows}`` -> the estimate and its 95% interval against the number of shadows."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, rows in curves.items():
        k = [r["k"] for r in rows]
        v = [100 * r[metric] if metric == "accuracy" else r[metric] for r in rows]
        lo = [100 * r[f"{metric}_ci"][0] if metric == "accuracy" else r[f"{metric}_ci"][0] for r in rows]
        hi = [100 * r[f"{metric}_ci"][1] if metric == "accuracy" else r[f"{metric}_ci"][1] for r in rows]
        fig.add_scatter(x=k, y=v, mode="lines+markers", name=label,
                        error_y=dict(type="data", symmetric=False, array=np.subtract(hi, v), arrayminus=np.subtract(v, lo)))
    chance = 50 if metric == "accuracy" else 0.5
    fig.add_hline(y=chance, line_dash="dash", line_color="gray", annotation_text="indistinguishable from retraining")
    fig.update_layout(title=f"U-LiRA {metric} and its 95% interval vs the number of shadow models",
                      xaxis_title="shadow models K", yaxis_title="attack accuracy (%)" if metric == "accuracy" else "AUC",
                      xaxis_type="log", template="plotly_white", autosize=True)
    return fig


def epsilon_figure(eps: dict, n_models: int):
    """Histograms of the per-example ε of the NeurIPS score, with the bucket edges that still score."""
    import plotly.graph_objects as go


    fig = go.Figure()
    for label, e in eps.items():
        fig.add_histogram(x=np.minimum(np.asarray(e, float), 10.0), nbinsx=40, name=label, opacity=0.5)
    for start, pts in bucket_points(n_models):
        fig.add_vline(x=start + 0.5, line_dash="dot", line_color="gray")
    fig.update_layout(barmode="overlay", template="plotly_white", autosize=True,
                      title=f"Per-example ε (N = {n_models}; dotted: bucket edges, ε beyond the last scores 0; "
                            "ε > 10 drawn at 10)", xaxis_title="ε", yaxis_title="forget examples")
    return fig


# ---------------------------------------------------------------------------------------------
# records -> the report's table
# ---------------------------------------------------------------------------------------------
def load_ulira_records(results_dir, exclude=None) -> list[dict]:
    """Every U-LiRA record (``record == "ulira"``) in ``*.json`` files under ``results_dir``."""
    import json
    import warnings
    from pathlib import Path

    out = []
    for path in sorted(Path(results_dir).rglob("*.json")):
        if exclude is not None and Path(exclude) in path.resolve().parents:
            continue
        try:
            obj = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            warnings.warn(f"skipping unreadable JSON file {path}: {e}")
            continue
        for item in obj if isinstance(obj, list) else [obj]:
            if isinstance(item, dict) and item.get("record") == "ulira" and "method" in item and "ulira" in item:
                out.append(item)
    return out


def _ci(v, ci, scale=100.0, digits=1) -> str:
    if v is None:
        return "–"
    s = f"{scale * v:.{digits}f}"
    if ci and all(c is not None and math.isfinite(c) for c in ci):
        s += f" [{scale * ci[0]:.{digits}f}, {scale * ci[1]:.{digits}f}]"
    return s


def _planned_k(r: dict):
    """The shadows a record's run planned (its K); fewer were used where runs diverged (``diverged``)."""
    return (r.get("shadows") or {}).get("n_shadows", r["ulira"].get("n_shadows"))


def _diverged_note(r: dict, label: str) -> str | None:
    d = r.get("diverged")
    if not d:
        return None
    accs = ", ".join(f"{a.get('retain', float('nan')):.1f}%" for a in d.get("accuracy", []))
    return (f"{method_label(r['method'])}, {label}: diverged on shadow(s) {d['shadows']} of {d['of']} (non-finite "
            f"outputs; retain accuracy {accs}); judged on the {r['ulira'].get('n_shadows')} shadows of the other "
            f"pairs (K). A diverged model is told apart from a retrained one at once: this row flatters it.")


def ulira_markdown(records: Sequence[dict]) -> str:
    """Markdown table: per setting and method, U-LiRA accuracy and AUC, TPR at low FPR (where the
    counts resolve it), the NeurIPS 2023 score and its forgetting quality, with 95% intervals."""
    if not records:
        return "_No U-LiRA records (advunlearn ulira ...)._\n"
    last: dict[tuple, dict] = {}
    for r in records:  # the last record per (setting, method, shadows) wins (a rerun)
        last[(r["dataset"], r["scheme"], float(r.get("sparsity", 0)), r["seed"], r.get("profile"), r["method"],
              _planned_k(r))] = r

    order = list(registered())
    keys = sorted(last, key=lambda k: (*map(str, k[:5]), k[6] or 0, order.index(k[5]) if k[5] in order else 99, k[5]))
    head = ["Setting", "Method", "K", "U-LiRA acc. (%)", "U-LiRA AUC", "TPR@1% FPR (%)", "TPR@0.1% FPR (%)",
            "NeurIPS score", "forgetting quality F", "RA_u/RA_r", "TA_u/TA_r"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([" --- "] * 2 + [" ---: "] * (len(head) - 2)) + "|"]
    notes = set()
    for k in keys:
        r = last[k]
        u, n = r["ulira"], r.get("neurips", {})
        tprs = []
        for f in ("1%", "0.1%"):
            if u.get(f"tpr@{f}") is not None:
                tprs.append(_ci(u[f"tpr@{f}"], u.get(f"tpr@{f}_ci")))
            else:
                tprs.append("n/a")
                if u.get(f"tpr@{f}_note"):
                    notes.add(f"TPR@{f} FPR: {u[f'tpr@{f}_note']}.")
        label = f"{k[0]} {k[1]} s{k[2]:g} seed {k[3]}" + (f" ({k[4]})" if k[4] else "")
        note = _diverged_note(r, label)
        if note:
            notes.add(note)
        cells = [label, ("**Retrain (floor)**" if k[5] == "retrain" else method_label(k[5])), str(u.get("n_shadows", "")),
                 _ci(u["accuracy"], u.get("accuracy_ci")), _ci(u["auc"], u.get("auc_ci"), 1.0, 3), *tprs,
                 _ci(n.get("score"), n.get("score_ci"), 1.0, 3), _ci(n.get("forgetting_quality"),
                                                                     n.get("forgetting_quality_ci"), 1.0, 3),
                 f"{n['ra_ratio']:.3f}" if "ra_ratio" in n else "–", f"{n['ta_ratio']:.3f}" if "ta_ratio" in n else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "U-LiRA: 50% accuracy / 0.5 AUC = unlearned models indistinguishable from retrained ones; "
              "read each method against the Retrain row (the floor with this many shadows). Intervals: 95%, "
              "two-way (models x examples) bootstrap for U-LiRA, Clopper-Pearson for TPR, Student t over "
              "examples for the NeurIPS score (N = K/2 unlearned vs K/2 retrained models per example)."]
    lines += sorted(notes)
    return "\n".join(lines) + "\n"


def ulira_seeds_rows(records: Sequence[dict]) -> list[dict]:
    """Per (dataset, scheme, sparsity, profile, K) and method, over the seeds that ran it: the mean U-LiRA
    accuracy and NeurIPS score with 95% Student-t intervals over seeds (the last record per seed wins)."""
    import statistics

    from scipy.stats import t as student

    last: dict[tuple, dict] = {}
    for r in records:
        last[(r["dataset"], r["scheme"], float(r.get("sparsity", 0)), r.get("profile"), _planned_k(r),
              r["method"], r["seed"])] = r
    groups: dict[tuple, list[dict]] = {}
    for k, r in last.items():
        groups.setdefault(k[:6], []).append(r)

    def stat(vals):
        vals = [float(v) for v in vals if v is not None and math.isfinite(float(v))]
        if not vals:
            return None, None
        m = statistics.fmean(vals)
        if len(vals) < 2:
            return m, None
        h = float(student.ppf(0.975, len(vals) - 1)) * statistics.stdev(vals) / math.sqrt(len(vals))
        return m, (m - h, m + h)

    rows = []
    for k, rs in groups.items():
        acc, acc_ci = stat(r["ulira"]["accuracy"] for r in rs)
        score, score_ci = stat(r.get("neurips", {}).get("score") for r in rs)
        rows.append({"dataset": k[0], "scheme": k[1], "sparsity": k[2], "profile": k[3], "n_shadows": k[4],
                     "method": k[5], "seeds": sorted(r["seed"] for r in rs), "accuracy": acc, "accuracy_ci": acc_ci,
                     "score": score, "score_ci": score_ci,
                     "diverged": {r["seed"]: r["diverged"] for r in rs if r.get("diverged")}})
    return rows


def ulira_seeds_markdown(records: Sequence[dict]) -> str:
    """Markdown: U-LiRA accuracy and the NeurIPS score per method, mean over seeds with a 95% Student-t
    interval over seeds (the seed-to-seed spread, on top of each seed's own sampling interval)."""
    rows = ulira_seeds_rows(records)
    if not rows:
        return "_No U-LiRA records (advunlearn ulira ...)._\n"

    order = list(registered())
    rows.sort(key=lambda r: (r["dataset"], r["scheme"], r["sparsity"], str(r["profile"]), r["n_shadows"] or 0,
                             order.index(r["method"]) if r["method"] in order else 99, r["method"]))
    lines = ["| Setting | Method | K | seeds | U-LiRA acc. (%) | NeurIPS score |", "| --- | --- | ---: | --- | ---: | ---: |"]
    for r in rows:
        label = f"{r['dataset']} {r['scheme']} s{r['sparsity']:g}" + (f" ({r['profile']})" if r["profile"] else "")
        name = "**Retrain (floor)**" if r["method"] == "retrain" else method_label(r["method"])
        seeds = ", ".join(f"{s}*" if s in r.get("diverged", {}) else str(s) for s in r["seeds"])
        lines.append(f"| {label} | {name} | {r['n_shadows']} | {seeds} | {_ci(r['accuracy'], r['accuracy_ci'])} | "
                     f"{_ci(r['score'], r['score_ci'], 1.0, 3)} |")
    lines += ["", "Mean over seeds; intervals: 95% Student t over the seeds (n = number of seeds)."]
    if any(r.get("diverged") for r in rows):
        lines.append("\\* runs of this method diverged on some shadows of that seed; that seed's numbers come from "
                     "the other shadow pairs (its per-seed table says which).")
    return "\n".join(lines) + "\n"


__all__ = ["load_ulira_records", "ulira_markdown", "ulira_seeds_rows", "ulira_seeds_markdown", "phi_figure",
           "membership_figure", "ci_vs_shadows_figure", "epsilon_figure"]
