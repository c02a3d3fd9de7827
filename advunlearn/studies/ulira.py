"""U-LiRA (Hayes et al., "Inexact unlearning needs more careful evaluations to avoid a false sense of
privacy", SaTML 2025): can an attacker tell a model that *unlearned* x from one *retrained* without x?

For every target example x, shadow models that trained on x and then ran the unlearning method
(the "unlearned" group) and shadow models retrained without x (the "retrained" group) give two
samples of LiRA's logit-scaled confidence φ(x).  Each is fitted with a Gaussian; the likelihood
ratio

    Λ(φ) = log N(φ; μ_u(x), σ_u²) − log N(φ; μ_r(x), σ_r²)

of a held-out model's φ(x) says "unlearned" when Λ > 0 (equal priors).  The attack's accuracy over
(target model, example) pairs, balanced between unlearned and retrained, is 50% when unlearning is
indistinguishable from retraining; its AUC is 0.5 then.  Retrain judged the same way (its models
against other retrained models) is the floor a method can reach with this many shadows.

How the shadows are formed (see :mod:`advunlearn.studies.shadows`): a pool T of target examples, a base set
B = D \\ T; shadow k trains on B ∪ S_k with S_k a random half of T (pairs of complementary halves,
so every x is in exactly half of the shadows), then unlearns S_k with the method under test; its
retrained counterpart trains on B alone with its own seeds.  The held-out models are the shadows
themselves, one at a time (leave-one-out: the Gaussians used to judge shadow k are fitted on the
other K − 1 shadows), a choice that uses every model for both roles; Hayes et al. train separate
target models.

Intervals: observations share models and examples, so a plain binomial interval is too narrow.  We
use a two-way (models × examples) bootstrap: each replicate draws the K models and the |T| examples
with replacement and weights every observation by the product of its two counts (Owen's pigeonhole
bootstrap, slightly conservative).  TPR at a low FPR is reported only where the number of
retrained observations resolves that FPR (>= 1/FPR); otherwise the record says so instead.

This module holds the statistics (pure functions of φ matrices, tested on synthetic Gaussians) and
:func:`ulira_evaluate`, which runs the shadows of an Experiment and returns one record per method.
The records' tables (the report's ``ulira`` parts) and notebook 06's figures are
:mod:`advunlearn.report.ulira`.
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np
from scipy import stats

from ..core.config import ConfigError, check_choice, check_range

DEFAULT_BOOT = 500
FPR_POINTS = (0.01, 0.001)
PER_EXAMPLE_MIN = 31   # "auto" variance: per-example once every fit has this many values (K >= 64)


# ---------------------------------------------------------------------------------------------
# Gaussian fits with one model left out
# ---------------------------------------------------------------------------------------------
def _as_matrix(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ConfigError(f"{name} must be a (models, examples) matrix, got shape {a.shape}")
    return a


def _loo_moments(phi: np.ndarray, mask: np.ndarray, wk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (k, x): weighted (mean, sum of squared deviations, total weight) of phi[k', x] over the
    models k' != k with mask[k', x]; ``wk`` are frequency weights per model (1 = each model once)."""
    w = mask * wk[:, None]
    tot = w.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.where(tot > 0, (w * np.where(mask, phi, 0.0)).sum(0) / tot, 0.0)
    v = np.where(mask, phi - centre[None], 0.0)  # centred: no cancellation in the sums of squares
    s1 = (w * v).sum(0)[None] - w * v
    s2 = (w * v ** 2).sum(0)[None] - w * v ** 2
    n = tot[None] - w
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        ss = np.clip(s2 - s1 ** 2 / n, 0, None)
    return mean + centre[None], np.where(n > 0, ss, 0.0), n


def _sigma(ss: np.ndarray, n: np.ndarray, per_example: bool, min_std: float, wx: np.ndarray) -> np.ndarray:
    """σ per (k, x): per example (needs a weight >= 2), or pooled over the examples (weights ``wx``)
    for each left-out model k."""
    if per_example:
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.sqrt(ss / (n - 1))
        return np.maximum(np.where(n >= 2, s, np.nan), min_std)
    df = (np.clip(n - 1, 0, None) * wx[None]).sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.sqrt((ss * wx[None]).sum(1, keepdims=True) / df)
    return np.maximum(np.broadcast_to(np.where(df > 0, s, np.nan), ss.shape), min_std)


