"""Tables 1 and 2 and Figure 2 of the paper from result records; one self-contained HTML report.

A *result record* is a JSON object (one per file, or a list of them per file) with the keys

=================  =========================================================================
``dataset``        "digits", "fashion-mnist", "cifar10", "cifar100" (any string is shown as is)
``scheme``         "random" or "class"
``sparsity``       0 for dense, e.g. 0.95 for the 95%-sparse (OMP) model
``seed``           int; seeds are the repetitions averaged in each cell
``method``         a registered method (:mod:`advunlearn.methods`; rows in registry order, labelled by it;
                   unregistered names are listed last, as they are)
``variant``        optional; ``method="ours", variant="no_vss"`` is the same as ``"ours_no_vss"``
``UA`` ``RA``      percent (UA = 100 − accuracy on D_f, RA on D_r, TA on D_t)
``TA``
``MIA_efficacy``   percent (the confidence SVC attack)
``run_time_s``     seconds for one seed (may be null)
``mia``            optional ``{"correctness", "confidence", "entropy", "m_entropy", "prob"}`` (Figure 2)
``failed``         optional: why the run failed (e.g. "diverged: non-finite weights in ..."); such a
                   record (or one with ``diverged: true``) is shown as failed, never averaged
=================  =========================================================================

Other keys are ignored.  JSON files under the folder that are not records (no ``method`` and ``UA``)
are skipped, so a results folder that also holds checkpoints' metadata can be read directly.

Cells are "mean ± std" over seeds (sample standard deviation, ddof = 1; a single seed shows the
mean alone).  Avg. Disparity is computed per seed against *that seed's* Retrain (same dataset,
scheme, sparsity and seed) and then averaged; seeds without a Retrain record are left out of it.
"Run Time min." is the dense model's mean run time (the sparse one's when there is no dense run),
as the paper reports one run-time column.

The core (tables as markdown, CSV and HTML) uses the standard library and the method registry (row
order and labels); plotly is imported only for Figure 2.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .metrics import DISPARITY_KEYS, avg_disparity, failure

REQUIRED = ("dataset", "scheme", "sparsity", "seed", "method", "UA", "RA", "TA", "MIA_efficacy")


def table1_methods() -> tuple[str, ...]:
    """Table 1's rows: the registered methods that list ``table1``, in registry order."""
    from .methods import names

    return names("table1")


def table2_methods() -> tuple[str, ...]:
    """Table 2's rows (the V_ss ablation): the registered methods that list ``table2``."""
    from .methods import names

    return names("table2")


def method_order() -> tuple[str, ...]:
    """Every registered method in registry order (the order of rows, bars and curves)."""
    from .methods import names

    return names()


def method_label(method: str) -> str:
    """A method's row label from the registry (an unregistered name as it is)."""
    from .methods import label

    return label(method)


DATASET_LABELS = {"digits": "Digits", "fashion-mnist": "Fashion-MNIST", "cifar10": "Cifar-10",
                  "cifar100": "Cifar-100"}
SCHEME_LABELS = {"random": "Random Forgetting", "class": "Class-wise Forgetting"}
METRIC_LABELS = {"UA": "UA", "MIA_efficacy": "MIA-Efficacy", "RA": "RA", "TA": "TA", "disparity": "Avg. Disparity",
                 "disparity_of_means": "Disparity of Means"}
ATTACK_LABELS = {"correctness": "Correctness", "confidence": "Confidence", "entropy": "Entropy",
                 "m_entropy": "Modified entropy", "prob": "Probability"}


# ---------------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------------
def method_key(rec: Mapping) -> str:
    """The row a record belongs to: ``method``, or ``method_variant`` when a variant is given."""
    v = rec.get("variant")
    m = str(rec["method"]).lower()
    return f"{m}_{str(v).lower()}" if v not in (None, "", "default") else m


def validate_record(rec: Mapping, where: str = "record") -> dict:
    """Check a record's keys and types; returns a normalised copy (sparsity float, seed int)."""
    if not isinstance(rec, Mapping):
        raise ValueError(f"{where}: a result record must be a JSON object, got {type(rec).__name__}")
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        raise ValueError(f"{where}: result record lacks keys {missing}; required: {list(REQUIRED)}")
    out = dict(rec)
    try:
        out["sparsity"] = float(rec["sparsity"])
        out["seed"] = int(rec["seed"])
        for k in ("UA", "RA", "TA", "MIA_efficacy"):
            out[k] = float("nan") if rec[k] is None else float(rec[k])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: bad value in result record ({e})") from None
    return out


