"""U-LiRA, the NeurIPS 2023 unlearning score, shadow models and the memorised forget set.

Statistical properties are checked on synthetic Gaussians with known answers over several seeds,
with margins; the shadow pipeline on digits with the tiny profile (a few seconds).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from advunlearn.evaluation import neurips_score as ns
from advunlearn.core.config import ConfigError
from advunlearn.studies.ulira import analytic_auc, ci_vs_shadows, lira_attack, ulira_attack

sys.path.insert(0, str(Path(__file__).parent))
import _metric_py_transcription as metric_py  # noqa: E402


def _member(k: int, e: int, rng) -> np.ndarray:
    """Complementary halves in pairs, as the shadows use: every example in exactly k/2 rows."""
    m = np.zeros((k, e), bool)
    for j in range(k // 2):
        perm = rng.permutation(e)
        m[2 * j, perm[: e // 2]] = True
        m[2 * j + 1, perm[e // 2:]] = True
    return m


def _synthetic(seed: int, k: int = 64, e: int = 150, delta: float = 1.0, sigma: float = 1.0):
    """φ of unlearned ~ N(μ(x) + Δ, σ²), retrained ~ N(μ(x), σ²), μ(x) spread over examples."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(2.0, 2.0, e)
    u = rng.normal(mu + delta, sigma, (k, e))
    r = rng.normal(mu, sigma, (k, e))
    return u, r, _member(k, e, rng)


# ---------------------------------------------------------------------------------------------
# U-LiRA statistics
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("delta", [0.7, 1.5])
def test_ulira_auc_matches_the_gaussian_value(delta):
    # With equal σ the likelihood ratio is linear in φ: its scores are N(±Δ²/(2σ²), Δ²/σ²), so
    # AUC = Φ(Δμ_score / sqrt(σ1² + σ2²)) = Φ(Δ / (σ√2)); the Bayes accuracy at Λ = 0 is Φ(Δ / 2σ).
    want_auc = analytic_auc(delta ** 2, delta, delta)
    assert want_auc == pytest.approx(analytic_auc(delta, 1.0, 1.0))  # the same for the φ themselves
    for seed in range(3):
        u, r, m = _synthetic(seed, delta=delta)
        res = ulira_attack(u, r, m, n_boot=100, seed=seed)
        assert res["variance"] == "per-example"  # 64 shadows: 31 values in every fit
        assert abs(res["auc"] - want_auc) < 0.02, (seed, res["auc"], want_auc)
        assert abs(res["accuracy"] - stats.norm.cdf(delta / 2)) < 0.02
        lo, hi = res["auc_ci"]
        assert lo - 0.01 < want_auc < hi + 0.01
        g = ulira_attack(u, r, m, n_boot=0, variance="global")
        assert abs(g["auc"] - want_auc) < 0.02


def test_retrain_against_retrain_sits_at_chance():
    # The floor: "unlearned" models drawn from the retrained distribution itself.
    covered = 0
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        mu = rng.normal(1.0, 2.0, 120)
        sd = rng.uniform(0.5, 1.5, 120)
        # every model also shifts all its φ a little (a "temperature" of its own), as real models do
        u = rng.normal(mu, sd, (16, 120)) + rng.normal(0, 0.5, (16, 1))
        r = rng.normal(mu, sd, (16, 120)) + rng.normal(0, 0.5, (16, 1))
        res = ulira_attack(u, r, _member(16, 120, rng), n_boot=200, seed=seed)
        assert abs(res["accuracy"] - 0.5) < 0.06 and abs(res["auc"] - 0.5) < 0.07, res["accuracy"]
        lo, hi = res["accuracy_ci"]
        covered += lo <= 0.5 <= hi
        assert hi - lo < 0.2
    assert covered >= 4


def test_low_fpr_only_where_the_counts_resolve_it():
    u, r, m = _synthetic(0, k=8, e=40)  # 8 x 20 = 160 retrained observations: 1% yes, 0.1% no
    res = ulira_attack(u, r, m, n_boot=0)
    assert res["n_neg"] == 160
    assert res["tpr@1%"] is not None and len(res["tpr@1%_ci"]) == 2
    assert res["tpr@0.1%"] is None and "needs >= 1000" in res["tpr@0.1%_note"]


