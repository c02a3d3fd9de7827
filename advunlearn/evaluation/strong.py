"""Strong membership-inference evaluation (beyond the paper): offline LiRA and RMIA with reference models.

The paper judges forgetting with a population attack (an SVC on the confidence).  Such attacks
overstate privacy; per-example attacks calibrated by *reference models* that never saw the target
sample are far stronger at low false-positive rates.  This module provides:

* the statistics: ROC points, AUC (with a DeLong interval), TPR at a fixed FPR, Clopper-Pearson
  intervals for a TPR, Student-t intervals for a mean over seeds;
* the scores: the logit-scaled confidence φ of LiRA, offline LiRA (fixed or per-example variance),
  offline RMIA;
* the reference models: exact OUT models trained on D_r (so they never saw D_f nor D_t), cached in
  the experiment's store and shared by every method of an experiment;
* :func:`strong_attack_report`, which scores D_f (members of θ0) against never-trained test samples,
  and :func:`roc_figure` for the log-log ROC.

Conventions used throughout: a higher score means "more likely a member"; a sample is called a
member when its score is ``>= threshold``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from scipy import stats

from ..core.config import ConfigError, check_range
from ..core.models import Classifier, model_signature
from ..core.prune import apply_masks
from ..core.store import load_model, save_model
from ..core.train import fit, predict

# ----------------------------------------------------------------------------------------------
# statistics
# ----------------------------------------------------------------------------------------------


def _scores(x, name: str) -> np.ndarray:
    """1-D float64 array of finite scores (ConfigError otherwise)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ConfigError(f"{name} is empty; at least one score is needed")
    if np.any(np.isnan(a)):
        raise ConfigError(f"{name} contains NaN; scores must be numbers (+-inf allowed)")
    return a


def _roc_counts(pos, neg) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """True/false-positive counts at every distinct threshold (descending), starting at +inf."""
    p = _scores(pos, "pos_scores")
    n = _scores(neg, "neg_scores")
    s = np.concatenate([p, n])
    lab = np.concatenate([np.ones(p.size, np.int64), np.zeros(n.size, np.int64)])
    order = np.argsort(-s, kind="mergesort")
    s, lab = s[order], lab[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]  # last index of each distinct score
    tps = np.cumsum(lab)[last]
    fps = last + 1 - tps
    thr = np.r_[np.inf, s[last]]
    return np.r_[0, tps], np.r_[0, fps], thr, p.size, n.size


