"""Ours against the best baseline, seed by seed, and how tuning changed each method's standing.

``paired``: for each setting (dataset, scheme, sparsity), the baseline with the lowest mean Avg.
Disparity over the reporting seeds is Ours' opponent; the per-seed differences d_s = disparity(Ours, s)
− disparity(best, s), both against seed s's Retrain, give a mean and a 95% Student-t interval.  The
verdict is plain: **wins** when the whole interval is below 0 (Ours closer to Retrain), **loses** when
it is above 0, **within the noise** otherwise.  Picking the opponent by the same seeds' means favours
the opponent, so a "wins" is if anything conservative.

``standing``: each method's mean Avg. Disparity and rank per setting under two sets of records (say,
protocol 1's tables and protocol 2's), side by side.
"""

from __future__ import annotations

import math
import statistics
from typing import Iterable, Mapping, Sequence

# Rows that are references or Ours itself, never Ours' opponent.
NOT_BASELINES = ("retrain", "retrain_seed2", "ours", "ours_no_vss")
VERDICTS = ("wins", "within the noise", "loses")


def per_seed_disparity(records: Iterable[Mapping]) -> dict[tuple, dict[str, dict[int, float]]]:
    """(dataset, scheme, sparsity) -> method -> seed -> Avg. Disparity against that seed's Retrain
    (failed runs left out)."""
    from ..evaluation.metrics import avg_disparity, failure
    from .records import _by_setting, _dedupe

    recs = [r for r in _dedupe(records) if not failure(r)]
    out: dict[tuple, dict[str, dict[int, float]]] = {}
    for setting, methods in _by_setting(recs).items():
        retrain = methods.get("retrain", {})
        out[setting] = {m: {s: avg_disparity(r, retrain[s]) for s, r in seeds.items() if s in retrain}
                        for m, seeds in methods.items()}
    return out


def t_interval(diffs: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the Student-t interval of the mean of ``diffs`` (needs at least 2)."""
    if len(diffs) < 2:
        raise ValueError(f"a paired interval needs at least 2 seeds, got {len(diffs)}")
    from scipy.stats import t

    mean = statistics.fmean(diffs)
    half = float(t.ppf(0.5 + level / 2, len(diffs) - 1)) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return mean, mean - half, mean + half


def verdict(low: float, high: float) -> str:
    return "wins" if high < 0 else "loses" if low > 0 else "within the noise"


def paired(records: Iterable[Mapping], ours: str = "ours", baselines: Sequence[str] | None = None) -> list[dict]:
    """One row per setting: Ours' opponent (the best baseline by mean disparity), the seeds both ran,
    the mean difference with its 95% interval, the verdict, and the noise floor (Retrain (another
    seed)'s mean disparity) for scale."""
    rows = []
    for (ds, sc, sp), methods in sorted(per_seed_disparity(records).items()):
        if ours not in methods:
            continue
        cands = {m: d for m, d in methods.items()
                 if m not in NOT_BASELINES and (baselines is None or m in baselines) and d}
        if not cands:
            continue
        best = min(cands, key=lambda m: (statistics.fmean(cands[m].values()), m))
        seeds = sorted(set(methods[ours]) & set(cands[best]))
        if len(seeds) < 2:
            continue
        diffs = [methods[ours][s] - cands[best][s] for s in seeds]
        mean, lo, hi = t_interval(diffs)
        floor = methods.get("retrain_seed2")
        rows.append({"dataset": ds, "scheme": sc, "sparsity": sp, "opponent": best, "seeds": seeds,
                     "ours": statistics.fmean(methods[ours][s] for s in seeds),
                     "opponent_disparity": statistics.fmean(cands[best][s] for s in seeds),
                     "diff": mean, "low": lo, "high": hi, "verdict": verdict(lo, hi), "diffs": diffs,
                     "noise_floor": statistics.fmean(floor.values()) if floor else None})
    return rows


def paired_markdown(rows: Sequence[Mapping]) -> str:
    from ..methods import label

    lines = ["| setting | best baseline | seeds | Ours | best baseline | Ours − best (95% CI) | verdict | "
             "noise floor |", "|---|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        sp = "dense" if r["sparsity"] == 0 else f"{r['sparsity']:.0%} sparse"
        floor = "–" if r["noise_floor"] is None else f"{r['noise_floor']:.2f}"
        lines.append(f"| {r['scheme']}, {sp} | {label(r['opponent'])} | {len(r['seeds'])} | {r['ours']:.2f} | "
                     f"{r['opponent_disparity']:.2f} | {r['diff']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}] | "
                     f"**{r['verdict']}** | {floor} |")
    return "\n".join(lines)


def standing(before: Iterable[Mapping], after: Iterable[Mapping]) -> list[dict]:
    """Per setting and method: mean Avg. Disparity and rank (1 = closest to Retrain, among the rows
    that are not references) in ``before`` and in ``after``."""
    def ranks(recs):
        out = {}
        for setting, methods in per_seed_disparity(recs).items():
            means = {m: statistics.fmean(d.values()) for m, d in methods.items() if d and m not in ("retrain",)}
            order = sorted((m for m in means if m != "retrain_seed2"), key=lambda m: means[m])
            out[setting] = {m: (means[m], order.index(m) + 1 if m in order else None) for m in means}
        return out

    b, a = ranks(before), ranks(after)
    rows = []
    for setting in sorted(set(b) | set(a)):
        for m in sorted(set(b.get(setting, {})) | set(a.get(setting, {}))):
            old, new = b.get(setting, {}).get(m), a.get(setting, {}).get(m)
            rows.append({"dataset": setting[0], "scheme": setting[1], "sparsity": setting[2], "method": m,
                         "before": old[0] if old else None, "rank_before": old[1] if old else None,
                         "after": new[0] if new else None, "rank_after": new[1] if new else None})
    return rows


def standing_markdown(rows: Sequence[Mapping]) -> str:
    from ..methods import label

    def cell(v, r):
        return "–" if v is None else f"{v:.2f}" + (f" (#{r})" if r else "")

    lines = ["| setting | method | before: Avg. Disparity (rank) | after: Avg. Disparity (rank) |",
             "|---|---|---:|---:|"]
    for r in rows:
        sp = "dense" if r["sparsity"] == 0 else f"{r['sparsity']:.0%} sparse"
        lines.append(f"| {r['scheme']}, {sp} | {label(r['method'])} | {cell(r['before'], r['rank_before'])} | "
                     f"{cell(r['after'], r['rank_after'])} |")
    return "\n".join(lines)


__all__ = ["per_seed_disparity", "t_interval", "verdict", "paired", "paired_markdown", "standing",
           "standing_markdown", "NOT_BASELINES", "VERDICTS"]