def make_record(exp, method: str, result: Mapping, *, variant: str | None = None, **extra) -> dict:
    """A result record for ``exp`` (an Experiment) from an :func:`advunlearn.metrics.evaluate` result."""
    rec = {"dataset": exp.dataset, "scheme": exp.scheme, "sparsity": float(exp.sparsity), "seed": int(exp.seed),
           "method": method, "profile": exp.profile, **{k: v for k, v in result.items()}, **extra}
    if variant is not None:
        rec["variant"] = variant
    return validate_record(rec)


def _looks_like_record(obj) -> bool:
    return isinstance(obj, Mapping) and "method" in obj and "UA" in obj


def load_records(results_dir: str | Path, exclude: Path | None = None) -> list[dict]:
    """Every result record in ``*.json`` files under ``results_dir`` (recursively, sorted by path).

    A ``*.json`` file that cannot be read or parsed (e.g. a ``result.json`` cut in half) is a
    ConfigError naming it, never skipped: a table built without it would silently lack a seed.
    """
    from .config import ConfigError

    root = Path(results_dir)
    if not root.exists():
        raise ConfigError(f"results folder {root} does not exist; give the folder a batch or `advunlearn run` "
                          "wrote its JSON records to (e.g. results/demo/runs)")
    if not root.is_dir():
        raise ConfigError(f"{root} is a file, not a folder; give the folder that holds the result JSON files")
    records = []
    for path in sorted(root.rglob("*.json")):
        if exclude is not None and exclude in path.resolve().parents:
            continue
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:  # cut short, not JSON, not UTF-8, unreadable: never one seed fewer
            why = f"not valid JSON ({e})" if isinstance(e, ValueError) else f"unreadable ({e.strerror or e})"
            raise ConfigError(f"result file {path} is {why}; a record cut short (an interrupted copy or run)? "
                              f"Restore or rerun it, or move it out of {root}; nothing was built or changed") from None
        items = obj if isinstance(obj, list) else [obj]
        for i, item in enumerate(items):
            if _looks_like_record(item):
                where = f"{path}" + (f"[{i}]" if isinstance(obj, list) else "")
                try:
                    records.append(validate_record(item, where))
                except ValueError as e:
                    raise ConfigError(str(e)) from None
    return records


def _dedupe(records: Iterable[Mapping]) -> list[dict]:
    """One record per (dataset, scheme, sparsity, method, seed): the last one wins (a rerun)."""
    seen: dict[tuple, dict] = {}
    for r in records:
        r = validate_record(r)
        seen[(r["dataset"], r["scheme"], r["sparsity"], method_key(r), r["seed"])] = r
    return list(seen.values())


# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------
@dataclass
class Stat:
    """Mean and sample std over seeds."""

    values: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else float("nan")

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def ci95(self) -> float:
        """Half-width of the 95% confidence interval of the mean (Student t over seeds); 0 for n < 2."""
        if self.n < 2:
            return 0.0
        from scipy.stats import t

        return float(t.ppf(0.975, self.n - 1)) * self.std / math.sqrt(self.n)

    def cell(self, digits: int = 2, ci: bool = False) -> str:
        """``mean ± std`` (or ``mean ± 95% CI half-width`` with ``ci``); the mean alone for one value."""
        if not self.values:
            return "–"
        if self.n == 1:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {(self.ci95 if ci else self.std):.{digits}f}"


def _by_setting(records: Sequence[dict]) -> dict[tuple, dict[str, dict[int, dict]]]:
    """(dataset, scheme, sparsity) -> method key -> seed -> record."""
    out: dict[tuple, dict[str, dict[int, dict]]] = {}
    for r in records:
        out.setdefault((r["dataset"], r["scheme"], r["sparsity"]), {}).setdefault(method_key(r), {})[r["seed"]] = r
    return out


