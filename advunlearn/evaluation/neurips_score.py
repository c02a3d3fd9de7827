"""The NeurIPS 2023 machine-unlearning competition's score (Triantafillou et al., google-deepmind/unlearning_evaluation).

For every forget example, the logit-scaled confidences φ of N *unlearned* and N *retrained* models
form two samples.  Threshold attacks (a single-threshold and a double-threshold rule family, on a
fixed grid of thresholds) each give a false-positive rate FPR and a false-negative rate FNR; the
example's privacy loss is the largest

    ε = max( log((1 − δ − FPR) / FNR),  log((1 − δ − FNR) / FPR) ),  δ = 1e-5,

over the thresholds, capped at 50.  ε is bucketed in steps of 0.5 and an example in bucket b scores
2^(−b); buckets exist only up to ceil(ln(N − 1)) (with N models an ε beyond that cannot be told from
noise), an ε beyond them scores 0.  The forgetting quality F is the mean over examples, and the
final score is F × (RA_u / RA_r) × (TA_u / TA_r) with retain and test accuracies averaged over the
unlearned and the retrained models.

This module follows the reference ``metric.py`` rule by rule (grids, the 1% "peaky" cap, which
thresholds are discarded, the buckets) but counts with sorted arrays instead of materialising a
models × thresholds matrix, so it runs on a CPU in milliseconds per example.  Where it differs, the
difference is a choice and is named where it is made:

* rates are exact ratios of counts in float64 (``metric.py`` averages float32 indicators), so an ε
  may differ in the 7th digit; only an ε within ~1e-6 of a bucket edge could change bucket;
* an example for which no threshold survives (``metric.py`` would fail on its ``assert``) gets
  ε = 0: every threshold then has FPR = 0 or FNR = 0 but not both, so no attack on the grid
  separates the two samples at all;
* ``metric.py`` never defines ε when one sample's spread is zero and the other's too (0/0): like
  ``metric.py`` we then go on to the thresholds.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.config import ConfigError, check_range

DELTA = 1e-5
EPSILON_CAP = 50.0
THRESHOLDS_PER_UNIT = 100
BUFFER = 2.0          # the double-threshold rule's search margin (metric.py's ``buffer``)
BUCKET = 0.5
PEAKY_RATIO = 0.01


def _grid(lo: float, hi: float, num: int) -> np.ndarray:
    """``np.linspace(lo, hi, num)`` (metric.py's grids; torch.linspace agrees at both ends)."""
    return np.linspace(lo, hi, num)


def _single_counts(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positives, false negatives) of "positive iff φ >= t" on metric.py's single-threshold grid.

    ``pos`` is the class with the larger median (it only fixes the labels; ε is symmetric in them).
    """
    lo, hi = min(pos.min(), neg.min()), max(pos.max(), neg.max())
    num = int(math.ceil((hi - lo) * THRESHOLDS_PER_UNIT))
    t = _grid(lo, hi, num)
    ps, ns = np.sort(pos), np.sort(neg)
    tp = ps.size - np.searchsorted(ps, t, "left")  # pos >= t
    fp = ns.size - np.searchsorted(ns, t, "left")
    return fp, ps.size - tp


def _double_counts(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(fp, fn, n_pos, n_neg) of "positive iff l <= φ <= r" on metric.py's double-threshold grid.

    The positive class is the peakier sample (the smaller range, the second one on a tie, as in
    metric.py); the right thresholds run from min_P + w − 2 to max_P + 2 (w = the peaky range, 100
    per unit) and for each right threshold r, 400 left thresholds from r − w − 2 to r − w + 2.
    """
    da, db = a.max() - a.min(), b.max() - b.min()
    width = db if da > db else da
    pos, neg = (b, a) if da >= db else (a, b)
    lo = pos.min() + width - BUFFER
    hi = pos.max() + BUFFER
    right = _grid(lo, hi, int(math.ceil((hi - lo) * THRESHOLDS_PER_UNIT)))
    n_left = int(math.ceil(2 * BUFFER * THRESHOLDS_PER_UNIT))
    # np.linspace(r - w - 2, r - w + 2, n_left) for every r at once, the way np.linspace computes it
    start = right - width - BUFFER
    stop = right - width + BUFFER
    step = (stop - start) / (n_left - 1)
    left = start[:, None] + np.arange(n_left)[None, :] * step[:, None]
    left[:, -1] = stop
    ps, ns = np.sort(pos), np.sort(neg)
    p_le_r = np.searchsorted(ps, right, "right")[:, None]  # pos <= r
    n_le_r = np.searchsorted(ns, right, "right")[:, None]
    tp = np.clip(p_le_r - np.searchsorted(ps, left, "left"), 0, None).ravel()  # l <= pos <= r
    fp = np.clip(n_le_r - np.searchsorted(ns, left, "left"), 0, None).ravel()
    return fp, ps.size - tp, ps.size, ns.size


def _best_epsilon(fp: np.ndarray, fn: np.ndarray, n_pos: int, n_neg: int, delta: float) -> tuple[float, bool]:
    """(largest ε over thresholds with FPR, FNR > 0, whether any threshold survived).

    A threshold with FPR = FNR = 0 gives ε = inf; one with exactly one of them 0 is discarded
    (metric.py: "an indication of insufficient samples").  Each distinct (fp, fn) pair is evaluated
    once.
    """
    if np.any((fp == 0) & (fn == 0)):
        return math.inf, True
    # the distinct (fp, fn) pairs, sorted: a table of the (n_neg + 1)(n_pos + 1) possible pairs marks
    # the ones present (linear time; np.unique would sort all grid points, most of the score's cost)
    seen = np.zeros((n_neg + 1) * (n_pos + 1), dtype=bool)
    seen[fp.astype(np.int64) * (n_pos + 1) + fn] = True
    code = np.flatnonzero(seen)
    f_p, f_n = code // (n_pos + 1), code % (n_pos + 1)
    keep = (f_p > 0) & (f_n > 0)
    if not np.any(keep):
        return 0.0, False
    fpr, fnr = f_p[keep] / n_neg, f_n[keep] / n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        e1 = np.log(1 - delta - fpr) - np.log(fnr)
        e2 = np.log(1 - delta - fnr) - np.log(fpr)
    e = np.fmax(e1, e2)  # nan only where both are (FPR = FNR = 1): metric.py drops those
    e = e[~np.isnan(e)]
    if e.size == 0:
        return 0.0, False
    return float(max(0.0, e.max())), True


def example_epsilon(unlearned, retrained, delta: float = DELTA) -> float:
    """One forget example's ε from its φ under N unlearned and M retrained models (metric.py's rules)."""
    u = np.asarray(unlearned, dtype=np.float64).ravel()
    r = np.asarray(retrained, dtype=np.float64).ravel()
    if u.size < 1 or r.size < 1 or not (np.all(np.isfinite(u)) and np.all(np.isfinite(r))):
        raise ConfigError("example_epsilon needs finite confidences from at least one model of each kind")
    # positive class: the sample with the larger median (metric.py); ε does not depend on it
    pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
    d_pos, d_neg = np.ptp(pos), np.ptp(neg)
    largest, smallest = max(d_pos, d_neg), min(d_pos, d_neg)
    if largest > 0 and smallest / largest < PEAKY_RATIO:
        return EPSILON_CAP  # one sample is (nearly) a point mass: metric.py's cap
    best = 0.0
    fp, fn, n_p, n_n = _double_counts(pos, neg)
    e, ok = _best_epsilon(fp, fn, n_p, n_n, delta)
    best = max(best, e)
    fp, fn = _single_counts(pos, neg)
    e, _ = _best_epsilon(fp, fn, pos.size, neg.size, delta)
    best = max(best, e)
    return float(min(max(best, 0.0), EPSILON_CAP))


def epsilons(unlearned_phi, retrained_phi, delta: float = DELTA) -> np.ndarray:
    """ε per example: ``unlearned_phi`` (N, E) and ``retrained_phi`` (M, E), one column per forget example."""
    u = np.atleast_2d(np.asarray(unlearned_phi, dtype=np.float64))
    r = np.atleast_2d(np.asarray(retrained_phi, dtype=np.float64))
    if u.shape[1] != r.shape[1]:
        raise ConfigError(f"unlearned_phi has {u.shape[1]} examples but retrained_phi {r.shape[1]}")
    return np.array([example_epsilon(u[:, i], r[:, i], delta) for i in range(u.shape[1])])


def bucket_points(n_models: int) -> list[tuple[float, float]]:
    """[(bucket start, points)]: buckets [0, 0.5), [0.5, 1), ... scoring 1, 1/2, 1/4, ... while their
    end is <= ceil(ln(n_models − 1)) (metric.py's "back-of-the-envelope" largest measurable ε)."""
    check_range("n_models", n_models, 2, integer=True)
    max_eps = math.ceil(math.log(n_models - 1)) if n_models > 2 else 0.0
    out, start, points = [], 0.0, 1.0
    while start + BUCKET <= max_eps:
        out.append((start, points))
        points /= 2
        start += BUCKET
    return out


def example_points(eps, n_models: int) -> np.ndarray:
    """2^(−bucket) per example (0 beyond the last bucket)."""
    buckets = bucket_points(n_models)
    e = np.asarray(eps, dtype=np.float64).ravel()
    out = np.zeros(e.size)
    done = np.zeros(e.size, bool)
    for start, points in buckets:
        hit = ~done & (e < start + BUCKET)
        out[hit] = points
        done |= hit
    return out


def forgetting_quality(unlearned_phi, retrained_phi, delta: float = DELTA) -> tuple[float, np.ndarray, np.ndarray]:
    """(F, ε per example, points per example); N (for the buckets) is the number of unlearned models."""
    u = np.atleast_2d(np.asarray(unlearned_phi, dtype=np.float64))
    eps = epsilons(u, retrained_phi, delta)
    pts = example_points(eps, u.shape[0])
    return float(pts.mean()), eps, pts


def unlearning_score(unlearned_phi, retrained_phi, ra_u: float, ra_r: float, ta_u: float, ta_r: float,
                     delta: float = DELTA, conf: float = 0.95) -> dict:
    """The competition's final score F × RA_u/RA_r × TA_u/TA_r, with intervals over examples.

    ``ra_*``, ``ta_*``: mean retain / test accuracy of the unlearned and the retrained models.  The
    interval of F is a Student-t interval over the forget examples (the models held fixed; a choice:
    metric.py reports a point value); the score's interval scales it by the two accuracy ratios,
    which are taken as known.
    """
    from .strong import mean_ci

    f, eps, pts = forgetting_quality(unlearned_phi, retrained_phi, delta)
    n_models = int(np.atleast_2d(np.asarray(unlearned_phi)).shape[0])
    ratio = (ra_u / ra_r) * (ta_u / ta_r)
    m, half = mean_ci(pts, conf) if pts.size > 1 else (f, float("nan"))
    ci = (max(0.0, m - half), min(1.0, m + half)) if math.isfinite(half) else (float("nan"), float("nan"))
    return {"score": f * ratio, "score_ci": [ci[0] * ratio, ci[1] * ratio], "forgetting_quality": f,
            "forgetting_quality_ci": list(ci), "ra_ratio": ra_u / ra_r, "ta_ratio": ta_u / ta_r,
            "n_models": n_models, "n_examples": int(pts.size), "n_buckets": len(bucket_points(n_models)),
            "eps_mean": float(eps.mean()), "eps_median": float(np.median(eps)),
            "share_eps_capped": float(np.mean(eps >= EPSILON_CAP)), "delta": delta}


__all__ = ["DELTA", "EPSILON_CAP", "example_epsilon", "epsilons", "bucket_points", "example_points",
           "forgetting_quality", "unlearning_score"]
