"""Tables 1 and 2 (and the strong attacks' table) as markdown, CSV and HTML."""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from ..evaluation.metrics import DISPARITY_KEYS, avg_disparity, failure
from .records import (DATASET_LABELS, METRIC_LABELS, SCHEME_LABELS, Stat, _dedupe, _label, method_key,
                      method_label, method_order, summarize, table1_methods, table2_methods)


def sparsity_label(sp: float) -> str:
    """0 -> "Dense", 0.95 -> "95% Sparse"."""
    return "Dense" if sp == 0 else f"{100 * sp:g}% Sparse"


@dataclass
class Table:
    """One table in the paper's layout: groups of (metric, sparsity) columns plus the run time."""

    title: str
    groups: list[tuple[str, list[str]]]   # [("UA", ["Dense", "95% Sparse"]), ..., ("Run Time min.", [""])]
    rows: list[tuple[str, list[str]]]     # [("Retrain", ["5.80 ± 0.12", ...]), ...]
    note: str = ""

    @property
    def columns(self) -> list[str]:
        """Flat column names: "Methods", "UA (Dense)", ..., "Run Time min."."""
        cols = ["Methods"]
        for g, subs in self.groups:
            cols += [f"{g} ({s})" if s else g for s in subs]
        return cols

    def to_markdown(self) -> str:
        """A GitHub-flavoured markdown table with a bold title line."""
        cols = self.columns
        lines = [f"**{self.title}**", "", "| " + " | ".join(cols) + " |",
                 "|" + "|".join([" --- "] + [" ---: "] * (len(cols) - 1)) + "|"]
        for label, cells in self.rows:
            lines.append("| " + " | ".join([label, *cells]) + " |")
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """CSV with one header row of flat column names and the "mean ± std" cells."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        for label, cells in self.rows:
            w.writerow([label, *cells])
        return buf.getvalue()

    def to_html(self) -> str:
        """An HTML table with the paper's two-level header (metric over Dense / Sparse)."""
        e = html.escape
        top = ['<th rowspan="2">Methods</th>']
        sub = []
        for g, subs in self.groups:
            if len(subs) == 1 and not subs[0]:
                top.append(f'<th rowspan="2">{e(g)}</th>')
            else:
                top.append(f'<th colspan="{len(subs)}">{e(g)}</th>')
                sub += [f"<th>{e(s)}</th>" for s in subs]
        body = "".join("<tr><th>" + e(label) + "</th>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>"
                       for label, cells in self.rows)
        note = f'<p class="note">{e(self.note)}</p>' if self.note else ""
        return (f'<table class="results"><caption>{e(self.title)}</caption><thead><tr>{"".join(top)}</tr>'
                f'<tr>{"".join(sub)}</tr></thead><tbody>{body}</tbody></table>{note}')


def build_table(records: Iterable[Mapping], dataset: str, scheme: str, methods: Sequence[str] | None = None,
                title: str | None = None, extra_methods: bool = True) -> Table:
    """One table for (dataset, scheme): rows ``methods`` (default: Table 1's; in order, those present),
    then methods the registry does not know.

    Columns: UA, MIA-Efficacy, RA, TA, Avg. Disparity, Disparity of Means, each per sparsity found
    (Dense first), and Run Time min. (dense run time, else the lowest sparsity's).
    """
    methods = table1_methods() if methods is None else methods
    summ = summarize(records)
    failed = [r for r in _dedupe(records) if failure(r) and r["dataset"] == dataset and r["scheme"] == scheme]
    failed_at = {(r["sparsity"], method_key(r)) for r in failed}
    keys = [k for k in summ if k[0] == dataset and k[1] == scheme] + \
        [(dataset, scheme, s, m) for s, m in failed_at]
    if not keys:
        raise ValueError(f"no records for dataset={dataset!r}, scheme={scheme!r}")
    sps = sorted({k[2] for k in keys})
    present = {k[3] for k in keys}
    rows_m = [m for m in methods if m in present]
    if extra_methods:
        rows_m += sorted(present - set(methods) - set(method_order()))
    metrics = (*DISPARITY_KEYS, "disparity", "disparity_of_means")
    groups = [(METRIC_LABELS[k], [sparsity_label(s) for s in sps]) for k in metrics]
    groups.append(("Run Time min.", [""]))
    rows = []
    for m in rows_m:
        cells = []
        for k in metrics:
            for s in sps:
                st = summ.get((dataset, scheme, s, m))
                cells.append(st[k].cell() if st else "failed" if (s, m) in failed_at else "–")
        rt = next((summ[(dataset, scheme, s, m)]["run_time_min"] for s in sps
                   if (dataset, scheme, s, m) in summ and summ[(dataset, scheme, s, m)]["run_time_min"].n), Stat())
        cells.append(rt.cell())
        n_failed = sum(method_key(r) == m for r in failed)
        rows.append((method_label(m) + (f" ({n_failed} failed)" if n_failed else ""), cells))
    ttl = title or f"{_label(DATASET_LABELS, dataset)} {_label(SCHEME_LABELS, scheme)}"
    note = ("Mean ± sample std over seeds; Avg. Disparity per seed against that seed's Retrain, then "
            "averaged; Disparity of Means: the Avg. Disparity of the mean row against Retrain's mean row "
            "(how the paper's tables read); run time of the dense run (or the sparse one if no dense run).")
    if failed:
        note += " Failed runs, left out of the numbers: " + "; ".join(_failed_line(r) for r in failed) + "."
    return Table(ttl, groups, rows, note)


