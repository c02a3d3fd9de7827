"""Whether the tuning budget was enough: best score after 25%, 50% and 100% of each study's trials, and
the best-so-far curves as one SVG (docs/tuning.md shows both).

A study whose best score still drops between half and all of its trials may not have converged; the
table says so per method and setting, so a reader can judge the budget instead of trusting it.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

FRACTIONS = (0.25, 0.5, 1.0)


def best_so_far(record: Mapping) -> list[float]:
    """The lowest score among trials 0..i, for each i (trials in the order they were numbered)."""
    out, best = [], math.inf
    for t in sorted(record["trials"], key=lambda t: t["number"]):
        best = min(best, float(t["score"]))
        out.append(best)
    return out


def adequacy_rows(records: Sequence[Mapping], fractions: Sequence[float] = FRACTIONS) -> list[dict]:
    """Per study: the best score after each fraction of its trials, and how much the second half gained."""
    rows = []
    for r in records:
        curve = best_so_far(r)
        if not curve:
            continue
        n = len(curve)
        bests = {f: curve[max(1, math.ceil(f * n)) - 1] for f in fractions}
        half, full = bests.get(0.5, curve[n // 2]), curve[-1]
        rows.append({"method": r["method"], "setting": r["setting"], "n_trials": n,
                     **{f"best_{int(f * 100)}": bests[f] for f in fractions},
                     "anchor": r.get("default_score"), "gain_second_half": half - full,
                     "edges": r.get("edges") or {}})
    return rows


def adequacy_markdown(records: Sequence[Mapping]) -> str:
    """The adequacy table as markdown, one row per study (sorted by setting, then method)."""
    from ..methods import label

    lines = ["| setting | method | trials | published values | best @25% | best @50% | best @100% | "
             "second half gained |", "|---|---|---|---|---|---|---|---|"]
    for row in sorted(adequacy_rows(records), key=lambda r: (r["setting"], r["method"])):
        anchor = "–" if row["anchor"] is None else f"{row['anchor']:.3f}"
        lines.append(f"| {row['setting']} | {label(row['method'])} | {row['n_trials']} | {anchor} | "
                     f"{row['best_25']:.3f} | {row['best_50']:.3f} | {row['best_100']:.3f} | "
                     f"{row['gain_second_half']:.3f} |")
    return "\n".join(lines)


def chosen_markdown(records: Sequence[Mapping]) -> str:
    """Each study's chosen values (3 significant digits) and the bounds they sit at, if any (an edge
    that is not a hard limit; sorted as :func:`adequacy_markdown`): the second table of docs/tuning.md."""
    from ..methods import label

    lines = ["| setting | method | chosen values | edges |", "|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["setting"], r["method"])):
        vals = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in (r["chosen"] or {}).items())
        edge = ", ".join(f"{k} {side}" for k, side in (r.get("edges") or {}).items()) or "–"
        lines.append(f"| {r['setting']} | {label(r['method'])} | {vals} | {edge} |")
    return "\n".join(lines)


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def record_markdown(record: Mapping) -> str:
    """The tuning record as a markdown table: per study the default's and the chosen values' scores."""
    lines = ["| setting | method | trials | default score | chosen score | chosen values |",
             "|---|---|---:|---:|---:|---|"]
    for r in record["studies"]:
        vals = ", ".join(f"{k}={_fmt3(v)}" for k, v in (r["chosen"] or {}).items())
        lines.append(f"| {r['setting']} | {r['method']} | {r['n_trials']} | {_fmt3(r['default_score'])} | "
                     f"{_fmt3(r['chosen_score'])} | {vals} |")
    return "\n".join(lines)


def _fmt3(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.3f}".rstrip("0").rstrip(".")
    return str(v)


def spaces_markdown(methods: Sequence[str] | None = None) -> str:
    """Each tuned method's search space, its published values (trial 0; per setting where they differ),
    their source and the bounds it names hard limits: the table of docs/tuning.md."""
    from ..methods import get
    from .tuning import SETTINGS
    from .tuning_space import published_values, setting_key, tunable_methods

    lines = ["| method | space | published values (trial 0) | source | hard limits |", "|---|---|---|---|---|"]
    for m in methods or tunable_methods():
        spec = get(m)
        space = "; ".join(f"{k}: {v[0]} {v[1]}" if v[0] == "cat" else f"{k}: {v[0]} {_fmt(v[1])}–{_fmt(v[2])}"
                          for k, v in spec.space.items())
        anchors = {setting_key(s, sp): published_values(m, s, sp) for s, sp in SETTINGS}
        distinct = {}
        for key, values in anchors.items():
            distinct.setdefault(tuple(sorted(values.items())), []).append(key)
        pub = "<br>".join((f"{', '.join(keys)}: " if len(distinct) > 1 else "")
                          + ", ".join(f"{k}={_fmt(v)}" for k, v in values)
                          for values, keys in distinct.items())
        hard = "; ".join(f"{k} {side}: {why}" for k, sides in spec.hard_bounds.items()
                         for side, why in sides.items()) or "–"
        lines.append(f"| {spec.label} (`{m}`) | {space} | {pub} | {getattr(spec.module, 'SOURCE', '–')} | {hard} |")
    return "\n".join(lines)


PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#7b4173")


def best_so_far_svg(records: Sequence[Mapping], width: int = 920, panel_h: int = 230) -> str:
    """One panel per setting: best-so-far score (log scale) against the trial number, one line per
    method, with a legend.  Plain SVG, so it renders on any markdown viewer without a plotting library."""
    from ..methods import label

    settings = sorted({r["setting"] for r in records})
    methods = sorted({r["method"] for r in records})
    colour = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}
    cols, left, top, legend_w = 2, 50, 30, 130
    pw = (width - legend_w - left * cols) // cols
    rows = math.ceil(len(settings) / cols)
    height = top + rows * (panel_h + 45)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="11"><rect width="100%" height="100%" fill="white"/>']
    for i, setting in enumerate(settings):
        x0 = left + (i % cols) * (pw + left)
        y0 = top + (i // cols) * (panel_h + 45)
        recs = [r for r in records if r["setting"] == setting]
        curves = {r["method"]: best_so_far(r) for r in recs}
        vals = [v for c in curves.values() for v in c if v > 0 and math.isfinite(v) and v < 1e8]
        if not vals:
            continue
        lo, hi = math.log10(min(vals)), math.log10(max(vals))
        lo, hi = (lo - 0.05, hi + 0.05) if hi > lo else (lo - 0.5, hi + 0.5)
        n = max(len(c) for c in curves.values())
        out.append(f'<text x="{x0 + pw / 2}" y="{y0 - 8}" text-anchor="middle" font-weight="bold">{setting}</text>')
        out.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{panel_h}" fill="none" stroke="#999"/>')
        for k in range(math.floor(lo), math.ceil(hi) + 1):
            for m in (1, 2, 5):
                v = math.log10(m) + k
                if lo <= v <= hi:
                    y = y0 + panel_h * (hi - v) / (hi - lo)
                    out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
                    out.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end">{10 ** v:g}</text>')
        for t in sorted({0, n // 4, n // 2, n - 1}):
            x = x0 + pw * t / max(1, n - 1)
            out.append(f'<text x="{x:.1f}" y="{y0 + panel_h + 14}" text-anchor="middle">{t}</text>')
        out.append(f'<text x="{x0 + pw / 2}" y="{y0 + panel_h + 28}" text-anchor="middle">trial</text>')
        for m, c in curves.items():
            pts = [(x0 + pw * j / max(1, n - 1), y0 + panel_h * (hi - math.log10(max(v, 10 ** lo))) / (hi - lo))
                   for j, v in enumerate(c) if math.isfinite(v) and v < 1e8]
            if pts:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
                out.append(f'<polyline points="{path}" fill="none" stroke="{colour[m]}" stroke-width="1.6"/>')
    out.append(f'<text x="14" y="{top + panel_h / 2}" transform="rotate(-90 14 {top + panel_h / 2})" '
               'text-anchor="middle">best score so far (distance to Retrain, log)</text>')
    lx = width - legend_w + 10
    for j, m in enumerate(methods):
        y = top + 14 * j
        out.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{y}" y2="{y}" stroke="{colour[m]}" stroke-width="3"/>')
        out.append(f'<text x="{lx + 22}" y="{y + 4}">{label(m)}</text>')
    out.append("</svg>")
    return "\n".join(out)


__all__ = ["best_so_far", "adequacy_rows", "adequacy_markdown", "chosen_markdown", "record_markdown", "best_so_far_svg",
           "spaces_markdown", "FRACTIONS"]
