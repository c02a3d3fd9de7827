"""Strong MIAs: statistics on known distributions, LiRA/RMIA on synthetic shadows, and a real leak."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

from advunlearn.core.config import ConfigError, TrainConfig
from advunlearn.evaluation.strong import (attack_metrics, auc, auc_ci, clopper_pearson, lira_offline,
                                          logit_confidence, logit_scaled_confidence, mean_ci, reference_models, rmia,
                                          roc_curve_points, roc_figure, strong_attack_report, tpr_at_fpr,
                                          true_class_prob)

# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [0.0, 0.5, 1.5])
def test_auc_of_shifted_gaussians_matches_theory(d):
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(d, 1, 4000), rng.normal(0, 1, 8000)
    expected = stats.norm.cdf(d / math.sqrt(2))
    a = auc(pos, neg)
    assert abs(a - expected) < 0.015
    a2, lo, hi = auc_ci(pos, neg)
    assert a2 == pytest.approx(a)
    assert lo < expected < hi and hi - lo < 0.04
    lab = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    assert a == pytest.approx(roc_auc_score(lab, np.r_[pos, neg]), abs=1e-12)


def test_auc_counts_ties_as_half_and_roc_matches_sklearn():
    assert auc([1.0, 1.0], [1.0, 1.0]) == 0.5
    assert auc([2.0, 1.0], [1.0, 0.0]) == pytest.approx(0.875)  # 3 wins + 1 tie of 4 pairs
    rng = np.random.default_rng(2)
    pos, neg = rng.integers(0, 20, 300).astype(float), rng.integers(0, 15, 500).astype(float)  # many ties
    fpr, tpr, thr = roc_curve_points(pos, neg)
    sf, st, sthr = roc_curve(np.r_[np.ones(300), np.zeros(500)], np.r_[pos, neg], drop_intermediate=False)
    np.testing.assert_allclose(fpr, sf)
    np.testing.assert_allclose(tpr, st)
    np.testing.assert_allclose(thr[1:], sthr[1:])
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and thr[0] == np.inf


def test_tpr_at_fpr_on_hand_made_scores():
    pos = [0.95, 0.85, 0.75, 0.5, 0.45, 0.3, 0.2, 0.1, 0.05, 0.0]
    neg = [0.9, 0.8, 0.7, 0.6, 0.4, 0.35, 0.25, 0.15, 0.12, 0.01]
    # member iff score >= t: t=0.95 -> (fp 0, tp 1); 0.85 -> (1, 2); 0.75 -> (2, 3); 0.45 -> (4, 5)
    assert tpr_at_fpr(pos, neg, 0.0) == pytest.approx(0.1)
    assert tpr_at_fpr(pos, neg, 0.05) == pytest.approx(0.1)
    assert tpr_at_fpr(pos, neg, 0.1) == pytest.approx(0.2)
    assert tpr_at_fpr(pos, neg, 0.25) == pytest.approx(0.3)
    assert tpr_at_fpr(pos, neg, 0.3) == pytest.approx(0.3)
    assert tpr_at_fpr(pos, neg, 0.4) == pytest.approx(0.5)
    assert tpr_at_fpr(pos, neg, 1.0) == 1.0
    # a positive tied with a negative cannot be called member without that false positive
    assert tpr_at_fpr([1.0, 1.0], [1.0, 0.0], 0.0) == 0.0
    assert tpr_at_fpr([1.0, 1.0], [1.0, 0.0], 0.5) == 1.0
    with pytest.raises(ConfigError, match="fpr"):
        tpr_at_fpr(pos, neg, 1.5)
    with pytest.raises(ConfigError, match="NaN"):
        tpr_at_fpr([np.nan], neg, 0.1)
    with pytest.raises(ConfigError, match="empty"):
        auc([], neg)


def test_clopper_pearson_known_values():
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 0.3085), abs=1e-4)
    assert clopper_pearson(5, 10) == pytest.approx((0.1871, 0.8129), abs=1e-4)
    assert clopper_pearson(10, 10) == pytest.approx((0.6915, 1.0), abs=1e-4)
    lo90, hi90 = clopper_pearson(5, 10, conf=0.90)
    assert 0.1871 < lo90 and hi90 < 0.8129
    for bad in [dict(k=11, n=10), dict(k=-1, n=10), dict(k=1, n=0), dict(k=1, n=10, conf=1.0)]:
        with pytest.raises(ConfigError):
            clopper_pearson(**bad)


def test_mean_ci_uses_student_t():
    m, h = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and h == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    m1, h1 = mean_ci([7.5])
    assert m1 == 7.5 and math.isnan(h1)
    with pytest.raises(ConfigError):
        mean_ci([])


def test_logit_scaled_confidence_is_exact_and_stable():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0], [200.0, 0.0, 0.0]])
    y = torch.tensor([0, 2, 0])
    phi = logit_scaled_confidence(logits, y)
    p = torch.softmax(logits.double(), 1)
    assert phi[0] == pytest.approx(math.log(p[0, 0] / (1 - p[0, 0])))
    assert phi[1] == pytest.approx(math.log(0.5))  # p_y = 1/3: log(1/3 / 2/3)
    assert phi[2] == pytest.approx(200.0 - math.log(2.0))  # p_y rounds to 1, phi stays exact
    # from probabilities: same where representable, saturated (but finite) where p_y rounds to 1
    phi_p = logit_confidence(torch.softmax(logits, 1), y)
    assert phi_p[:2] == pytest.approx(phi[:2], abs=1e-5)
    assert phi_p[2] == pytest.approx(-math.log(1e-45))  # saturated at the cap, far below the true 199.3
    assert true_class_prob(logits, y)[1] == pytest.approx(1 / 3)
    with pytest.raises(ConfigError, match="labels"):
        logit_scaled_confidence(logits, torch.tensor([0, 1]))


# ---------------------------------------------------------------------------------------------
# LiRA and RMIA on synthetic shadows
# ---------------------------------------------------------------------------------------------


def _synthetic_phis(rng, n=6000, m=4, shift=0.0, spread=2.0, noise=None):
    """Per-sample difficulty mu_i; shadows (OUT) ~ mu_i + N(0, s_i); target members shifted by ``shift``."""
    mu = rng.normal(0, spread, n)
    s = np.ones(n) if noise is None else noise
    shadows = mu + s * rng.normal(0, 1, (m, n))
    member = np.arange(n) < n // 2
    target = mu + s * rng.normal(0, 1, n) + shift * member
    return target, shadows, member


@pytest.mark.parametrize("m", [1, 4])
def test_lira_fixed_variance_recovers_analytic_auc(m):
    rng = np.random.default_rng(3)
    d = 1.0
    target, shadows, member = _synthetic_phis(rng, m=m, shift=d)
    s = lira_offline(target, shadows, fixed_variance=True)
    # score ranks by phi - mean of m shadows: N(d, 1 + 1/m) vs N(0, 1 + 1/m)
    expected = stats.norm.cdf(d / math.sqrt(2 * (1 + 1 / m)))
    assert auc(s[member], s[~member]) == pytest.approx(expected, abs=0.02)
    # the per-sample calibration is what helps: raw phi has the spread of mu in the way
    raw = stats.norm.cdf(d / math.sqrt(2 * (1 + 2.0 ** 2)))
    assert auc(target[member], target[~member]) == pytest.approx(raw, abs=0.02)
    assert expected > raw + 0.05
    t0, sh0, member0 = _synthetic_phis(rng, m=m, shift=0.0)
    s0 = lira_offline(t0, sh0, fixed_variance=True)
    assert auc(s0[member0], s0[~member0]) == pytest.approx(0.5, abs=0.025)


def test_lira_per_example_variance_helps_with_heteroscedastic_samples():
    rng = np.random.default_rng(4)
    n = 6000
    noise = np.where(rng.random(n) < 0.5, 0.2, 3.0)  # half the samples are far noisier
    target, shadows, member = _synthetic_phis(rng, n=n, m=64, shift=1.0, noise=noise)
    fixed = lira_offline(target, shadows, fixed_variance=True)
    per = lira_offline(target, shadows, fixed_variance=False)
    assert tpr_at_fpr(per[member], per[~member], 0.01) > tpr_at_fpr(fixed[member], fixed[~member], 0.01) + 0.2
    assert np.all(per <= 0)  # log-probabilities
    with pytest.raises(ConfigError, match="per-example variance needs >= 2"):
        lira_offline(target, shadows[:1], fixed_variance=False)
    with pytest.raises(ConfigError, match="shape"):
        lira_offline(target, shadows[:, :10])


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _synthetic_probs(rng, shift, n=4000, nz=3000, m=2):
    mu, muz = rng.normal(1.0, 2.0, n), rng.normal(1.0, 2.0, nz)
    ref = _sig(mu + rng.normal(0, 1, (m, n)))
    refz = _sig(muz + rng.normal(0, 1, (m, nz)))
    member = np.arange(n) < n // 2
    target = _sig(mu + rng.normal(0, 1, n) + shift * member)
    targetz = _sig(muz + rng.normal(0, 1, nz))
    return target, ref, targetz, refz, member


def test_rmia_matches_the_pairwise_definition():
    rng = np.random.default_rng(5)
    target, ref, tz, rz, _ = _synthetic_probs(rng, 1.0, n=300, nz=200)
    for gamma, a in [(1.0, 0.3), (2.0, 0.0), (0.5, 1.0)]:
        s = rmia(target, ref, tz, rz, gamma=gamma, a=a, break_ties=False)
        rx = target / ((1 + a) / 2 * ref.mean(0) + (1 - a) / 2)
        rzz = tz / ((1 + a) / 2 * rz.mean(0) + (1 - a) / 2)
        brute = (rx[:, None] / rzz[None, :] > gamma).mean(1)
        np.testing.assert_allclose(s, brute)
        # tie-breaking stays inside each level and orders a level by ratio(x)
        t = rmia(target, ref, tz, rz, gamma=gamma, a=a)
        assert np.all(t >= brute) and np.all(t < brute + 1 / len(tz))
        same = brute == np.median(brute)
        if same.sum() > 1:
            assert np.all(np.diff(t[same][np.argsort(rx[same])]) >= 0)
    assert np.all(rmia(target, ref, tz, rz, gamma=4.0) <= rmia(target, ref, tz, rz, gamma=1.0))
    with pytest.raises(ConfigError, match="same reference models"):
        rmia(target, ref, tz, rz[:1])
    with pytest.raises(ConfigError, match="probabilities"):
        rmia(target * 3, ref, tz, rz)
    with pytest.raises(ConfigError, match="a="):
        rmia(target, ref, tz, rz, a=1.5)


def test_rmia_is_at_chance_without_membership_and_detects_a_shift():
    rng = np.random.default_rng(6)
    target, ref, tz, rz, member = _synthetic_probs(rng, 0.0)
    s = rmia(target, ref, tz, rz)
    assert auc(s[member], s[~member]) == pytest.approx(0.5, abs=0.03)
    target, ref, tz, rz, member = _synthetic_probs(rng, 1.5)
    s = rmia(target, ref, tz, rz)
    assert auc(s[member], s[~member]) > 0.7
    # the reference models are what make it strong: the raw probability is far weaker
    assert auc(s[member], s[~member]) > auc(target[member], target[~member]) + 0.05


def test_attack_metrics_intervals_and_downsampled_roc():
    rng = np.random.default_rng(7)
    pos, neg = rng.normal(2, 1, 1000), rng.normal(0, 1, 5000)
    r = attack_metrics(pos, neg, (0.001, 0.01))
    k = r["tp@1%"]
    assert r["tpr@1%"] == k / 1000 == tpr_at_fpr(pos, neg, 0.01)
    assert r["tpr@1%_ci"] == clopper_pearson(k, 1000)
    assert r["tpr@1%_ci"][0] < r["tpr@1%"] < r["tpr@1%_ci"][1]
    t = r["thr@1%"]  # the lowest threshold with at most 50 of the 5,000 negatives above it
    assert np.sum(pos >= t) == k and np.sum(neg >= t) <= 50 < np.sum(neg >= np.max(neg[neg < t]))
    assert abs(stats.norm.sf(t) - 0.01) < 0.003
    assert r["tpr@1%"] == pytest.approx(stats.norm.sf(stats.norm.isf(0.01) - 2), abs=0.06)
    fpr, tpr = np.array(r["roc"]["fpr"]), np.array(r["roc"]["tpr"])
    assert fpr[0] == pytest.approx(1 / 5000) and fpr[-1] == 1.0 and tpr[-1] == 1.0
    assert np.all(np.diff(fpr) > 0) and np.all(np.diff(tpr) >= 0) and len(fpr) <= 101
    for i in range(0, len(fpr), 7):  # each point is the step curve's TPR at that FPR
        assert tpr[i] == tpr_at_fpr(pos, neg, fpr[i])


def test_tpr_interval_covers_the_true_tpr_at_the_chosen_threshold():
    # The Clopper-Pearson interval is for the TPR at the threshold the data picked; it must cover
    # the true TPR there in ~95% (or more: the interval is conservative) of repetitions.
    covered = 0
    reps = 200
    for seed in range(reps):
        rng = np.random.default_rng(1000 + seed)
        pos, neg = rng.normal(2, 1, 400), rng.normal(0, 1, 2000)
        r = attack_metrics(pos, neg, (0.01,), roc_points=10)
        lo, hi = r["tpr@1%_ci"]
        covered += lo <= stats.norm.sf(r["thr@1%"] - 2) <= hi
    assert 0.92 <= covered / reps <= 0.995


# ---------------------------------------------------------------------------------------------
# real models: an overfit Fashion-MNIST MLP leaks D_f; Retrain does not
# ---------------------------------------------------------------------------------------------




@pytest.fixture(scope="module")
def fashion_leak(tmp_path_factory, one_thread):
    """1,000 training images, half of them D_f; an MLP trained 30 epochs without weight decay."""
    from advunlearn.experiments.experiment import Experiment

    exp = Experiment(dataset="fashion-mnist", profile="cpu", scheme="random", forget_frac=0.5, seed=0,
                     progress=False, results=tmp_path_factory.mktemp("strong"),
                     profile_overrides={"model": "mlp", "max_train": 1000,
                                        "pretrain": TrainConfig(epochs=30, lr=0.05, batch_size=64,
                                                                augment=False, weight_decay=0.0)})
    original, _ = exp.original()
    retrain, _ = exp.retrain()
    refs = reference_models(exp, n=2)
    reports = {"Original": strong_attack_report(original, exp, refs),
               "Retrain": strong_attack_report(retrain, exp, refs)}
    return exp, refs, reports


def test_original_model_clearly_leaks_its_training_samples(fashion_leak):
    exp, _, reports = fashion_leak
    for name in ("lira_fixed", "rmia"):
        r = reports["Original"][name]
        assert r["n_pos"] == 500 and r["n_neg"] == 10_000 and r["negatives"] == "test"
        assert r["tpr@1%_ci"][0] > 0.02, (name, r["tpr@1%"], r["tpr@1%_ci"])  # far above the 1% of chance
        assert r["auc_ci"][0] > 0.6, (name, r["auc"])
    assert set(reports["Original"]) == {"lira_fixed", "lira_per_example", "rmia"}


def test_retrain_sits_at_chance_against_its_reference_models(fashion_leak):
    _, _, reports = fashion_leak
    for name in ("lira_fixed", "rmia"):
        r = reports["Retrain"][name]
        assert abs(r["auc"] - 0.5) < 0.06, (name, r["auc"])
        lo, hi = r["tpr@1%_ci"]
        assert lo <= 0.01 <= hi, (name, r["tpr@1%"], (lo, hi))


def test_reference_models_are_cached_out_models(fashion_leak):
    exp, refs, _ = fashion_leak
    again = reference_models(exp, n=2)
    for a, b in zip(refs, again):
        for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(v, w), k
    # different seeds: not the same model twice, nor Retrain
    w0, w1 = (next(r.parameters()) for r in refs)
    assert not torch.equal(w0, w1)
    assert len([d for d in (exp.store.root / "retrain-ref").iterdir() if d.is_dir()]) == 2
    fig = roc_figure(reports=fashion_leak[2])
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert len(fig.data) == 2 * 3 + 1 and fig.data[-1].name.startswith("chance")


def test_class_scheme_uses_same_class_negatives_and_sparse_refs_keep_the_mask(tmp_path, one_thread):
    from advunlearn.experiments.experiment import Experiment

    cfg = TrainConfig(epochs=5, lr=0.05, batch_size=64, augment=False)
    exp = Experiment(dataset="digits", profile="cpu", scheme="class", forget_class=3, sparsity=0.8,
                     progress=False, results=tmp_path, profile_overrides={"max_train": 400, "pretrain": cfg})
    original, _ = exp.original()
    (ref,) = reference_models(exp, n=1)
    masks = exp.masks(original)
    params = dict(ref.named_parameters())
    for name, m in masks.items():
        assert torch.all(params[name][~m] == 0), name
    rep = strong_attack_report(original, exp, [ref], max_neg=20)
    assert set(rep) == {"lira_fixed", "rmia"}  # per-example variance needs two references
    r = rep["lira_fixed"]
    assert r["negatives"] == "test_forget" and r["n_neg"] == 20 < len(exp.splits.test_forget)
    assert r["n_pos"] == len(exp.splits.forget)
    assert bool((exp.data.y[exp.splits.test_forget] == 3).all())
    with pytest.raises(ConfigError, match="refs"):
        strong_attack_report(original, exp, [])


def test_rmia_tie_breaking_recovers_the_ratio_roc_with_a_small_population():
    """With one target model the RMIA score orders samples like ratio(x); a small population ties
    them, and the tie-broken score gives back the ROC of ratio(x) itself."""
    rng = np.random.default_rng(7)
    target, ref, tz, rz, member = _synthetic_probs(rng, 1.0, n=2000, nz=20)
    a = 0.3
    rx = target / ((1 + a) / 2 * ref.mean(0) + (1 - a) / 2)
    plain = rmia(target, ref, tz, rz, break_ties=False)
    broken = rmia(target, ref, tz, rz)
    assert len(np.unique(plain)) <= 21
    assert auc(broken[member], broken[~member]) == pytest.approx(auc(rx[member], rx[~member]), abs=1e-12)
    assert tpr_at_fpr(broken[member], broken[~member], 0.01) == tpr_at_fpr(rx[member], rx[~member], 0.01)


# ---------------------------------------------------------------------------------------------
# what the evaluation may and may not claim
# ---------------------------------------------------------------------------------------------
def test_a_tpr_below_the_fpr_resolution_is_not_printed():
    """With fewer than 1/FPR negatives no threshold has that FPR: the metric says so, the table too."""
    from advunlearn.report import strong_table

    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 300), rng.normal(0, 1, 500)  # 500 negatives: 1% resolved, 0.1% not
    r = attack_metrics(pos, neg, (0.001, 0.01))
    assert r["tpr@0.1%"] is None and "500 negatives < 1/FPR = 1000" in r["tpr@0.1%_note"]
    assert r["tpr@1%"] == tpr_at_fpr(pos, neg, 0.01) and r["tpr@1%"] > 0
    rec = {"dataset": "fashion-mnist", "scheme": "random", "sparsity": 0.0, "seed": 0, "method": "ft", "UA": 0,
           "RA": 100, "TA": 85, "MIA_efficacy": 1, "strong": {"lira_fixed": r}}
    table = strong_table([rec])
    assert "n/a (< 1/FPR negatives)" in table and "LiRA (fixed var.) TPR@1%" in table.splitlines()[0]
    r2 = attack_metrics(pos, rng.normal(0, 1, 1000), (0.001,))
    assert r2["tpr@0.1%"] is not None  # exactly 1/FPR negatives resolve it


def test_fresh_attacker_never_touches_the_loop_part_of_D_v_and_has_a_positive_control(fashion_leak):
    from advunlearn.evaluation.fresh import fresh_attacker, fresh_attacker_split
    from advunlearn.dau.unlearn import split_validation

    exp, refs, _ = fashion_leak
    loop, held = split_validation(exp.splits.val, exp.seed)
    train_neg, eval_neg, pos = fresh_attacker_split(exp)
    assert set(train_neg.tolist()) | set(eval_neg.tolist()) <= set(held.tolist())
    assert not set(train_neg.tolist()) & set(eval_neg.tolist())
    assert not (set(train_neg.tolist()) | set(eval_neg.tolist())) & set(loop.tolist())
    assert torch.equal(pos, exp.splits.forget)
    retrain, _ = exp.retrain()
    out = fresh_attacker(retrain, exp)
    ctrl = out["positive_control"]["forget_vs_val"]
    # θ0 trained on D_f (1,000 images, 500 of them forgotten): the control must find them ...
    assert ctrl["auc"] > 0.6, ctrl
    # ... and Retrain's D_f must look far less like members than θ0's does.
    assert out["forget_vs_val"]["auc"] < ctrl["auc"] - 0.05, (out["forget_vs_val"], ctrl)
    again = fresh_attacker(retrain, exp)
    assert again["positive_control"] == out["positive_control"]  # stored once per experiment