def _failed_line(r: Mapping) -> str:
    return (f"{method_label(method_key(r))} {sparsity_label(r['sparsity'])} seed {r['seed']}: "
            f"{failure(r)}")


def _settings(records: Sequence[dict]) -> list[tuple[str, str]]:
    order_ds = list(DATASET_LABELS)
    pairs = {(r["dataset"], r["scheme"]) for r in records}
    return sorted(pairs, key=lambda p: (order_ds.index(p[0]) if p[0] in order_ds else len(order_ds), p[0],
                                        0 if p[1] == "random" else 1, p[1]))


def _table1_by_setting(recs: Sequence[dict]) -> list[tuple[str, str, Table]]:
    """Table 1 per (dataset, scheme): rows the registry's Table 1 methods (those present)."""
    out = []
    for ds, sc in _settings(recs):
        methods = {method_key(r) for r in recs if r["dataset"] == ds and r["scheme"] == sc}
        if methods - (set(method_order()) - set(table1_methods())):
            out.append((ds, sc, build_table(recs, ds, sc, table1_methods(),
                                            title=f"Table 1: {_label(DATASET_LABELS, ds)} {_label(SCHEME_LABELS, sc)}")))
    return out


def _table2_by_setting(recs: Sequence[dict]) -> list[tuple[str, str, Table]]:
    """Table 2 (V_ss ablation) per setting that has the ablation: the registry's Table 2 methods."""
    out = []
    for ds, sc in _settings(recs):
        methods = {method_key(r) for r in recs if r["dataset"] == ds and r["scheme"] == sc}
        if "ours_no_vss" in methods:
            out.append((ds, sc, build_table(recs, ds, sc, table2_methods(), extra_methods=False,
                                            title=f"Table 2: V_ss ablation, {_label(DATASET_LABELS, ds)} "
                                                  f"{_label(SCHEME_LABELS, sc)}")))
    return out


def table1(records: Iterable[Mapping]) -> list[Table]:
    """Table 1: one table per (dataset, scheme), rows the registry's Table 1 methods (those present)."""
    return [t for _, _, t in _table1_by_setting(_dedupe(records))]


def table2(records: Iterable[Mapping]) -> list[Table]:
    """Table 2 (V_ss ablation): the registry's Table 2 methods for every setting that has the ablation."""
    return [t for _, _, t in _table2_by_setting(_dedupe(records))]