def summarize(records: Iterable[Mapping]) -> dict[tuple, dict[str, Stat]]:
    """(dataset, scheme, sparsity, method) -> {"UA", "MIA_efficacy", "RA", "TA", "disparity",
    "disparity_of_means", "run_time_min"}.

    ``disparity``: per seed against that seed's Retrain, then averaged (with a spread over seeds).
    ``disparity_of_means``: the Avg. Disparity of the method's mean row against Retrain's mean row,
    the way the paper's tables read (never above ``disparity``: a mean of absolute differences is at
    least the absolute difference of the means).
    """
    recs = [r for r in _dedupe(records) if not failure(r)]  # a failed (diverged) run has no numbers to average
    out: dict[tuple, dict[str, Stat]] = {}
    for (ds, sc, sp), methods in _by_setting(recs).items():
        retrain = methods.get("retrain", {})
        for m, seeds in methods.items():
            st = {k: Stat() for k in (*DISPARITY_KEYS, "disparity", "run_time_min")}
            for seed, r in sorted(seeds.items()):
                for k in DISPARITY_KEYS:
                    st[k].values.append(r[k])
                if seed in retrain:
                    st["disparity"].values.append(avg_disparity(r, retrain[seed]))
                t = r.get("run_time_s")
                if t is not None and math.isfinite(float(t)):
                    st["run_time_min"].values.append(float(t) / 60.0)
            out[(ds, sc, sp, m)] = st
        if "retrain" in methods:
            ref = {k: out[(ds, sc, sp, "retrain")][k].mean for k in DISPARITY_KEYS}
            for m in methods:
                st = out[(ds, sc, sp, m)]
                st["disparity_of_means"] = Stat([avg_disparity({k: st[k].mean for k in DISPARITY_KEYS}, ref)])
        else:
            for m in methods:
                out[(ds, sc, sp, m)]["disparity_of_means"] = Stat()
    return out


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------
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


def _label(d: Mapping, key: str) -> str:
    return d.get(key, key)


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
    """Markdown table of the strong attacks in records' ``strong`` entries (see advunlearn.strong).

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


# ---------------------------------------------------------------------------------------------
# Figure 2
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}
table.results{border-collapse:collapse;margin:1em 0 .3em 0;font-size:13px}
table.results caption{font-weight:bold;text-align:left;padding:.3em 0}
table.results th,table.results td{border:1px solid #bbb;padding:3px 7px;text-align:right;white-space:nowrap}
table.results thead th{background:#f0f0f0;text-align:center}
table.results tbody th{text-align:left}
p.note{font-size:12px;color:#555;margin:0 0 1.5em 0}"""


def _html_page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>{body}</body></html>\n")


def _write(path: Path, text: str) -> None:
    from .store import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


def _figures_html(records: Sequence[dict], inline: bool = True) -> tuple[str, str | None]:
    """(html fragment with every Figure 2 panel, error note or None)."""
    settings = figure2_settings(records)
    if not settings:
        return "", "No record carries 'mia' values: Figure 2 is empty."
    try:
        import plotly.io as pio
    except ImportError:
        return "", "plotly is not installed: Figure 2 was not drawn (pip install plotly)."
    parts = []
    for i, (ds, sc, sp) in enumerate(settings):
        fig = figure2(records, ds, sc, sp)
        js = ("inline" if inline else "cdn") if i == 0 else False
        parts.append(pio.to_html(fig, include_plotlyjs=js, full_html=False))
    return "\n".join(parts), None