def roc_curve_points(pos_scores, neg_scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct threshold, from (0, 0) at +inf to (1, 1)."""
    tps, fps, thr, n_pos, n_neg = _roc_counts(pos_scores, neg_scores)
    return fps / n_neg, tps / n_pos, thr


def auc(pos_scores, neg_scores) -> float:
    """Area under the ROC = P(score_pos > score_neg) + 0.5 P(tie) (Mann-Whitney U / (m n))."""
    p = _scores(pos_scores, "pos_scores")
    n = _scores(neg_scores, "neg_scores")
    ranks = stats.rankdata(np.concatenate([p, n]))  # average ranks: ties count one half
    return float((ranks[:p.size].sum() - p.size * (p.size + 1) / 2) / (p.size * n.size))


def auc_ci(pos_scores, neg_scores, conf: float = 0.95) -> tuple[float, float, float]:
    """(auc, lo, hi): DeLong's asymptotic normal interval for the AUC, clipped to [0, 1]."""
    check_range("conf", conf, 0, 1, lo_open=True, hi_open=True)
    p = np.sort(_scores(pos_scores, "pos_scores"))
    n = np.sort(_scores(neg_scores, "neg_scores"))
    if p.size < 2 or n.size < 2:
        raise ConfigError(f"auc_ci needs >= 2 positives and >= 2 negatives (got {p.size}, {n.size})")
    # structural components: V10_i = P(neg < pos_i) + 0.5 P(neg == pos_i), V01_j likewise.
    v10 = (np.searchsorted(n, p, "left") + np.searchsorted(n, p, "right")) / (2.0 * n.size)
    v01 = 1.0 - (np.searchsorted(p, n, "left") + np.searchsorted(p, n, "right")) / (2.0 * p.size)
    a = float(v10.mean())
    se = math.sqrt(v10.var(ddof=1) / p.size + v01.var(ddof=1) / n.size)
    z = stats.norm.ppf(0.5 + conf / 2)
    return a, float(max(0.0, a - z * se)), float(min(1.0, a + z * se))


def _tpr_at(tps: np.ndarray, fps: np.ndarray, n_pos: int, n_neg: int, fpr: float) -> tuple[float, int]:
    ok = fps <= fpr * n_neg * (1 + 1e-12)  # counts, so 1% of 10,000 negatives allows exactly 100
    k = int(tps[ok].max())  # the +inf threshold (0 FP) is always allowed
    return k / n_pos, k


def tpr_at_fpr(pos_scores, neg_scores, fpr: float) -> float:
    """Largest TPR over thresholds whose empirical FPR is <= ``fpr`` (member iff score >= threshold).

    Only thresholds at the observed scores (and +inf) are considered, no interpolation between ROC
    points: with ``n_neg`` negatives the FPR resolution is ``1 / n_neg``, and for ``fpr < 1/n_neg``
    this is the TPR at zero false positives.
    """
    check_range("fpr", fpr, 0, 1)
    tps, fps, _, n_pos, n_neg = _roc_counts(pos_scores, neg_scores)
    return _tpr_at(tps, fps, n_pos, n_neg, fpr)[0]


def clopper_pearson(k: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval for a binomial proportion k/n."""
    check_range("n", n, 1, integer=True)
    check_range("k", k, 0, n, integer=True)
    check_range("conf", conf, 0, 1, lo_open=True, hi_open=True)
    alpha = 1.0 - conf
    lo = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def mean_ci(values, conf: float = 0.95) -> tuple[float, float]:
    """(mean, half-width) of a Student-t interval, e.g. over seeds; half-width is nan for one value."""
    check_range("conf", conf, 0, 1, lo_open=True, hi_open=True)
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ConfigError("mean_ci needs at least one value")
    m = float(v.mean())
    if v.size == 1:
        return m, float("nan")
    half = float(stats.t.ppf(0.5 + conf / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return m, half


# ----------------------------------------------------------------------------------------------
# scores
# ----------------------------------------------------------------------------------------------


def _labels_like(labels, n: int) -> torch.Tensor:
    y = torch.as_tensor(labels).detach().cpu().long().ravel()
    if y.numel() != n:
        raise ConfigError(f"labels has {y.numel()} entries but there are {n} rows of outputs")
    return y


def logit_scaled_confidence(logits, labels) -> np.ndarray:
    """LiRA's φ = log(p_y / (1 − p_y)) = z_y − logsumexp_{i≠y} z_i, exact from the logits (float64)."""
    z = torch.as_tensor(logits).detach().cpu().double()
    if z.ndim != 2 or z.shape[1] < 2:
        raise ConfigError(f"logits must have shape (N, K) with K >= 2, got {tuple(z.shape)}")
    y = _labels_like(labels, z.shape[0])
    if y.numel() and (y.min() < 0 or y.max() >= z.shape[1]):
        raise ConfigError(f"labels must lie in 0..{z.shape[1] - 1}")
    zy = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], float("-inf"))
    return (zy - torch.logsumexp(others, 1)).numpy()


def logit_confidence(probs, labels, eps: float = 1e-45) -> np.ndarray:
    """φ = log p_y − log Σ_{i≠y} p_i from probabilities; capped at ±log(1/eps) (prefer logits).

    Where p_y rounds to 1 (float32 softmax: φ > ~17) the rest is 0 and φ saturates at −log(eps),
    as in Carlini et al.'s code; :func:`logit_scaled_confidence` has no such limit.
    """
    p = torch.as_tensor(probs).detach().cpu().double()
    if p.ndim != 2:
        raise ConfigError(f"probs must have shape (N, K), got {tuple(p.shape)}")
    y = _labels_like(labels, p.shape[0])
    py = p.gather(1, y[:, None]).squeeze(1)
    rest = p.scatter(1, y[:, None], 0.0).sum(1)  # Σ_{i≠y} p_i, more exact than 1 − p_y
    return (torch.log(py.clamp_min(eps)) - torch.log(rest.clamp_min(eps))).numpy()