class _LR:
    """The likelihood-ratio attack's data: φ matrices, masks, which observations are scored."""

    def __init__(self, in_phi, in_mask, out_phi, out_mask, out_obs_mask, variance, min_std):
        check_choice("variance", variance, ("auto", "global", "per-example"))
        self.pi, self.po = _as_matrix(in_phi, "in_phi"), _as_matrix(out_phi, "out_phi")
        self.mi, self.mo = np.asarray(in_mask, bool), np.asarray(out_mask, bool)
        self.obs = self.mo if out_obs_mask is None else np.asarray(out_obs_mask, bool)
        shapes = {a.shape for a in (self.pi, self.po, self.mi, self.mo, self.obs)}
        if len(shapes) != 1:
            raise ConfigError(f"in_phi, out_phi and the masks must share one (models, examples) shape; got "
                              f"{[a.shape for a in (self.pi, self.po, self.mi, self.mo, self.obs)]}")
        self.k, self.e = self.pi.shape
        if self.k < 3:
            raise ConfigError(f"the likelihood-ratio attack needs >= 3 models (one held out), got {self.k}")
        for name, a, m in (("in_phi", self.pi, self.mi), ("out_phi", self.po, self.mo | self.obs)):
            if not np.all(np.isfinite(a[m])):
                raise ConfigError(f"{name} must be finite where it is used")
        if variance == "auto":
            n_i = (self.mi.sum(0)[None] - self.mi).astype(np.float64)
            n_o = (self.mo.sum(0)[None] - self.mo).astype(np.float64)
            n_min = min(n_i[self.mi].min(initial=np.inf), n_o[self.obs].min(initial=np.inf))
            variance = "per-example" if n_min >= PER_EXAMPLE_MIN else "global"
        self.variance, self.min_std = variance, min_std
        self.kp, self.xp = np.nonzero(self.mi)
        self.kn, self.xn = np.nonzero(self.obs)

    def scores(self, wk: np.ndarray | None = None, wx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(positive, negative) scores with the fits weighted by ``wk`` (models) and ``wx`` (examples,
        only the pooled σ); NaN where a fit has no data under these weights."""
        wk = np.ones(self.k) if wk is None else wk
        wx = np.ones(self.e) if wx is None else wx
        per = self.variance == "per-example"
        mu_i, ss_i, n_i = _loo_moments(self.pi, self.mi, wk)
        mu_o, ss_o, n_o = _loo_moments(self.po, self.mo, wk)
        sd_i, sd_o = _sigma(ss_i, n_i, per, self.min_std, wx), _sigma(ss_o, n_o, per, self.min_std, wx)
        sd_i = np.where(np.isnan(sd_i), sd_o, sd_i)
        sd_o = np.where(np.isnan(sd_o), sd_i, sd_o)

        def lr(phi, k, x):
            with np.errstate(invalid="ignore", divide="ignore"):
                return (stats.norm.logpdf(phi, mu_i[k, x], sd_i[k, x]) - stats.norm.logpdf(phi, mu_o[k, x], sd_o[k, x]))

        return lr(self.pi[self.kp, self.xp], self.kp, self.xp), lr(self.po[self.kn, self.xn], self.kn, self.xn)


def lr_scores(in_phi, in_mask, out_phi, out_mask, out_obs_mask=None, variance: str = "auto",
              min_std: float = 1e-3) -> dict:
    """Leave-one-model-out likelihood-ratio scores.

    ``in_phi``/``out_phi``: (K, E) φ of the "in" (unlearned, or trained-on) and "out" (retrained, or
    not-trained-on) models; ``in_mask``/``out_mask``: which entries belong to each group and are
    used in the fits.  Observations: positives ``in_phi[in_mask]``, negatives
    ``out_phi[out_obs_mask]`` (default ``out_mask``); each is scored by Gaussians fitted on the
    *other* models.  ``variance``: "global" (one σ per group, pooled over examples, as LiRA advises
    with few shadows), "per-example", or "auto" (per-example once every fit holds >= 31 values).
    A group whose pooled fit has no degree of freedom borrows the other group's σ.

    Returns ``pos``/``neg`` (scores), ``pos_model``/``pos_example``/``neg_model``/``neg_example``
    (where each came from) and ``variance`` (the one used).
    """
    a = _LR(in_phi, in_mask, out_phi, out_mask, out_obs_mask, variance, min_std)
    pos, neg = a.scores()
    if np.isnan(pos).any() or np.isnan(neg).any():
        raise ConfigError("an example has no other model in one of the groups; use more shadow models")
    return {"pos": pos, "neg": neg, "pos_model": a.kp, "pos_example": a.xp, "neg_model": a.kn,
            "neg_example": a.xn, "variance": a.variance}


# ---------------------------------------------------------------------------------------------
# the attack's accuracy and AUC with a two-way bootstrap that refits the Gaussians
# ---------------------------------------------------------------------------------------------
def weighted_auc(pos: np.ndarray, neg: np.ndarray, wp: np.ndarray | None = None,
                 wn: np.ndarray | None = None) -> float:
    """P(pos > neg) + ½ P(tie) with frequency weights (NaN scores get no weight)."""
    wp = np.ones(pos.size) if wp is None else np.where(np.isnan(pos), 0.0, wp)
    wn = np.ones(neg.size) if wn is None else np.where(np.isnan(neg), 0.0, wn)
    s = np.concatenate([np.nan_to_num(pos), np.nan_to_num(neg)])
    is_pos = np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)]
    w = np.concatenate([wp, wn])
    _, group = np.unique(s, return_inverse=True)
    g_neg = np.bincount(group, np.where(is_pos, 0.0, w))
    below = np.cumsum(g_neg) - g_neg
    wpos = np.where(is_pos, w, 0.0)
    den = wp.sum() * wn.sum()
    return float(np.sum(wpos * (below[group] + 0.5 * g_neg[group])) / den) if den > 0 else float("nan")


def _weighted_accuracy(pos, neg, wp, wn) -> float:
    wp, wn = np.where(np.isnan(pos), 0.0, wp), np.where(np.isnan(neg), 0.0, wn)
    tot = wp.sum() + wn.sum()
    return float((wp @ (pos > 0) + wn @ (neg <= 0)) / tot) if tot > 0 else float("nan")


def _attack_summary(a: _LR, n_boot: int, conf: float, seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """Point accuracy/AUC and, with ``n_boot``, the two-way bootstrap intervals (fits redone each time)."""
    pos, neg = a.scores()
    if np.isnan(pos).any() or np.isnan(neg).any():
        raise ConfigError("an example has no other model in one of the groups; use more shadow models")
    one_p, one_n = np.ones(pos.size), np.ones(neg.size)
    res = {"accuracy": _weighted_accuracy(pos, neg, one_p, one_n), "auc": weighted_auc(pos, neg),
           "n_pos": int(pos.size), "n_neg": int(neg.size)}
    if n_boot:
        rng = np.random.default_rng(seed)
        accs, aucs = np.empty(n_boot), np.empty(n_boot)
        for b in range(n_boot):
            wk = np.bincount(rng.integers(0, a.k, a.k), minlength=a.k).astype(np.float64)
            wx = np.bincount(rng.integers(0, a.e, a.e), minlength=a.e).astype(np.float64)
            p, n = a.scores(wk, wx)
            wp, wn = wk[a.kp] * wx[a.xp], wk[a.kn] * wx[a.xn]
            accs[b] = _weighted_accuracy(p, n, wp, wn)
            aucs[b] = weighted_auc(p, n, wp, wn)
        q = [(1 - conf) / 2 * 100, (1 + conf) / 2 * 100]
        res["accuracy_ci"] = [float(v) for v in np.nanpercentile(accs, q)]
        res["auc_ci"] = [float(v) for v in np.nanpercentile(aucs, q)]
        res["n_boot"] = int(n_boot)
    return res, pos, neg


def _low_fpr(pos, neg, fpr_points, conf) -> dict:
    """TPR at each FPR the negatives resolve (>= 1/FPR of them); a note for the others."""
    from ..evaluation.strong import _pct, attack_metrics

    ok = [f for f in fpr_points if neg.size * f >= 1 - 1e-9]
    m = attack_metrics(pos, neg, fpr_points=ok, conf=conf, roc_points=80)
    out: dict = {"roc": m["roc"]}
    for f in ok:
        out[f"tpr@{_pct(f)}"] = m[f"tpr@{_pct(f)}"]
        out[f"tpr@{_pct(f)}_ci"] = list(m[f"tpr@{_pct(f)}_ci"])
    for f in fpr_points:
        if f not in ok:
            out[f"tpr@{_pct(f)}"] = None
            out[f"tpr@{_pct(f)}_note"] = (f"not resolved: FPR {_pct(f)} needs >= {math.ceil(1 / f)} retrained "
                                          f"observations, there are {neg.size}")
    return out


def ulira_attack(unlearned_phi, retrained_phi, member, *, variance: str = "auto", n_boot: int = DEFAULT_BOOT,
                 conf: float = 0.95, fpr_points: Sequence[float] = FPR_POINTS, seed: int = 0,
                 per_example: bool = True) -> dict:
    """U-LiRA from φ matrices: ``unlearned_phi``/``retrained_phi`` (K, E), ``member`` (K, E) bool.

    ``member[k, x]``: x was in shadow k's training set and forget set, so ``unlearned_phi[k, x]`` is
    an "unlearned" observation and ``retrained_phi[k, x]`` (its retrained counterpart never saw x)
    the matched "retrained" one.  The retrained Gaussian of x is fitted on every other retrained
    model (none saw any target), the unlearned one on the other models that forgot x.

    Returns ``accuracy`` and ``auc`` with bootstrap intervals (``*_ci``), TPR at the resolved low
    FPRs, ``per_example_accuracy`` (list, one per example; nan for an example never forgotten) when
    ``per_example``, and the counts.
    """
    u, r = _as_matrix(unlearned_phi, "unlearned_phi"), _as_matrix(retrained_phi, "retrained_phi")
    mem = np.asarray(member, bool)
    if not (u.shape == r.shape == mem.shape):
        raise ConfigError(f"unlearned_phi {u.shape}, retrained_phi {r.shape} and member {mem.shape} must match")
    check_range("n_boot", n_boot, 0, integer=True)
    k, e = u.shape
    a = _LR(u, mem, r, np.ones_like(mem), mem, variance, 1e-3)
    res, pos, neg = _attack_summary(a, n_boot, conf, seed)
    res.update(_low_fpr(pos, neg, fpr_points, conf))
    res.update({"n_shadows": int(k), "n_targets": int(e), "variance": a.variance, "conf": conf,
                "attack": "U-LiRA (leave-one-out, likelihood ratio > 0 = unlearned)"})
    if per_example:
        c = np.zeros(e)
        n = np.zeros(e)
        np.add.at(c, a.xp, pos > 0)
        np.add.at(c, a.xn, neg <= 0)
        np.add.at(n, a.xp, 1)
        np.add.at(n, a.xn, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            res["per_example_accuracy"] = [float(v) for v in c / n]
    return res


def lira_attack(phi, member, *, variance: str = "auto", n_boot: int = DEFAULT_BOOT, conf: float = 0.95,
                fpr_points: Sequence[float] = FPR_POINTS, seed: int = 0) -> dict:
    """Classic online LiRA on the same shadows (trained-on vs not-trained-on), for comparison.

    ``phi`` (K, E) of models that were *not* unlearned (e.g. the shadows' originals); IN = member,
    OUT = not member; leave-one-model-out Gaussian fits, likelihood ratio > 0 = member.
    """
    p = _as_matrix(phi, "phi")
    mem = np.asarray(member, bool)
    a = _LR(p, mem, p, ~mem, None, variance, 1e-3)
    res, pos, neg = _attack_summary(a, n_boot, conf, seed)
    res.update(_low_fpr(pos, neg, fpr_points, conf))
    res.update({"n_shadows": int(p.shape[0]), "n_targets": int(p.shape[1]), "variance": a.variance})
    return res


def ci_vs_shadows(unlearned_phi, retrained_phi, member, ks: Sequence[int] | None = None, *,
                  n_boot: int = 200, conf: float = 0.95, seed: int = 0, variance: str = "global") -> list[dict]:
    """U-LiRA with the first k shadows for each k in ``ks`` (default 4, 6, 8, ... doubling to K).

    Shadows come in complementary pairs, so a prefix of even length keeps every example in exactly
    half of them.  Returns ``[{"k", "accuracy", "accuracy_ci", "auc", "auc_ci", "half_width"}]``:
    how the interval narrows as shadows are added (half_width = half the accuracy interval).
    """
    u, r = _as_matrix(unlearned_phi, "unlearned_phi"), _as_matrix(retrained_phi, "retrained_phi")
    mem = np.asarray(member, bool)
    kmax = u.shape[0]
    if ks is None:
        ks, k = [], 4
        while k < kmax:
            ks.append(k)
            k = k * 2 if k >= 8 else k + 2
        ks.append(kmax)
    rows = []
    for k in ks:
        check_range("k", k, 4, kmax, integer=True)
        if k % 2:
            raise ConfigError(f"k={k} must be even (shadows come in complementary pairs)")
        res = ulira_attack(u[:k], r[:k], mem[:k], variance=variance, n_boot=n_boot, conf=conf, seed=seed,
                           per_example=False, fpr_points=())
        lo, hi = res["accuracy_ci"]
        rows.append({"k": int(k), "accuracy": res["accuracy"], "accuracy_ci": [lo, hi], "auc": res["auc"],
                     "auc_ci": res["auc_ci"], "half_width": (hi - lo) / 2})
    return rows


def analytic_auc(delta_mu: float, sigma1: float, sigma2: float) -> float:
    """AUC of two Gaussian score distributions: Φ(Δμ / sqrt(σ1² + σ2²))."""
    return float(stats.norm.cdf(delta_mu / math.sqrt(sigma1 ** 2 + sigma2 ** 2)))


# ---------------------------------------------------------------------------------------------
# the pipeline: shadows of an experiment -> one record per method
# ---------------------------------------------------------------------------------------------
ULIRA_VERSION = 1


def matched_groups(unlearned_phi, retrained_phi, member) -> tuple[np.ndarray, np.ndarray]:
    """(N, E) φ of the N = K/2 unlearned models that forgot each example and of their N retrained
    counterparts (the same shadows): the NeurIPS score's "N unlearned vs N retrained" per example."""
    u, r = np.asarray(unlearned_phi), np.asarray(retrained_phi)
    mem = np.asarray(member, bool)
    n = mem.sum(0)
    if np.any(n != n[0]):
        raise ConfigError("every example must be forgotten by the same number of shadows (use paired shadows)")
    n0 = int(n[0])
    return u.T[mem.T].reshape(-1, n0).T, r.T[mem.T].reshape(-1, n0).T


def diverged_shadows(obs: dict) -> list[int]:
    """The shadows whose φ (from :func:`advunlearn.studies.shadows.collect`) is not finite somewhere: runs
    that diverged (NaN or infinite weights give non-finite logits)."""
    return [int(k) for k in np.nonzero((~np.isfinite(np.asarray(obs["phi"]))).any(1))[0]]


def kept_shadows(n_shadows: int, diverged: Sequence[int]) -> np.ndarray:
    """Indices of the shadows of every complementary pair (2j, 2j + 1) with no diverged member, so that
    each target stays forgotten by the same number of kept shadows (the paired design); at least 3 pairs."""
    bad_pairs = {int(k) // 2 for k in diverged}
    keep = np.array([k for k in range(n_shadows) if k // 2 not in bad_pairs], dtype=np.int64)
    if len(keep) < 6:
        raise ConfigError(f"runs diverged on shadows {sorted(diverged)} of {n_shadows}: fewer than 3 complete "
                          f"pairs are left to judge the method on")
    return keep


def _rows(obs: dict, keep: np.ndarray) -> dict:
    """``obs`` restricted to the shadows ``keep`` (its per-shadow lists and φ rows)."""
    out = {**obs, "phi": np.asarray(obs["phi"])[keep]}
    for k in ("acc", "time_s", "cpu_s"):
        out[k] = [obs[k][i] for i in keep]
    return out


def evaluate_from_phi(unlearned: dict, reference: dict, member, *, n_boot: int = DEFAULT_BOOT, conf: float = 0.95,
                      seed: int = 0, score: bool = True, shadows_curve: bool = True) -> dict:
    """U-LiRA and the NeurIPS score from :func:`advunlearn.studies.shadows.collect` outputs of a method and the references."""
    from ..evaluation.neurips_score import unlearning_score

    u, r = unlearned["phi"], reference["phi"]
    out = {"ulira": ulira_attack(u, r, member, n_boot=n_boot, conf=conf, seed=seed)}
    if score:
        gu, gr = matched_groups(u, r, member)
        mean = lambda accs, k: float(np.mean([a[k] for a in accs]))  # noqa: E731
        out["neurips"] = unlearning_score(gu, gr, mean(unlearned["acc"], "retain"), mean(reference["acc"], "retain"),
                                          mean(unlearned["acc"], "test"), mean(reference["acc"], "test"), conf=conf)
    if shadows_curve and n_boot and u.shape[0] >= 6:
        out["ci_vs_shadows"] = ci_vs_shadows(u, r, member, n_boot=min(n_boot, 200), conf=conf, seed=seed)
    accs = {k: float(np.mean([a[k] for a in unlearned["acc"]])) for k in ("forget", "retain", "test")}
    out["shadow_accuracy"] = {"unlearned": accs,
                              "retrained": {k: float(np.mean([a[k] for a in reference["acc"]]))
                                            for k in ("forget", "retain", "test")}}
    return out


def ulira_evaluate(exp, methods: Sequence[str] = ("retrain", "ft"), n_shadows: int | None = None,
                   n_targets: int | None = None, *, workers: int = 1, backend: str = "process",
                   address: str | None = None, n_boot: int = DEFAULT_BOOT, conf: float = 0.95,
                   overrides: dict | None = None, out=None, log=print) -> list[dict]:
    """U-LiRA and the NeurIPS 2023 score of every method on ``exp``'s shadows; one record per method.

    Trains (or reuses) the shadows' originals and references once, then each method's unlearning
    runs (:func:`advunlearn.studies.shadows.run_shadows`, ``workers`` processes).  A record holds the
    experiment's identity (dataset, scheme, sparsity, seed, profile, ...), ``method``,
    ``record: "ulira"``, ``ulira`` (:func:`ulira_attack`), ``neurips``
    (:func:`advunlearn.evaluation.neurips_score.unlearning_score`), ``ci_vs_shadows``, the shadows' mean
    accuracies, and ``cost`` (the shared shadows' training time, the method's summed run time, the
    wall time of this call).  Include "retrain": its record is the floor.  ``out``: a JSON file to
    write the records to (``advunlearn report`` reads it).
    """
    from ..experiments.experiment import one_thread_if
    from .shadows import DEFAULT_SHADOWS

    n_shadows = DEFAULT_SHADOWS if n_shadows is None else n_shadows
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise ConfigError("methods is empty; name at least one method (include 'retrain' for the floor)")
    # With workers (single-thread processes or Ray tasks of one CPU) this process computes and looks up
    # the shadows' artifacts with one thread too: the thread count is part of every key.
    with one_thread_if(workers > 1 or backend == "ray"):
        return _ulira_evaluate(exp, methods, n_shadows, n_targets, workers, backend, address, n_boot, conf,
                               overrides, out, log)


def _ulira_evaluate(exp, methods, n_shadows, n_targets, workers, backend, address, n_boot, conf, overrides, out,
                    log) -> list[dict]:
    from ..experiments.runner import record_base
    from .shadows import collect, run_shadows, shadow_plan
    from ..core.store import atomic_write_json

    t0 = time.perf_counter()
    plan = shadow_plan(exp, n_shadows, n_targets)
    if log:
        log(f"[{exp.dataset} {exp.scheme} seed {exp.seed}] {plan.n_shadows} shadows, {plan.n_targets} targets, "
            f"base {len(plan.base)}; methods {', '.join(methods)}; {workers} worker(s)")
    run = run_shadows(exp, ["original", "reference", *methods], n_shadows, n_targets, workers=workers,
                      backend=backend, address=address, overrides=overrides, log=log)
    ref = collect(exp, plan, "reference")
    orig = collect(exp, plan, "original")
    shared_s = float(np.sum(ref["time_s"]) + np.sum(orig["time_s"]))
    cpu = lambda o: float(np.sum([c for c in o["cpu_s"] if c is not None]))  # noqa: E731
    shared_cpu = cpu(ref) + cpu(orig)
    recs = []
    for m in methods:
        obs = collect(exp, plan, m, overrides)
        diverged = diverged_shadows(obs)
        if diverged:  # judged on the shadow pairs whose runs all finished with finite outputs (recorded)
            keep = kept_shadows(plan.n_shadows, diverged)
            if log:
                log(f"  {m:12s} diverged on shadow(s) {diverged} (non-finite outputs): judged on the "
                    f"{len(keep)} shadows of the other pairs")
            res = evaluate_from_phi(_rows(obs, keep), _rows(ref, keep), plan.member[keep], n_boot=n_boot, conf=conf,
                                    seed=exp.seed)
        else:
            res = evaluate_from_phi(obs, ref, plan.member, n_boot=n_boot, conf=conf, seed=exp.seed)
        rec = {**record_base(exp), "method": m, "record": "ulira", "v": ULIRA_VERSION, **res,
               "shadows": {"n_shadows": plan.n_shadows, "n_targets": plan.n_targets, "n_base": len(plan.base),
                           "forget_per_shadow": int(plan.member[0].sum()), "design": "paired halves, leave-one-out"},
               "cost": {"shared_shadow_train_s": shared_s, "method_run_s": float(np.sum(obs["time_s"])),
                        "shared_shadow_cpu_s": shared_cpu, "method_cpu_s": cpu(obs),
                        "cpu_s_known_for": int(sum(c is not None for c in obs["cpu_s"])),
                        "wall_s_this_call": time.perf_counter() - t0, "workers": workers,
                        "computed": run["computed"], "reused": run["reused"]}}
        if diverged:
            rec["diverged"] = {"shadows": diverged, "of": plan.n_shadows,
                               "accuracy": [obs["acc"][k] for k in diverged],
                               "note": "non-finite outputs; each such shadow's pair left out of the statistics"}
        if overrides and m not in ("retrain",):
            rec["overrides"] = overrides
        recs.append(rec)
        if log:
            u = rec["ulira"]
            ci = (f" [{100 * u['accuracy_ci'][0]:.1f}, {100 * u['accuracy_ci'][1]:.1f}]"
                  if "accuracy_ci" in u else "")
            log(f"  {m:12s} U-LiRA acc {100 * u['accuracy']:5.1f}%{ci}  AUC {u['auc']:.3f}  NeurIPS score "
                f"{rec['neurips']['score']:.3f}")
    if out is not None:
        atomic_write_json(out, recs)
    return recs


def lira_on_originals(exp, n_shadows: int | None = None, n_targets: int | None = None, **kw) -> dict:
    """Classic LiRA on the shadows' originals (trained on S_k vs not): the leak unlearning must remove."""
    from .shadows import DEFAULT_SHADOWS, collect, shadow_plan

    plan = shadow_plan(exp, DEFAULT_SHADOWS if n_shadows is None else n_shadows, n_targets)
    return lira_attack(collect(exp, plan, "original")["phi"], plan.member, **kw)


__all__ = ["lr_scores", "ulira_attack", "lira_attack", "ci_vs_shadows", "analytic_auc", "DEFAULT_BOOT",
           "FPR_POINTS", "matched_groups", "evaluate_from_phi", "ulira_evaluate", "lira_on_originals"]