def _markdown_table_html(md: str) -> str:
    """The first markdown table in ``md`` as an HTML table (the lines after it as a note)."""
    rows = [ln for ln in md.splitlines() if ln.startswith("|")]
    notes = [ln for ln in md.splitlines() if ln and not ln.startswith("|")]
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows if not set(r) <= set("|-: ")]
    if not cells:
        return f'<p class="note">{html.escape(md)}</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in cells[1:])
    note = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def _strong_parts(records: Sequence[dict]):
    """(strong-attack markdown table, its HTML, one log-log ROC figure per setting), or None."""
    recs = [r for r in _dedupe(records) if isinstance(r.get("strong"), Mapping)]
    if not recs:
        return None
    md = strong_table(recs)
    try:
        from .strong import roc_figure

        import plotly.io  # noqa: F401 - the figures are rendered with it
    except ImportError:
        return md, _markdown_table_html(md) + '<p class="note">plotly is not installed: the ROC figure was not drawn.</p>', []
    settings = sorted({(r["dataset"], r["scheme"], r["sparsity"]) for r in recs})
    order = list(method_order())
    figs = []
    for ds, sc, sp in settings:
        here = [r for r in recs if (r["dataset"], r["scheme"], r["sparsity"]) == (ds, sc, sp)]
        seed = min(r["seed"] for r in here)
        reps = {method_label(method_key(r)): r["strong"]["lira_fixed"]
                for r in sorted(here, key=lambda r: order.index(method_key(r)) if method_key(r) in order else 99)
                if r["seed"] == seed and isinstance(r["strong"].get("lira_fixed"), Mapping)
                and "roc" in r["strong"]["lira_fixed"]}
        if reps:
            title = (f"LiRA (fixed var.) on D_f: {_label(DATASET_LABELS, ds)} {sc} {sparsity_label(sp)}, "
                     f"seed {seed} (log-log ROC)")
            figs.append(roc_figure(reps, title))
    return md, _markdown_table_html(md), figs


def _strong_html(table_html: str, figs: list, plotly_js) -> str:
    """The strong-attack table and ROC figures as HTML; ``plotly_js`` as plotly's ``include_plotlyjs``
    for the first figure ("inline", "cdn" or False when the page already has it)."""
    parts = [table_html]
    if figs:
        import plotly.io as pio

        parts += [pio.to_html(f, include_plotlyjs=plotly_js if i == 0 else False, full_html=False)
                  for i, f in enumerate(figs)]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# README blocks checked against the published results
# ---------------------------------------------------------------------------------------------
BLOCK_RE = re.compile(r"<!-- report (?P<name>[\w.-]+) (?P<part>[\w/.-]+) -->\n(?P<body>.*?)<!-- /report -->", re.S)
_OPEN_RE = re.compile(r"<!-- report (?P<name>[\w.-]+) (?P<part>[\w/.-]+) -->")
_CLOSE = "<!-- /report -->"
_MARKER_RE = re.compile(r"^\s*<!--\s*/?\s*report\b")  # anything that looks like a marker, well formed or not


@dataclass
class Block:
    """One ``<!-- report NAME PART -->`` ... ``<!-- /report -->`` block of a document (lines 1-based)."""

    name: str
    part: str
    line: int          # the opening marker's line
    end_line: int      # the closing marker's line
    start: int         # character offsets: the opening marker's line starts here ...
    end: int           # ... and the closing marker's line ends here (before its newline)
    body: str


def parse_blocks(text: str, document: str | Path = "the document") -> list[Block]:
    """Every report block of ``text``; a ConfigError naming the marker and its line when the markers do
    not pair up (an opening marker left open, a closing marker with no opening one, a malformed one).

    A marker is a line of its own: ``<!-- report NAME PART -->`` opens a block, ``<!-- /report -->``
    closes it; blocks do not nest.  Any other line that starts like a marker is an error too, so that
    a typo in a marker never lets a rewrite run past the end of its block.  Markers quoted in a fenced
    code block (between ``` or ~~~ lines) are text, not markers.
    """
    from .config import ConfigError

    blocks: list[Block] = []
    opened = None  # (match, its line number, the offsets where its line starts and where the body starts)
    offset = 0
    fence = None  # the fence (``` or ~~~) of the code block we are in, outside report blocks: markers there are text
    for no, line in enumerate(re.findall(r"[^\n]*\n|[^\n]+$", text), 1):
        stripped = line.strip()
        if opened is None and stripped[:3] in ("```", "~~~"):
            fence = None if fence == stripped[:3] else fence or stripped[:3]
        elif fence is None and _MARKER_RE.match(line):
            m = _OPEN_RE.fullmatch(stripped)
            if m:
                if opened is not None:
                    raise ConfigError(f"{document}: marker '{opened[0].group(0)}' on line {opened[1]} is not closed "
                                      f"before the next '{stripped}' on line {no}; add '{_CLOSE}' after its table")
                opened = (m, no, offset, offset + len(line))
            elif stripped == _CLOSE:
                if opened is None:
                    raise ConfigError(f"{document}: '{_CLOSE}' on line {no} closes no block; every block starts "
                                      "with '<!-- report NAME PART -->' on a line of its own")
                m, first, start, body_start = opened
                blocks.append(Block(m.group("name"), m.group("part"), first, no, start, offset + len(line.rstrip("\r\n")),
                                    text[body_start:offset]))
                opened = None
            else:
                raise ConfigError(f"{document}: marker '{stripped}' on line {no} is malformed; a block is "
                                  f"'<!-- report NAME PART -->' ... '{_CLOSE}', each on a line of its own")
        offset += len(line)
    if opened is not None:
        raise ConfigError(f"{document}: marker '{opened[0].group(0)}' on line {opened[1]} is never closed; add "
                          f"'{_CLOSE}' on a line of its own after its table")
    return blocks