def true_class_prob(logits, labels) -> np.ndarray:
    """p_y = softmax(z)_y in float64 (RMIA's signal)."""
    z = torch.as_tensor(logits).detach().cpu().double()
    y = _labels_like(labels, z.shape[0])
    return torch.exp(z.gather(1, y[:, None]).squeeze(1) - torch.logsumexp(z, 1)).numpy()


def _matrix(x, name: str, n: int) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != n or a.shape[0] < 1:
        raise ConfigError(f"{name} must have shape (M, {n}) with M >= 1 reference models, got {a.shape}")
    return a


def lira_offline(target_phi, shadow_out_phi, fixed_variance: bool = True, min_std: float = 1e-6) -> np.ndarray:
    """Offline LiRA (Carlini et al. 2022): log Λ = log Pr[Z < φ_target], Z ~ N(μ_out, σ_out²).

    ``target_phi``: (N,) φ of the audited model; ``shadow_out_phi``: (M, N) φ of M models trained
    without those samples.  μ_out is the per-sample mean over the M shadows.  The test is one-sided
    (a member's φ is *larger* than its OUT distribution), so the score is the Gaussian CDF,
    Carlini's Λ = 1 − Pr[Z > φ]; we return its logarithm (same ranking, no saturation at 1).

    ``fixed_variance=True``: one σ for all samples, the pooled within-sample standard deviation
    sqrt(mean_i var_i) over the shadows (for M = 1, where no within-sample spread exists, the
    standard deviation of all shadow values, as Carlini's code does).  With a global σ the ranking
    of samples, hence the ROC, does not depend on σ at all.  ``fixed_variance=False``: σ_i per
    sample (needs M >= 2, floored at ``min_std``); Carlini et al. advise it only with many shadows.
    """
    t = _scores(target_phi, "target_phi")
    s = _matrix(shadow_out_phi, "shadow_out_phi", t.size)
    if not np.all(np.isfinite(t)) or not np.all(np.isfinite(s)):
        raise ConfigError("target_phi and shadow_out_phi must be finite")
    m = s.shape[0]
    mu = s.mean(0)
    if fixed_variance:
        sigma = math.sqrt(float(s.var(0, ddof=1).mean())) if m >= 2 else float(s.std())
        sigma = max(sigma, min_std)
    else:
        if m < 2:
            raise ConfigError(f"per-example variance needs >= 2 shadow models, got {m}; use fixed_variance=True")
        sigma = np.maximum(s.std(0, ddof=1), min_std)
    return stats.norm.logcdf((t - mu) / sigma)


def rmia(target_p, ref_p, pop_target_p, pop_ref_p, gamma: float = 1.0, a: float = 0.3,
         break_ties: bool = True) -> np.ndarray:
    """Offline RMIA (Zarifzadeh et al. 2024); returns the fraction of population z each x dominates.

    With p(·|θ) the true-class probability and OUT-only reference models θ'_1..θ'_M:
      Pr(x)     = (1 + a)/2 · mean_m p(x|θ'_m) + (1 − a)/2     (the paper's offline approximation:
                  Pr(x)_IN ≈ a · Pr(x)_OUT + (1 − a), Pr(x) = (Pr(x)_IN + Pr(x)_OUT) / 2)
      ratio(x)  = p(x|θ) / Pr(x), the same for every population sample z (all OUT for all models)
      score(x)  = |{z : ratio(x) / ratio(z) > γ}| / |Z|.
    Computed exactly by sorting the population ratios and a binary search (ratio(z) > 0), so memory
    is O(N + |Z|) without chunking.  For one target model the score is a monotone function of
    ratio(x) taking only |Z| + 1 values, so a small population ties many samples (on digits, with
    |Z| ~ 70, a few negatives share the top level and the TPR at 0.1-1% FPR is understated).
    ``break_ties`` (default) adds ratio(x) / (1 + ratio(x)) / |Z| -- below one level's width, so the
    score keeps the order of the fractions and orders samples within a level by ratio(x); False
    returns the plain fraction.
    """
    check_range("gamma", gamma, 0, lo_open=True)
    check_range("a", a, 0, 1)
    px = _scores(target_p, "target_p")
    pz = _scores(pop_target_p, "pop_target_p")
    rx = _matrix(ref_p, "ref_p", px.size)
    rz = _matrix(pop_ref_p, "pop_ref_p", pz.size)
    if rx.shape[0] != rz.shape[0]:
        raise ConfigError(f"ref_p and pop_ref_p must come from the same reference models ({rx.shape[0]} vs {rz.shape[0]})")
    for name, v in (("target_p", px), ("pop_target_p", pz), ("ref_p", rx), ("pop_ref_p", rz)):
        if np.any(v < 0) or np.any(v > 1) or not np.all(np.isfinite(v)):
            raise ConfigError(f"{name} must hold probabilities in [0, 1]")
    pr_x = (1 + a) / 2 * rx.mean(0) + (1 - a) / 2
    pr_z = (1 + a) / 2 * rz.mean(0) + (1 - a) / 2
    tiny = np.finfo(np.float64).tiny
    ratio_x = px / np.maximum(pr_x, tiny)
    ratio_z = np.sort(pz / np.maximum(pr_z, tiny))
    # ratio_x / ratio_z > gamma  <=>  ratio_z < ratio_x / gamma  (ratio_z >= 0)
    count = np.searchsorted(ratio_z, ratio_x / gamma, side="left").astype(np.float64)
    if break_ties:
        count += ratio_x / (1.0 + ratio_x)  # in [0, 1): never crosses into the next level
    return count / ratio_z.size