def test_interval_narrows_with_more_shadows():
    for seed in range(3):
        u, r, m = _synthetic(seed, k=32, e=100, delta=0.5)
        rows = ci_vs_shadows(u, r, m, n_boot=100, seed=seed)
        assert [row["k"] for row in rows] == [4, 6, 8, 16, 32]
        assert rows[-1]["half_width"] < 0.6 * rows[0]["half_width"], rows


def test_lira_on_originals_detects_membership():
    rng = np.random.default_rng(3)
    mu = rng.normal(0, 2, 100)
    m = _member(16, 100, rng)
    phi = rng.normal(mu + 2.0 * m, 1.0)  # trained-on examples are 2σ more confident
    res = lira_attack(phi, m, n_boot=0)
    assert res["auc"] > 0.85


def test_ulira_rejects_bad_shapes():
    with pytest.raises(ConfigError):
        ulira_attack(np.zeros((4, 3)), np.zeros((4, 2)), np.ones((4, 3), bool))
    with pytest.raises(ConfigError):
        ci_vs_shadows(*_synthetic(0, k=8, e=10), ks=[5])


# ---------------------------------------------------------------------------------------------
# the NeurIPS 2023 score
# ---------------------------------------------------------------------------------------------
def test_epsilon_of_hand_made_rates():
    # unlearned {0, 1, 2, 3}, retrained {2.5, 3.5, 4.5, 5.5}.  A threshold with FPR = 0 or FNR = 0
    # (but not both) is discarded; "retrained iff φ >= 2.75" has one false positive (3) and one false
    # negative (2.5) of four each, and no pair with both counts >= 1 gives a larger ε than (1, 1).
    u = np.array([0.0, 1.0, 2.0, 3.0])
    r = np.array([2.5, 3.5, 4.5, 5.5])
    d = ns.DELTA

    def eps(fp, fn):
        fpr, fnr = fp / 4, fn / 4
        return max(math.log((1 - d - fpr) / fnr), math.log((1 - d - fnr) / fpr))

    # (a rate of 1 makes one term undefined and the other negative, clipped to 0: left out)
    best = max(eps(fp, fn) for fp in range(1, 4) for fn in range(1, 4))
    assert best == eps(1, 1) == pytest.approx(math.log((0.75 - d) / 0.25))
    assert ns.example_epsilon(u, r) == pytest.approx(best, abs=1e-12)
    # perfectly separated samples: FPR = FNR = 0 at some threshold -> the cap
    assert ns.example_epsilon(u, r + 10) == ns.EPSILON_CAP
    # one sample (nearly) a point mass: the cap (metric.py's 1% rule)
    assert ns.example_epsilon(np.full(4, 1.0), r) == ns.EPSILON_CAP
    # buckets for N = 16 models: ceil(ln 15) = 3 -> [0, .5), ..., [2.5, 3): 6 buckets scoring 1 .. 1/32
    assert [p for _, p in ns.bucket_points(16)] == [1, 0.5, 0.25, 0.125, 0.0625, 0.03125]
    assert list(ns.example_points([0.1, 0.6, 2.9, 3.0, 50], 16)) == [1, 0.5, 0.03125, 0, 0]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # metric.py's nanmax over all-NaN thresholds
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_score_agrees_with_metric_py(seed):
    rng = np.random.default_rng(seed)
    n, e = (5, 8, 12)[seed], 4
    centre = rng.normal(0, 1, e)
    u = rng.normal(centre, rng.uniform(0.3, 1.0, e), (n, e))
    r = rng.normal(centre + rng.normal(0, 1.0, e), rng.uniform(0.3, 1.0, e), (n, e))
    r[:, 0] = u[:, 0] + 8            # separated
    r[:, 1] = 0.4 + 1e-4 * r[:, 1]   # peaky
    ref_score, ref_eps = metric_py.compute_forget_score_from_confs(u.copy(), r.copy())
    f, eps, _ = ns.forgetting_quality(u, r)
    np.testing.assert_allclose(eps, ref_eps, atol=1e-5)
    assert f == pytest.approx(ref_score)