def report_parts(records: Iterable[Mapping]) -> dict[str, str]:
    """Every markdown piece the report builds, by name: ``table1``, ``table2``, ``strong`` (all settings
    together), ``table1/<dataset>/<scheme>``, ``table2/<dataset>/<scheme>`` (one table each) and
    ``paired`` (Ours against the best baseline per setting, :mod:`advunlearn.comparison`)."""
    recs = _dedupe(records)
    parts: dict[str, str] = {}
    for name, by_setting in (("table1", _table1_by_setting(recs)), ("table2", _table2_by_setting(recs))):
        if not by_setting:
            continue
        parts[name] = "\n".join(t.to_markdown() for _, _, t in by_setting)
        for ds, sc, t in by_setting:
            parts[f"{name}/{ds}/{sc}"] = t.to_markdown()
    if any(isinstance(r.get("strong"), Mapping) for r in recs):
        parts["strong"] = strong_table(recs)
    from .comparison import paired, paired_markdown

    rows = paired(recs)
    if rows:  # Ours against the best baseline, seed by seed (needs Ours, a baseline and two seeds)
        parts["paired"] = paired_markdown(rows)
    return parts


def document_parts(results_dir: str | Path) -> dict[str, str]:
    """:func:`report_parts` of the result records under ``results_dir``, plus ``ulira`` (every U-LiRA
    record), ``ulira/<scheme>`` (one scheme's) and, with several seeds, ``ulira-seeds/<scheme>`` (mean and
    interval over seeds) when the folder holds ``advunlearn ulira`` records."""
    from .config import ConfigError
    from .ulira import load_ulira_records, ulira_markdown, ulira_seeds_markdown

    results_dir = Path(results_dir)
    exclude = (results_dir / "report").resolve()
    records = load_records(results_dir, exclude=exclude)
    ulira = load_ulira_records(results_dir, exclude=exclude)
    if not records and not ulira:
        raise ConfigError(f"no result records found under {results_dir}")
    parts = report_parts(records) if records else {}
    if ulira:
        parts["ulira"] = ulira_markdown(ulira)
        for scheme in sorted({r["scheme"] for r in ulira}):
            parts[f"ulira/{scheme}"] = ulira_markdown([r for r in ulira if r["scheme"] == scheme])
            if len({r["seed"] for r in ulira if r["scheme"] == scheme}) > 1:  # the spread over seeds
                parts[f"ulira-seeds/{scheme}"] = ulira_seeds_markdown([r for r in ulira if r["scheme"] == scheme])
    return parts


def _read_document(document: str | Path, flag: str = "document") -> str:
    """The text of a markdown document, or a ConfigError saying what is wrong with the path."""
    from .config import ConfigError

    path = Path(document)
    if not path.exists():
        raise ConfigError(f"{flag} {path} does not exist; give the markdown file holding the "
                          "'<!-- report NAME PART -->' blocks, e.g. README.md")
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give the markdown file holding the "
                          "'<!-- report NAME PART -->' blocks, e.g. README.md")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{flag} {path} is not UTF-8 text ({e.reason} at byte {e.start}); give a markdown file") from None
    except OSError as e:
        raise ConfigError(f"{flag} {path} cannot be read ({e.strerror or e})") from None


def _blocks(text: str, name: str, document: str | Path = "the document") -> list[Block]:
    return [b for b in parse_blocks(text, document) if b.name == name]