def summary_csv(records: Iterable[Mapping]) -> str:
    """Long-format numbers: dataset, scheme, sparsity, method, metric, mean, std, n."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["dataset", "scheme", "sparsity", "method", "metric", "mean", "std", "n"])
    for (ds, sc, sp, m), st in sorted(summarize(records).items(), key=lambda kv: tuple(map(str, kv[0]))):
        for k, s in st.items():
            w.writerow([ds, sc, sp, m, k, f"{s.mean:.6g}", f"{s.std:.6g}", s.n])
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# strong attacks (beyond the paper)
# ---------------------------------------------------------------------------------------------
STRONG_ATTACKS = {"lira_fixed": "LiRA (fixed var.)", "lira_per_example": "LiRA (per-example var.)", "rmia": "RMIA"}


def strong_table(records: Iterable[Mapping]) -> str:
    """Markdown table of the strong attacks in records' ``strong`` entries (see advunlearn.evaluation.strong).

    One row per (dataset, scheme, sparsity, method); per attack AUC and TPR at each reported FPR (in
    percent), plus the fresh post-hoc attacker's AUC on D_f vs D_v; mean ± 95% CI over seeds.  Read
    each value against Retrain's row (its seed-to-seed spread is the noise floor), not against 0.5.
    """
    recs = [r for r in _dedupe(records) if isinstance(r.get("strong"), Mapping)]
    if not recs:
        return "_No record carries strong-attack results (run with strong_eval=True)._\n"
    cols: list[tuple[str, str, str]] = []          # (label, attack, key)
    for a, label in STRONG_ATTACKS.items():
        keys = sorted({k for r in recs for k in (r["strong"].get(a) or {})
                       if k.startswith("tpr@") and not k.endswith(("_ci", "_note"))},
                      key=lambda k: float(k[4:].rstrip("%")))
        if any(a in r["strong"] for r in recs):
            cols.append((f"{label} AUC", a, "auc"))
            cols += [(f"{label} TPR@{k[4:]}", a, k) for k in keys]
    if any("fresh_attacker" in r["strong"] for r in recs):
        cols.append(("Fresh attacker AUC", "fresh_attacker", "auc"))
    if any(isinstance(r["strong"].get("fresh_attacker"), Mapping) and "positive_control" in r["strong"]["fresh_attacker"]
           for r in recs):
        cols.append(("Fresh attacker AUC on θ0", "fresh_attacker_control", "auc"))
    groups: dict[tuple, list[dict]] = {}
    for r in recs:
        groups.setdefault((r["dataset"], r["scheme"], r["sparsity"], method_key(r)), []).append(r)
    order = list(method_order())

    def sort_key(k):
        ds, sc, sp, m = k
        return (ds, sc, sp, order.index(m) if m in order else len(order), m)

    def value(r, attack, key):
        if attack == "fresh_attacker_control":
            d = (r["strong"].get("fresh_attacker") or {}).get("positive_control")
        else:
            d = r["strong"].get(attack)
        if attack.startswith("fresh_attacker") and isinstance(d, Mapping):
            d = d.get("forget_vs_val", d)
        if not isinstance(d, Mapping) or d.get(key) is None:
            return None
        v = float(d[key])
        return 100 * v if key.startswith("tpr@") else v

    head = ["Setting", "Method", *[c[0] for c in cols]]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([" --- ", " --- "] + [" ---: "] * len(cols)) + "|"]
    for k in sorted(groups, key=sort_key):
        ds, sc, sp, m = k
        cells = []
        for _, attack, key in cols:
            vals = [value(r, attack, key) for r in groups[k]]
            if key.startswith("tpr@") and vals and all(v is None for v in vals):
                cells.append("n/a (< 1/FPR negatives)")
                continue
            st = Stat([v for v in vals if v is not None])
            cells.append(st.cell(3 if key == "auc" else 2, ci=True))
        setting = f"{_label(DATASET_LABELS, ds)} {sc} {sparsity_label(sp)}"
        lines.append("| " + " | ".join([setting, method_label(m), *cells]) + " |")
    lines += ["", "AUC in [0, 1]; TPR in percent; mean ± half-width of the 95% confidence interval over seeds "
              "(Student t). The target is Retrain's value; Retrain's own interval is the noise floor."]
    return "\n".join(lines) + "\n"


def records_markdown(recs: Sequence[dict]) -> str:
    """One experiment's records as a markdown table with Avg. Disparity against its Retrain."""
    ret = next((r for r in recs if r["method"] == "retrain"), None)
    lines = ["| method | UA | MIA-Efficacy | RA | TA | Avg. Disparity | run time (s) |", "|---|---|---|---|---|---|---|"]
    for r in recs:
        dis = f"{avg_disparity(r, ret):.2f}" if ret else "n/a"
        name = f"{r['method']} (FAILED: {failure(r).split(':')[0]})" if failure(r) else r["method"]
        lines.append(f"| {name} | {r['UA']:.2f} | {r['MIA_efficacy']:.2f} | {r['RA']:.2f} | {r['TA']:.2f} | "
                     f"{dis} | {r['run_time_s'] or 0:.2f} |")
    return "\n".join(lines)