def test_unlearning_score_scales_by_accuracy_ratios():
    rng = np.random.default_rng(0)
    u = rng.normal(0, 1, (8, 30))
    r = rng.normal(0, 1, (8, 30))
    res = ns.unlearning_score(u, r, ra_u=90, ra_r=100, ta_u=80, ta_r=80)
    assert res["score"] == pytest.approx(res["forgetting_quality"] * 0.9)
    lo, hi = res["forgetting_quality_ci"]
    assert lo <= res["forgetting_quality"] <= hi
    assert res["n_buckets"] == 4  # ceil(ln 7) = 2


# ---------------------------------------------------------------------------------------------
# shadows on digits (tiny profile: a model trains in about a second)
# ---------------------------------------------------------------------------------------------
def _digits(tmp, scheme="random", seed=0, **kw):
    from advunlearn.experiments.experiment import Experiment

    return Experiment(dataset="digits", profile="tiny", scheme=scheme, seed=seed, results=tmp, progress=False,
                      device="cpu", **kw)


def test_shadow_plan_design(tmp_path, one_thread):
    from advunlearn.studies.shadows import shadow_experiment, shadow_plan

    exp = _digits(tmp_path)
    key_before = exp.forget_key()
    plan = shadow_plan(exp, 8)
    t, b, d = set(plan.targets.tolist()), set(plan.base.tolist()), set(exp.splits.train.tolist())
    assert set(exp.splits.forget.tolist()) <= t and len(t) == 2 * len(exp.splits.forget)
    assert not t & b and t | b == d
    assert (plan.member.sum(0) == 4).all()                       # every target in half of the shadows
    assert (plan.member[0::2] ^ plan.member[1::2]).all()         # pairs of complementary halves
    assert (shadow_plan(exp, 4).member == plan.member[:4]).all()  # K shadows are a prefix of K + 2
    s3 = shadow_experiment(exp, plan, 3)
    assert set(s3.splits.train.tolist()) == b | set(plan.forget(3).tolist())
    assert s3.splits.forget.tolist() == sorted(plan.forget(3).tolist()) and s3.splits.retain.tolist() == sorted(b)
    assert s3.data is exp.data and s3.data_key() != shadow_experiment(exp, plan, 2).data_key()
    assert exp.forget_key() == key_before and "shadow" not in exp.data_key()  # ordinary keys unchanged
    with pytest.raises(ConfigError):
        shadow_plan(_digits(tmp_path, scheme="class"), 8)
    with pytest.raises(ConfigError):
        shadow_plan(exp, 7)


_CHILD = """
import sys
from advunlearn.experiments.experiment import Experiment
from advunlearn.studies.shadows import run_shadows
exp = Experiment(dataset="digits", profile="tiny", seed=0, results=sys.argv[1], progress=False, device="cpu")
run_shadows(exp, ["original", "reference"], 4)
"""


