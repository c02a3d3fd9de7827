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

How the shadows are formed (see :mod:`advunlearn.shadows`): a pool T of target examples, a base set
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
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np
from scipy import stats

from .config import ConfigError, check_choice, check_range

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


def _loo_moments(phi: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (k, x): (mean, sum of squared deviations, count) of phi[k', x] over k' != k with mask[k', x]."""
    m = mask.astype(np.float64)
    centre = np.where(mask.any(0), (np.where(mask, phi, 0).sum(0) / np.maximum(m.sum(0), 1)), 0.0)
    v = np.where(mask, phi - centre[None], 0.0)  # centred: no cancellation in the sums of squares
    s1, s2, n = v.sum(0)[None] - v, (v ** 2).sum(0)[None] - v ** 2, m.sum(0)[None] - m
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        ss = np.clip(s2 - s1 ** 2 / n, 0, None)
    return mean + centre[None], np.where(n > 0, ss, 0.0), n


def _sigma(ss: np.ndarray, n: np.ndarray, per_example: bool, min_std: float) -> np.ndarray:
    """σ per (k, x): per example (needs >= 2 values), or pooled over examples for each left-out k."""
    if per_example:
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.sqrt(ss / (n - 1))
        return np.maximum(np.where(n >= 2, s, np.nan), min_std)
    df = np.clip(n - 1, 0, None).sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.sqrt(ss.sum(1, keepdims=True) / df)
    return np.maximum(np.broadcast_to(np.where(df > 0, s, np.nan), ss.shape), min_std)


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
    check_choice("variance", variance, ("auto", "global", "per-example"))
    pi, po = _as_matrix(in_phi, "in_phi"), _as_matrix(out_phi, "out_phi")
    mi, mo = np.asarray(in_mask, bool), np.asarray(out_mask, bool)
    obs = mo if out_obs_mask is None else np.asarray(out_obs_mask, bool)
    if not (pi.shape == po.shape == mi.shape == mo.shape == obs.shape):
        raise ConfigError(f"in_phi, out_phi and the masks must share one (models, examples) shape; got "
                          f"{pi.shape}, {po.shape}, {mi.shape}, {mo.shape}, {obs.shape}")
    if pi.shape[0] < 3:
        raise ConfigError(f"the likelihood-ratio attack needs >= 3 models (one held out), got {pi.shape[0]}")
    for name, a, m in (("in_phi", pi, mi), ("out_phi", po, mo | obs)):
        if not np.all(np.isfinite(a[m])):
            raise ConfigError(f"{name} must be finite where it is used")
    mu_i, ss_i, n_i = _loo_moments(pi, mi)
    mu_o, ss_o, n_o = _loo_moments(po, mo)
    if variance == "auto":
        n_min = min(n_i[mi].min(initial=np.inf), n_o[obs].min(initial=np.inf))
        variance = "per-example" if n_min >= PER_EXAMPLE_MIN else "global"
    per = variance == "per-example"
    sd_i, sd_o = _sigma(ss_i, n_i, per, min_std), _sigma(ss_o, n_o, per, min_std)
    sd_i = np.where(np.isnan(sd_i), sd_o, sd_i)
    sd_o = np.where(np.isnan(sd_o), sd_i, sd_o)

    def score(phi, k, x):
        if np.any(np.isnan(mu_i[k, x])) or np.any(np.isnan(mu_o[k, x])) or np.any(np.isnan(sd_i[k, x])):
            raise ConfigError("an example has no other model in one of the groups; use more shadow models")
        return (stats.norm.logpdf(phi, mu_i[k, x], sd_i[k, x]) - stats.norm.logpdf(phi, mu_o[k, x], sd_o[k, x]))

    kp, xp = np.nonzero(mi)
    kn, xn = np.nonzero(obs)
    return {"pos": score(pi[kp, xp], kp, xp), "neg": score(po[kn, xn], kn, xn), "pos_model": kp,
            "pos_example": xp, "neg_model": kn, "neg_example": xn, "variance": variance}


# ---------------------------------------------------------------------------------------------
# the attack's accuracy and AUC with a two-way bootstrap
# ---------------------------------------------------------------------------------------------
class _WeightedAUC:
    """AUC (ties count one half) of fixed scores under many weightings, O(n) per weighting."""

    def __init__(self, pos: np.ndarray, neg: np.ndarray):
        s = np.concatenate([pos, neg])
        self.is_pos = np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)]
        _, self.group = np.unique(s, return_inverse=True)
        self.n_groups = int(self.group.max()) + 1

    def __call__(self, w: np.ndarray) -> float:
        wn = np.where(self.is_pos, 0.0, w)
        g_neg = np.bincount(self.group, wn, self.n_groups)
        below = np.cumsum(g_neg) - g_neg
        wp = np.where(self.is_pos, w, 0.0)
        num = float(np.sum(wp * (below[self.group] + 0.5 * g_neg[self.group])))
        den = float(wp.sum() * wn.sum())
        return num / den if den > 0 else float("nan")


def _summary(pos, neg, pos_model, pos_example, neg_model, neg_example, n_models, n_examples,
             n_boot, conf, seed) -> dict:
    correct_pos = (pos > 0).astype(np.float64)
    correct_neg = (neg <= 0).astype(np.float64)
    acc = (correct_pos.sum() + correct_neg.sum()) / (pos.size + neg.size)
    wauc = _WeightedAUC(pos, neg)
    a = wauc(np.ones(pos.size + neg.size))
    res = {"accuracy": float(acc), "auc": float(a), "n_pos": int(pos.size), "n_neg": int(neg.size)}
    if n_boot:
        rng = np.random.default_rng(seed)
        accs, aucs = np.empty(n_boot), np.empty(n_boot)
        for b in range(n_boot):
            wk = np.bincount(rng.integers(0, n_models, n_models), minlength=n_models).astype(np.float64)
            wx = np.bincount(rng.integers(0, n_examples, n_examples), minlength=n_examples).astype(np.float64)
            w_p, w_n = wk[pos_model] * wx[pos_example], wk[neg_model] * wx[neg_example]
            tot = w_p.sum() + w_n.sum()
            accs[b] = (w_p @ correct_pos + w_n @ correct_neg) / tot if tot > 0 else np.nan
            aucs[b] = wauc(np.concatenate([w_p, w_n]))
        q = [(1 - conf) / 2 * 100, (1 + conf) / 2 * 100]
        res["accuracy_ci"] = [float(v) for v in np.nanpercentile(accs, q)]
        res["auc_ci"] = [float(v) for v in np.nanpercentile(aucs, q)]
        res["n_boot"] = int(n_boot)
    return res


def _low_fpr(pos, neg, fpr_points, conf) -> dict:
    """TPR at each FPR the negatives resolve (>= 1/FPR of them); a note for the others."""
    from .strong import _pct, attack_metrics

    ok = [f for f in fpr_points if neg.size * f >= 1 - 1e-9]
    out: dict = {}
    if ok:
        m = attack_metrics(pos, neg, fpr_points=ok, conf=conf, roc_points=60)
        for f in ok:
            out[f"tpr@{_pct(f)}"] = m[f"tpr@{_pct(f)}"]
            out[f"tpr@{_pct(f)}_ci"] = list(m[f"tpr@{_pct(f)}_ci"])
        out["roc"] = m["roc"]
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
    sc = lr_scores(u, mem, r, np.ones_like(mem), out_obs_mask=mem, variance=variance)
    res = _summary(sc["pos"], sc["neg"], sc["pos_model"], sc["pos_example"], sc["neg_model"], sc["neg_example"],
                   k, e, n_boot, conf, seed)
    res.update(_low_fpr(sc["pos"], sc["neg"], fpr_points, conf))
    res.update({"n_shadows": int(k), "n_targets": int(e), "variance": sc["variance"], "conf": conf,
                "attack": "U-LiRA (leave-one-out, likelihood ratio > 0 = unlearned)"})
    if per_example:
        c = np.zeros(e)
        n = np.zeros(e)
        np.add.at(c, sc["pos_example"], sc["pos"] > 0)
        np.add.at(c, sc["neg_example"], sc["neg"] <= 0)
        np.add.at(n, sc["pos_example"], 1)
        np.add.at(n, sc["neg_example"], 1)
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
    sc = lr_scores(p, mem, p, ~mem, variance=variance)
    res = _summary(sc["pos"], sc["neg"], sc["pos_model"], sc["pos_example"], sc["neg_model"], sc["neg_example"],
                   p.shape[0], p.shape[1], n_boot, conf, seed)
    res.update(_low_fpr(sc["pos"], sc["neg"], fpr_points, conf))
    res.update({"n_shadows": int(p.shape[0]), "n_targets": int(p.shape[1]), "variance": sc["variance"]})
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


__all__ = ["lr_scores", "ulira_attack", "lira_attack", "ci_vs_shadows", "analytic_auc", "DEFAULT_BOOT",
           "FPR_POINTS"]