# ----------------------------------------------------------------------------------------------
# reference models
# ----------------------------------------------------------------------------------------------


def reference_models(exp, n: int = 4, kind: str = "retrain-ref") -> list[Classifier]:
    """``n`` OUT models for D_f and D_t: the pretraining recipe on D_r, init/batch-order seed seed·1000+1+i.

    Cached in ``exp.store`` and shared by every method of the experiment.  Sparse experiments apply
    θ0's OMP mask, as Retrain does.  They differ from Retrain only in their seeds, so Retrain's own
    scores sit at chance against them by construction.
    """
    check_range("n", n, 1, integer=True)
    masks = exp.masks(exp.original()[0]) if exp.sparsity > 0 else None
    out = []
    for i in range(int(n)):
        seed = exp.seed * 1000 + 1 + i
        key = {**exp.forget_key(), **exp.model_key(), "ref": i}

        def compute(d: Path, seed=seed, i=i):
            model = exp.new_model(seed)
            if masks is not None:
                apply_masks(model, masks)
            info = fit(model, exp.data, exp.splits.retain, exp.prof.pretrain, seed=seed, masks=masks,
                       progress=exp.progress, desc=f"{kind}-{i}")
            meta = {**model_signature(model, exp.dataset), "kind": kind, "ref": i, "seed": seed,
                    "time_s": info["time_s"]}
            save_model(d / "model.safetensors", model, meta)
            return model

        def load(d: Path, seed=seed):
            model = exp.new_model(seed)
            load_model(d / "model.safetensors", model, expect=model_signature(model, exp.dataset))
            return model

        model, _ = exp.store.cached(kind, key, compute, load)
        model.eval()
        out.append(model)
    return out


# ----------------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------------


def _pct(f: float) -> str:
    return f"{100 * f:g}%"


def _downsample_roc(tps, fps, n_pos, n_neg, points: int) -> dict:
    """The ROC step curve sampled at ``points`` log-spaced FPRs from 1/n_neg to 1 (for log-log plots)."""
    grid = np.unique(np.r_[np.logspace(math.log10(1.0 / n_neg), 0.0, points), 1.0])
    allowed = grid * n_neg * (1 + 1e-12)
    j = np.searchsorted(fps, allowed, side="right") - 1  # fps is non-decreasing; tps too
    return {"fpr": [float(f) for f in grid], "tpr": [float(t) for t in tps[j] / n_pos]}


def _threshold_for(tps: np.ndarray, thr: np.ndarray, k: int) -> float:
    """The highest threshold reaching k true positives (member iff score >= it; inf for k = 0)."""
    return float(thr[int(np.searchsorted(tps, k, side="left"))])