def test_killed_shadow_run_resumes(tmp_path):
    import os
    import signal
    import subprocess
    import time

    from advunlearn.studies.shadows import collect, run_shadows, shadow_plan

    env = {**os.environ, "ADVUNLEARN_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)], env=env)
    obs = tmp_path / "shadow-obs"
    try:
        deadline = time.time() + 300
        while len(list(obs.glob("*/DONE"))) < 2 and child.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert child.poll() is None, "the run ended before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    done_before = len(list(obs.glob("*/DONE")))
    assert 2 <= done_before < 8
    exp = _digits(tmp_path)
    run = run_shadows(exp, ["original", "reference"], 4)
    assert run["reused"] == done_before and run["computed"] == 8 - done_before
    again = run_shadows(exp, ["original", "reference"], 4)
    assert again["computed"] == 0 and again["reused"] == 8
    ref = collect(exp, shadow_plan(exp, 4), "reference")
    assert ref["phi"].shape == (4, 2 * len(exp.splits.forget)) and np.isfinite(ref["phi"]).all()


def test_memorized_forget_set_is_memorised(tmp_path, one_thread):
    from advunlearn.studies.memorization import _memo_shadow, memorization_scores

    for seed in (0, 1):
        mem = _digits(tmp_path, scheme="memorized", seed=seed, memorization_shadows=4)
        rnd = _digits(tmp_path, scheme="random", seed=seed)
        assert mem.splits.train.tolist() == rnd.splits.train.tolist()
        assert len(mem.splits.forget) == len(rnd.splits.forget)
        sc = memorization_scores(mem, train=mem.splits.train)
        assert sc["n_shadows"] == 4
        # held-out estimate from four other shadows (pairs 2 and 3 of an 8-shadow plan)
        train = mem.splits.train.numpy()
        from advunlearn.studies.memorization import _membership

        member = _membership(mem, len(train), 8)[4:]
        correct = np.stack([_memo_shadow(mem, train, 8, i)["correct"] for i in range(4, 8)]).astype(float)
        held = (correct * member).sum(0) / member.sum(0) - (correct * ~member).sum(0) / (~member).sum(0)
        pos = {int(v): i for i, v in enumerate(train)}
        f_mem = held[[pos[int(v)] for v in mem.splits.forget]].mean()
        f_rnd = held[[pos[int(v)] for v in rnd.splits.forget]].mean()
        assert f_mem > f_rnd + 0.05, (seed, f_mem, f_rnd)
        assert sc["score"][[pos[int(v)] for v in mem.splits.forget]].min() >= np.sort(sc["score"])[-len(train) // 10 - 1] - 1e-9
    assert mem.forget_key()["memorization"]["shadows"] == 4


def test_ulira_pipeline_records(tmp_path, one_thread):
    from advunlearn.studies.ulira import ulira_evaluate

    exp = _digits(tmp_path)
    recs = ulira_evaluate(exp, ["ft"], n_shadows=4, n_boot=50, out=tmp_path / "u.json", log=None)
    assert [r["method"] for r in recs] == ["ft"]
    for r in recs:
        assert r["record"] == "ulira" and r["scheme"] == "random" and r["shadows"]["n_shadows"] == 4
        u = r["ulira"]
        assert 0 <= u["accuracy_ci"][0] <= u["accuracy"] <= u["accuracy_ci"][1] <= 1
        assert u["n_pos"] == u["n_neg"] == 4 * len(exp.splits.forget)
        assert r["neurips"]["n_models"] == 2 and 0 <= r["neurips"]["score"] <= 1.5
    assert (tmp_path / "u.json").exists()
    # a second method reuses the shared shadows: only its own unlearning runs are new
    again = ulira_evaluate(exp, ["ga"], n_shadows=4, n_boot=0, log=None)
    assert again[0]["cost"]["computed"] == 4 and again[0]["cost"]["reused"] == 8


def test_report_reads_ulira_records(tmp_path):
    import json

    from advunlearn.report import build_report
    from advunlearn.studies.ulira import evaluate_from_phi

    recs = []
    for method, shift in (("retrain", 0.0), ("ft", 1.0)):
        u, r, m = _synthetic(0, k=8, e=60, delta=shift)
        acc = [{"forget": 100.0, "retain": 99.0, "test": 85.0}] * 8
        res = evaluate_from_phi({"phi": u, "acc": acc}, {"phi": r, "acc": acc}, m, n_boot=50)
        recs.append({"dataset": "fashion-mnist", "scheme": "random", "sparsity": 0.0, "seed": 0, "profile": "cpu",
                     "method": method, "record": "ulira", **res})
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "ulira.json").write_text(json.dumps(recs))
    paths = build_report(tmp_path / "runs", tmp_path / "report")
    md = paths["ulira.md"].read_text()
    assert "**Retrain (floor)**" in md and "| FT |" in md
    assert "n/a" in md and "needs >= 1000" in md       # 8 x 30 = 240 retrained observations: no TPR@0.1%
    assert "U-LiRA and the NeurIPS 2023" in paths["report.html"].read_text()


def test_memorized_scheme_trains_its_score_models_in_worker_processes(tmp_path, one_thread):
    # `advunlearn ulira --scheme memorized --workers N` builds its Experiment with memorization_workers=N:
    # the same scores, hence the same forget set, as one process computes.
    one = _digits(tmp_path / "one", scheme="memorized", seed=3, memorization_shadows=4)
    two = _digits(tmp_path / "two", scheme="memorized", seed=3, memorization_shadows=4, memorization_workers=2)
    assert one.splits.forget.tolist() == two.splits.forget.tolist()
    assert one.forget_key() == two.forget_key()  # the worker count is not part of any key


def test_ulira_with_workers_computes_every_shadow_once_whatever_the_callers_threads(tmp_path):
    """Workers compute with one thread; the caller, though it has two, looks their artifacts up (and
    computes anything of its own) with one thread too, so nothing is computed twice."""
    import json

    import torch

    from advunlearn.studies.ulira import ulira_evaluate

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        exp = _digits(tmp_path)
        recs = ulira_evaluate(exp, ["ft"], n_shadows=4, n_boot=0, workers=2, log=None)
        assert torch.get_num_threads() == 2                   # restored
    finally:
        torch.set_num_threads(before)
    assert recs[0]["cost"]["computed"] == 12 and recs[0]["cost"]["reused"] == 0   # 4 x (original, reference, ft)
    keys = [json.loads(p.read_text()) for p in tmp_path.rglob("config.json")]
    threads = {json.dumps(k, sort_keys=True).count('"threads": 2') for k in keys}
    assert threads == {0}, "an artifact was computed with the caller's two threads"


def test_diverged_shadows_and_the_pairs_kept():
    from advunlearn.core.config import ConfigError
    from advunlearn.studies.ulira import diverged_shadows, kept_shadows

    phi = np.zeros((8, 5))
    phi[3, 2], phi[6, 0] = np.nan, np.inf
    assert diverged_shadows({"phi": phi}) == [3, 6]
    assert kept_shadows(24, [15]).tolist() == [k for k in range(24) if k not in (14, 15)]
    assert kept_shadows(8, [3]).tolist() == [0, 1, 4, 5, 6, 7]
    with pytest.raises(ConfigError, match=r"diverged on shadows \[3, 6\] of 8: fewer than 3 complete pairs"):
        kept_shadows(8, [3, 6])


def test_a_run_that_diverged_on_one_shadow_is_judged_on_the_other_pairs_and_says_so(tmp_path, one_thread, monkeypatch):
    from advunlearn.report.ulira import ulira_markdown, ulira_seeds_markdown
    from advunlearn.studies import shadows
    from advunlearn.studies.ulira import ulira_evaluate

    real = shadows.collect

    def collect(exp, plan, role, *a, **kw):  # FT's run on shadow 3 "diverged": NaN outputs
        o = real(exp, plan, role, *a, **kw)
        if role == "ft":
            o = {**o, "phi": o["phi"].copy()}
            o["phi"][3, :] = np.nan
        return o

    monkeypatch.setattr(shadows, "collect", collect)
    exp = _digits(tmp_path)
    lines = []
    recs = ulira_evaluate(exp, ["retrain", "ft"], n_shadows=8, n_boot=0, log=lines.append)
    by = {r["method"]: r for r in recs}
    assert "diverged" not in by["retrain"] and by["retrain"]["ulira"]["n_shadows"] == 8
    ft = by["ft"]
    assert ft["diverged"]["shadows"] == [3] and ft["diverged"]["of"] == 8
    assert ft["ulira"]["n_shadows"] == 6 and ft["shadows"]["n_shadows"] == 8  # shadows 2 and 3 (a pair) left out
    assert np.isfinite(ft["ulira"]["accuracy"]) and np.isfinite(ft["neurips"]["score"])
    assert any("diverged on shadow(s) [3]" in line for line in lines), lines
    table = ulira_markdown(recs)
    row = next(line for line in table.splitlines() if "| FT |" in line)
    assert row.split(" | ")[2] == "6", row
    assert "FT, digits random s0 seed 0 (tiny): diverged on shadow(s) [3] of 8" in table, table
    again = {**ft, "seed": 1}
    again.pop("diverged")
    seeds = ulira_seeds_markdown([ft, again])
    assert "| 0*, 1 |" in seeds and "diverged on some shadows" in seeds, seeds
