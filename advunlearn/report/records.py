"""Result records: reading, checking, and their summary per setting and method (mean, std over seeds).

The record format is :mod:`advunlearn.report`'s docstring; rows follow the method registry's order and labels.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..evaluation.metrics import DISPARITY_KEYS, avg_disparity, failure


REQUIRED = ("dataset", "scheme", "sparsity", "seed", "method", "UA", "RA", "TA", "MIA_efficacy")


def table1_methods() -> tuple[str, ...]:
    """Table 1's rows: the registered methods that list ``table1``, in registry order."""
    from ..methods import names

    return names("table1")


def table2_methods() -> tuple[str, ...]:
    """Table 2's rows (the V_ss ablation): the registered methods that list ``table2``."""
    from ..methods import names

    return names("table2")


def method_order() -> tuple[str, ...]:
    """Every registered method in registry order (the order of rows, bars and curves)."""
    from ..methods import names

    return names()


def method_label(method: str) -> str:
    """A method's row label from the registry (an unregistered name as it is)."""
    from ..methods import label

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
    """A result record for ``exp`` (an Experiment) from an :func:`advunlearn.evaluation.metrics.evaluate` result."""
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
    from ..core.config import ConfigError

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


def _label(d: Mapping, key: str) -> str:
    return d.get(key, key)