def check_document(results_dir: str | Path, document: str | Path) -> list[str]:
    """Compare every ``<!-- report NAME PART -->`` block of ``document`` whose NAME is the results
    folder's name with what the report builds from that folder now; returns the problems (empty = all
    match).  A document with no block for the folder is a problem too: nothing would be checked.
    Markers that do not pair up, a missing document and unreadable records are ConfigErrors."""
    import difflib

    results_dir = Path(results_dir)
    name = results_dir.resolve().name
    text = _read_document(document, "--check")
    blocks = _blocks(text, name, document)  # the markers first: a broken document fails before any reading
    parts = document_parts(results_dir)
    if not blocks:
        return [f"{document} has no '<!-- report {name} PART -->' block; parts available: {sorted(parts)}"]
    problems = []
    for m in blocks:
        part = m.part
        if part not in parts:
            problems.append(f"block {name} {part} (line {m.line}): the report builds no such part; "
                            f"available: {', '.join(sorted(parts))}")
            continue
        want, have = parts[part].strip(), m.body.strip()
        if want != have:
            diff = "\n".join(difflib.unified_diff(have.splitlines(), want.splitlines(), f"{document} ({part})",
                                                   f"report of {results_dir} ({part})", lineterm="", n=0))
            problems.append(f"block {name} {part} differs from the results (line {m.line} of {document}):\n{diff}")
    return problems