def attack_metrics(pos_scores, neg_scores, fpr_points: Sequence[float] = (0.001, 0.01),
                   conf: float = 0.95, roc_points: int = 100) -> dict:
    """AUC (DeLong CI), TPR at each FPR with its Clopper-Pearson CI and threshold, counts, a downsampled ROC.

    Keys: ``auc``, ``auc_ci``, and per FPR f (written as a percentage, e.g. ``1%``): ``tpr@f``,
    ``tp@f`` (true positives), ``tpr@f_ci``, ``thr@f`` (the threshold used) -- or, with fewer than
    1/f negatives, ``tpr@f = None`` and ``tpr@f_note`` saying why; ``n_pos``, ``n_neg``,
    ``min_fpr`` = 1/n_neg (the FPR resolution) and ``roc`` = {"fpr": [...], "tpr": [...]}.
    """
    tps, fps, thr, n_pos, n_neg = _roc_counts(pos_scores, neg_scores)
    res: dict = {"n_pos": n_pos, "n_neg": n_neg, "min_fpr": 1.0 / n_neg, "auc": auc(pos_scores, neg_scores)}
    if n_pos >= 2 and n_neg >= 2:
        res["auc_ci"] = auc_ci(pos_scores, neg_scores, conf)[1:]
    for f in fpr_points:
        check_range("fpr", f, 0, 1)
        if n_neg * f < 1 - 1e-9:
            # Fewer than 1/FPR negatives: no threshold can have this FPR except 0 false positives, so
            # a number here would be the TPR at FPR 0, not at f.  Say so instead of printing one.
            res[f"tpr@{_pct(f)}"] = None
            res[f"tpr@{_pct(f)}_note"] = f"unresolved: {n_neg} negatives < 1/FPR = {1 / f:g}"
            continue
        tpr, k = _tpr_at(tps, fps, n_pos, n_neg, f)
        res[f"tpr@{_pct(f)}"] = tpr
        res[f"tp@{_pct(f)}"] = k
        res[f"thr@{_pct(f)}"] = _threshold_for(tps, thr, k)
        # The interval covers the TPR at this fixed threshold; it ignores the threshold's own
        # uncertainty (the FPR is itself estimated from n_neg negatives: see min_fpr).
        res[f"tpr@{_pct(f)}_ci"] = clopper_pearson(k, n_pos, conf)
    res["roc"] = _downsample_roc(tps, fps, n_pos, n_neg, roc_points)
    return res


def attack_negatives(exp) -> torch.Tensor:
    """Never-trained samples the attacks must tell D_f from: D_t, or D_t's forgotten class (class scheme)."""
    # Class scheme: test samples of the forgotten class.  Against the rest of D_t every attack would
    # only detect the class (a Retrain model already scores that class low), not membership.
    return exp.splits.test_forget if exp.splits.scheme == "class" else exp.splits.test


