"""Metric attacks, SVC MIA-efficacy, evaluate() and Avg. Disparity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from advunlearn.core.config import ConfigError
from advunlearn.evaluation.metrics import DISPARITY_KEYS, avg_disparity, evaluate
from advunlearn.evaluation.mia import (ATTACKS, attack_features, confidence, correctness, entropy, mia_efficacy,
                                       modified_entropy, svc_mia_efficacy)


# ---- metric features ------------------------------------------------------------------------
def test_modified_entropy_matches_formula_by_hand():
    probs = torch.tensor([[0.7, 0.2, 0.1],
                          [0.1, 0.6, 0.3],
                          [0.25, 0.25, 0.5]])
    labels = torch.tensor([0, 2, 1])
    ln = math.log
    # Mentr(p, y) = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i), written out term by term.
    expected = [
        -(1 - 0.7) * ln(0.7) - 0.2 * ln(1 - 0.2) - 0.1 * ln(1 - 0.1),
        -(1 - 0.3) * ln(0.3) - 0.1 * ln(1 - 0.1) - 0.6 * ln(1 - 0.6),
        -(1 - 0.25) * ln(0.25) - 0.25 * ln(1 - 0.25) - 0.5 * ln(1 - 0.5),
    ]
    got = modified_entropy(probs, labels)
    assert got.shape == (3,)
    assert torch.allclose(got, torch.tensor(expected), atol=1e-6)
    # A confident correct prediction has lower Mentr than the same confidence on the wrong label.
    p = torch.tensor([[0.98, 0.01, 0.01], [0.98, 0.01, 0.01]])
    right, wrong = modified_entropy(p, torch.tensor([0, 1]))
    assert right < 0.1 < 3.0 < wrong


def test_modified_entropy_is_finite_at_the_edges():
    probs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    m = modified_entropy(probs, torch.tensor([0, 0]))
    assert torch.isfinite(m).all()
    assert m[0].item() == pytest.approx(0.0, abs=1e-6)       # p_y = 1, others 0
    assert m[1].item() > 60                                  # -(1-0)·log(clamp(0)) + 1·(-log clamp(0))


def test_entropy_confidence_correctness():
    probs = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 0])
    assert torch.allclose(entropy(probs), torch.tensor([math.log(2), -(0.2 * math.log(0.2) + 0.3 * math.log(0.3) +
                                                                        0.5 * math.log(0.5))]), atol=1e-6)
    assert torch.allclose(confidence(probs, labels), torch.tensor([0.5, 0.2]))
    assert correctness(probs, labels).tolist() == [0.0, 0.0]  # argmax of row 0 is 0 (first max)
    assert correctness(probs, torch.tensor([0, 2])).tolist() == [1.0, 1.0]
    assert attack_features(probs, labels, "prob").shape == (2, 3)
    assert attack_features(probs, labels, "m_entropy").shape == (2, 1)
    with pytest.raises(ConfigError, match="attack"):
        attack_features(probs, labels, "loss")


# ---- SVC MIA efficacy -----------------------------------------------------------------------
def _conf(rng, centre, n, spread=0.03):
    return np.clip(rng.normal(centre, spread, n), 0, 1)


def test_svc_efficacy_separable():
    rng = np.random.default_rng(0)
    members, non_members = _conf(rng, 1.0, 400), _conf(rng, 0.3, 300)
    forget_like_non = _conf(rng, 0.3, 200)
    forget_like_mem = _conf(rng, 1.0, 200)
    assert svc_mia_efficacy(members, non_members, forget_like_non) >= 99.0
    assert svc_mia_efficacy(members, non_members, forget_like_mem) <= 1.0
    # (N, 1) arrays give the same answer as (N,)
    assert svc_mia_efficacy(members[:, None], non_members[:, None], forget_like_non[:, None]) >= 99.0


def test_svc_efficacy_inseparable_is_near_half():
    # An RBF SVC fitted to noise carves arbitrary regions, so one draw can land anywhere in ~[25, 80];
    # over ten independent draws the share called non-member averages out near one half.
    rng = np.random.default_rng(1)
    vals = [svc_mia_efficacy(rng.uniform(size=500), rng.uniform(size=500), rng.uniform(size=500), seed=s)
            for s in range(10)]
    assert all(15 <= v <= 85 for v in vals), vals
    assert abs(np.mean(vals) - 50) < 12, vals


def test_svc_efficacy_balances_and_caps():
    rng = np.random.default_rng(2)
    # 5000 members vs 50 non-members: without balancing the SVC would call everything a member.
    members, non_members = rng.uniform(size=5000), rng.uniform(size=50)
    eff = svc_mia_efficacy(members, non_members, rng.uniform(size=400))
    assert 10 < eff < 90
    # capping keeps the answer for separable data
    m, n = _conf(rng, 1.0, 3000), _conf(rng, 0.3, 3000)
    assert svc_mia_efficacy(m, n, _conf(rng, 0.3, 100), max_per_side=200) >= 99.0
    with pytest.raises(ValueError, match="NaN"):
        svc_mia_efficacy(np.array([np.nan, 1.0]), np.array([0.1, 0.2]), np.array([0.5]))
    with pytest.raises(ValueError, match="widths"):
        svc_mia_efficacy(np.ones((4, 2)), np.ones((4, 1)), np.ones((2, 1)))


# ---- Avg. Disparity ---------------------------------------------------------------------------
def test_avg_disparity_reproduces_paper_row():
    ours = {"UA": 3.46, "MIA_efficacy": 8.25, "RA": 99.50, "TA": 93.50}
    retrain = {"UA": 5.80, "MIA_efficacy": 13.91, "RA": 100.0, "TA": 94.30}
    # (2.34 + 5.66 + 0.50 + 0.80) / 4 = 2.325, which the paper prints as 2.32
    assert avg_disparity(ours, retrain) == pytest.approx(2.325, abs=1e-12)
    assert avg_disparity(retrain, retrain) == 0.0
    assert DISPARITY_KEYS == ("UA", "MIA_efficacy", "RA", "TA")
    with pytest.raises(KeyError, match="MIA_efficacy"):
        avg_disparity({"UA": 1, "RA": 1, "TA": 1}, retrain)


# ---- evaluate on digits -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_class(tmp_path_factory):
    from advunlearn.experiments.experiment import Experiment

    exp = Experiment(dataset="digits", scheme="class", profile="cpu", progress=False,
                     results=tmp_path_factory.mktemp("metrics-results"))
    return exp


def test_evaluate_on_digits(digits_class):
    from advunlearn.core.train import accuracy

    exp = digits_class
    model, _ = exp.original()
    res = evaluate(model, exp, time_s=12.0)
    assert set(res) >= {"UA", "RA", "TA", "MIA_efficacy", "run_time_s", "mia"}
    assert set(res["mia"]) == set(ATTACKS)
    s = exp.splits
    assert res["UA"] == pytest.approx(100 - accuracy(model, exp.data, s.forget), abs=1e-6)
    assert res["RA"] == pytest.approx(accuracy(model, exp.data, s.retain), abs=1e-6)
    # class-wise: TA is measured without the forgotten class
    assert not bool((exp.data.y[s.test] == s.forget_class).any())
    assert res["TA"] == pytest.approx(accuracy(model, exp.data, s.test), abs=1e-6)
    assert res["run_time_s"] == 12.0
    # θ0 trained on D_f: it still classifies the class, and the confidence attack calls D_f members.
    assert res["UA"] < 5 and res["MIA_efficacy"] < 20
    assert res["MIA_efficacy"] == pytest.approx(res["mia"]["confidence"])
    assert res["MIA_efficacy"] == pytest.approx(mia_efficacy(model, exp, "confidence"))
    # Retrain never saw the class: UA 100 and D_f looks like non-members.
    retrained, _ = exp.retrain()
    rr = evaluate(retrained, exp, attacks=False)
    assert rr["UA"] == pytest.approx(100.0)
    assert rr["MIA_efficacy"] > 80
    assert "mia" not in rr
    assert 0 < avg_disparity(res, rr) <= 100


def test_figure2_attacks_in_threads_are_the_serial_fits(digits_class):
    """The five SVCs fitted side by side in threads give what one thread gives, attack by attack;
    a bad thread count is refused."""
    from advunlearn.evaluation.mia import all_attacks, softmax_outputs

    exp = digits_class
    model, _ = exp.original()
    outputs = {k: softmax_outputs(model, exp, k) for k in ("forget", "retain", "test")}
    serial = all_attacks(outputs, seed=3, threads=1)
    assert list(serial) == list(ATTACKS)
    assert all_attacks(outputs, seed=3, threads=3) == serial
    assert all_attacks(outputs, ["prob", "entropy"], seed=3, threads=2) == {k: serial[k] for k in ("prob", "entropy")}
    with pytest.raises(ConfigError, match="threads"):
        all_attacks(outputs, threads=0)


def test_evaluate_reports_diverged_model(digits_class):
    import copy

    exp = digits_class
    model = copy.deepcopy(exp.original()[0])
    with torch.no_grad():
        model.fc.weight.fill_(float("nan"))
    res = evaluate(model, exp)
    assert res.get("diverged") is True
    assert res["UA"] == 100.0 and res["RA"] == 0.0
    assert math.isnan(res["MIA_efficacy"]) and all(math.isnan(v) for v in res["mia"].values())