def update_document(results_dir: str | Path, document: str | Path) -> int:
    """Rewrite the blocks of ``document`` that name ``results_dir`` from its results; returns how many.

    All or nothing: the document is left byte for byte as it was when its markers do not pair up, when
    a block names a part the report does not build (the error lists the parts it builds), when it has
    no block for the folder, or when a result file cannot be read (ConfigError for each).
    """
    import os

    from .config import ConfigError
    from .store import atomic_write_bytes

    results_dir = Path(results_dir)
    name = results_dir.resolve().name
    text = _read_document(document, "--update")
    blocks = _blocks(text, name, document)
    path = Path(document)
    if not os.access(path, os.W_OK) or not os.access(path.resolve().parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--update {document} is not writable (the file or its folder); make it writable")
    parts = document_parts(results_dir)
    if not blocks:
        raise ConfigError(f"{document} has no '<!-- report {name} PART -->' block, so nothing would be updated; "
                          f"add one for a part of {sorted(parts)}")
    unknown = [b for b in blocks if b.part not in parts]
    if unknown:
        raise ConfigError("; ".join(f"block {name} {b.part!r} on line {b.line}" for b in unknown)
                          + f": the report builds no such part; allowed: {', '.join(sorted(parts))}")
    pieces, at = [], 0
    for b in blocks:
        pieces += [text[at:b.start], f"<!-- report {name} {b.part} -->\n{parts[b.part].strip()}\n{_CLOSE}"]
        at = b.end
    pieces.append(text[at:])
    new = "".join(pieces)
    if new != text:
        atomic_write_bytes(document, new.encode("utf-8"))
    return len(blocks)


def build_report(results_dir: str | Path, out_dir: str | Path | None = None, *, inline_plotly: bool = True) -> dict[str, Path]:
    """Read every result record under ``results_dir`` and write the tables, Figure 2 and ``report.html``.

    Writes ``table1.md/.csv/.html``, ``table2.md/.csv/.html`` (when the ablation is present),
    ``summary.csv``, ``figure2.html`` (when records carry ``mia``), ``strong.md/.html`` (the strong
    attacks and their ROC, when records carry ``strong``), ``ulira.md`` (U-LiRA and the NeurIPS 2023
    score with intervals, from ``advunlearn ulira`` records), ``failed.md`` (the failed runs, when there
    are any; the tables mark them too) and ``report.html`` (self-contained:
    plotly's JavaScript inlined so it opens offline) into ``out_dir`` (default ``results_dir/report``).
    Returns ``{name: path}``.  Raises ConfigError (a ValueError) when the folder is missing or holds no result records.
    """
    results_dir = Path(results_dir)
    out = Path(out_dir) if out_dir is not None else results_dir / "report"
    records = load_records(results_dir, exclude=out.resolve())
    from .ulira import load_ulira_records, ulira_markdown

    ulira_recs = load_ulira_records(results_dir, exclude=out.resolve())  # shadow evaluations (advunlearn ulira)
    if not records and not ulira_recs:
        from .config import ConfigError

        raise ConfigError(f"no result records found under {results_dir}: expected *.json files holding objects "
                          f"(or lists of objects) with keys {list(REQUIRED)}")
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    t1, t2 = table1(records), table2(records)
    failed = [r for r in _dedupe(records) if failure(r)]
    records = [r for r in records if not failure(r)]  # the figures and the strong attacks: finished runs only
    for name, tables in (("table1", t1), ("table2", t2)):
        if not tables:
            continue
        for ext, fn in (("md", lambda t: t.to_markdown()), ("csv", lambda t: t.to_csv())):
            p = out / f"{name}.{ext}"
            _write(p, "\n".join(fn(t) for t in tables))
            written[f"{name}.{ext}"] = p
        p = out / f"{name}.html"
        _write(p, _html_page(name, "".join(t.to_html() for t in tables)))
        written[f"{name}.html"] = p
    p = out / "summary.csv"
    _write(p, summary_csv(records))
    written["summary.csv"] = p
    failed_md = [f"- {_label(DATASET_LABELS, r['dataset'])} {_label(SCHEME_LABELS, r['scheme'])}, {_failed_line(r)}"
                 for r in failed]
    (out / "failed.md").unlink(missing_ok=True)
    if failed:
        p = out / "failed.md"
        _write(p, "# Failed runs (left out of every table and figure)\n\n" + "\n".join(failed_md) + "\n")
        written["failed.md"] = p
    fig_html, fig_note = _figures_html(records, inline_plotly)
    if fig_html:
        p = out / "figure2.html"
        _write(p, _html_page("Figure 2", fig_html))
        written["figure2.html"] = p
    js = "inline" if inline_plotly else "cdn"
    strong = _strong_parts(records)
    if strong:
        strong_md, strong_table_html, strong_figs = strong
        for name, text in (("strong.md", strong_md),
                           ("strong.html", _html_page("Strong attacks", _strong_html(strong_table_html, strong_figs, js)))):
            _write(out / name, text)
            written[name] = out / name
    if ulira_recs:
        ulira_md = ulira_markdown(ulira_recs)
        _write(out / "ulira.md", ulira_md)
        written["ulira.md"] = out / "ulira.md"
    seeds = sorted({r["seed"] for r in records})
    body = ["<h1>Discriminative Adversarial Unlearning: results</h1>",
            f"<p>{len(records)} records from <code>{html.escape(str(results_dir))}</code>; seeds {seeds}"
            f"{f'; {len(failed)} failed run(s), listed below' if failed else ''}.</p>",
            "<h2>Table 1</h2>", *(t.to_html() for t in t1)]
    if t2:
        body += ["<h2>Table 2: role of V_ss</h2>", *(t.to_html() for t in t2)]
    body.append("<h2>Figure 2: MIA robustness (metric attacks)</h2>")
    body.append(fig_html if fig_html else f'<p class="note">{html.escape(fig_note or "")}</p>')
    if strong:  # plotly's JavaScript is already on the page when Figure 2 is
        body += ["<h2>Strong attacks (LiRA, RMIA, a fresh attacker)</h2>",
                 _strong_html(strong_table_html, strong_figs, False if fig_html else js)]
    if ulira_recs:
        body += ["<h2>U-LiRA and the NeurIPS 2023 unlearning score (shadow models)</h2>", _markdown_table_html(ulira_md)]
    if failed:
        body += ["<h2>Failed runs</h2>", "<ul>" + "".join(f"<li>{html.escape(l[2:])}</li>" for l in failed_md) + "</ul>"]
    p = out / "report.html"
    _write(p, _html_page("advunlearn report", "\n".join(body)))
    written["report.html"] = p
    return written


__all__ = ["REQUIRED", "table1_methods", "table2_methods", "method_order", "method_label", "Table", "Stat", "method_key",
           "validate_record", "make_record", "load_records", "summarize", "build_table", "table1", "table2",
           "summary_csv", "figure2", "figure2_data", "figure2_settings", "build_report", "sparsity_label",
           "strong_table", "STRONG_ATTACKS", "report_parts", "check_document", "update_document"]