def strong_attack_report(model, exp, refs: Sequence, fpr_points: Sequence[float] = (0.001, 0.01),
                         max_neg: int | None = None, *, gamma: float = 1.0, a: float = 0.3,
                         population: torch.Tensor | None = None, conf: float = 0.95,
                         roc_points: int = 100) -> dict:
    """LiRA (fixed / per-example variance) and RMIA on D_f (positives) vs never-trained negatives.

    Positives are D_f (members of θ0), negatives :func:`attack_negatives` (subsampled to
    ``max_neg`` with the experiment's seed).  ``refs`` are OUT models for both (see
    :func:`reference_models`).  RMIA's population is the held-out part of D_v unless given (never
    trained by θ0 nor the references, and never sampled by Algorithm 1, whose loop part of D_v is
    pulled on by the attacker term and V_ss; :func:`advunlearn.dau.unlearn.split_validation`).  Returns ``{attack: attack_metrics(...)}`` for ``lira_fixed``, ``rmia`` and, with
    at least two references, ``lira_per_example``; each also holds ``n_refs``, ``n_population``,
    ``negatives`` and the report's ``time_s``.
    """
    t0 = time.perf_counter()
    refs = list(refs)
    if not refs:
        raise ConfigError("refs is empty; strong attacks need at least one reference model (reference_models(exp))")
    pos = exp.splits.forget
    neg = attack_negatives(exp)
    if len(neg) < 1:
        raise ConfigError("there are no never-trained negatives for this experiment's scheme")
    if max_neg is not None:
        check_range("max_neg", max_neg, 1, integer=True)
        if len(neg) > max_neg:
            g = torch.Generator().manual_seed(int(exp.seed))
            neg = neg[torch.randperm(len(neg), generator=g)[:max_neg]].sort().values
    if population is None:
        from ..dau.unlearn import split_validation

        pop = split_validation(exp.splits.val, exp.seed)[1]
    else:
        pop = torch.as_tensor(population).long().cpu()
    idx = torch.cat([pos, neg, pop])
    y = exp.data.y[idx.to(exp.data.device)].cpu()
    n_p, n_n = len(pos), len(neg)

    def signals(m):
        z = predict(m, exp.data, idx, exact=True).cpu()  # fp32: bf16 logits would tie the scores
        return logit_scaled_confidence(z, y), true_class_prob(z, y)

    phi_t, p_t = signals(model)
    ref_sig = [signals(r) for r in refs]
    phi_r = np.stack([s[0] for s in ref_sig])
    p_r = np.stack([s[1] for s in ref_sig])
    xs = slice(0, n_p + n_n)  # audited samples (pos then neg)
    zs = slice(n_p + n_n, None)  # population

    def split(scores):
        return scores[:n_p], scores[n_p:]

    out: dict = {}
    out["lira_fixed"] = attack_metrics(*split(lira_offline(phi_t[xs], phi_r[:, xs], True)),
                                       fpr_points, conf, roc_points)
    if len(refs) >= 2:
        out["lira_per_example"] = attack_metrics(*split(lira_offline(phi_t[xs], phi_r[:, xs], False)),
                                                 fpr_points, conf, roc_points)
    if len(pop) >= 1:
        out["rmia"] = attack_metrics(*split(rmia(p_t[xs], p_r[:, xs], p_t[zs], p_r[:, zs], gamma, a)),
                                     fpr_points, conf, roc_points)
    info = {"n_refs": len(refs), "n_population": len(pop),
            "negatives": "test_forget" if exp.splits.scheme == "class" else "test",
            "time_s": time.perf_counter() - t0}
    for name, r in out.items():
        r.update(info)
    if "rmia" in out:
        out["rmia"].update(gamma=gamma, a=a)
    return out


def roc_figure(reports: Mapping[str, dict], title: str = "Membership inference on D_f (log-log ROC)"):
    """Plotly log-log ROC: ``{label: strong_attack_report(...) or one attack's metrics}``; chance marked."""
    import plotly.graph_objects as go

    fig = go.Figure()
    lo = 1.0
    for label, rep in reports.items():
        items = [(label, rep)] if "roc" in rep else \
            [(f"{label} · {name}", r) for name, r in rep.items() if isinstance(r, dict) and "roc" in r]
        for name, r in items:
            fpr = np.asarray(r["roc"]["fpr"])
            tpr = np.asarray(r["roc"]["tpr"])
            keep = (fpr > 0) & (tpr > 0)
            lo = min(lo, float(fpr[fpr > 0].min()) if np.any(fpr > 0) else lo)
            fig.add_trace(go.Scatter(x=fpr[keep], y=tpr[keep], mode="lines", line_shape="hv",
                                     name=f"{name} (AUC {r['auc']:.3f})"))
    fig.add_trace(go.Scatter(x=[lo, 1.0], y=[lo, 1.0], mode="lines", name="chance (TPR = FPR)",
                             line=dict(dash="dash", color="gray")))
    fig.update_layout(title=title, xaxis_title="false-positive rate", yaxis_title="true-positive rate",
                      xaxis_type="log", yaxis_type="log", template="plotly_white")
    return fig


__all__ = ["roc_curve_points", "auc", "auc_ci", "tpr_at_fpr", "clopper_pearson", "mean_ci",
           "logit_scaled_confidence", "logit_confidence", "true_class_prob", "lira_offline", "rmia",
           "reference_models", "attack_metrics", "attack_negatives", "strong_attack_report", "roc_figure"]
