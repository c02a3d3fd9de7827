"""The paper's baselines: Retrain, FT, GA, FF, IU behave as their definitions say, on digits (CPU, seconds)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from advunlearn.core.config import ConfigError
from advunlearn.methods import _common as C
from advunlearn.methods import ff as FF
from advunlearn.methods import iu as IU
from advunlearn.methods import run_method


def run_baseline(name, exp, **hparams):
    return run_method(exp, name, **hparams)
from advunlearn.core.prune import masks_from_model, prunable, sparsity_of
from advunlearn.core.train import accuracy, predict


def _ce(model, exp, idx) -> float:
    return float(nn.functional.cross_entropy(predict(model, exp.data, idx), exp.data.y[idx]))


@torch.no_grad()
def _dist(a: nn.Module, b: nn.Module) -> float:
    return float(sum(((p - q) ** 2).sum() for p, q in zip(a.parameters(), b.parameters())) ** 0.5)


def _state(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return tmp_path_factory.mktemp("baseline-results")


@pytest.fixture(scope="module")
def exp_class(results):
    from advunlearn.experiments.experiment import Experiment

    return Experiment(dataset="digits", scheme="class", profile="cpu", progress=False, results=results)


@pytest.fixture(scope="module")
def exp_random(results):
    from advunlearn.experiments.experiment import Experiment

    return Experiment(dataset="digits", scheme="random", profile="cpu", progress=False, results=results)


@pytest.fixture(scope="module")
def retrain_calls(exp_class):
    """Run Retrain once while recording every training call the experiment makes."""
    import advunlearn.experiments.experiment as E

    calls = []
    real_fit = E.fit

    def spy(model, data, indices, cfg, **kw):
        calls.append((kw.get("desc"), indices.clone()))
        return real_fit(model, data, indices, cfg, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(E, "fit", spy)
        model, info = run_baseline("retrain", exp_class)
    return calls, model, info


# ---- interface -----------------------------------------------------------------------------------
def test_unknown_method_and_option(exp_class):
    with pytest.raises(ConfigError, match="method.*'retrain'.*'iu'"):
        run_baseline("sgd", exp_class)
    with pytest.raises(ConfigError, match=r"unknown hyperparameter.*'alpah'.*allowed: \['alpha'"):
        run_baseline("ff", exp_class, alpah=1e-8)
    with pytest.raises(ConfigError, match="unknown hyperparameter"):
        run_baseline("retrain", exp_class, epochs=3)
    with pytest.raises(ConfigError, match="lr"):
        run_baseline("ft", exp_class, lr=-1.0)
    with pytest.raises(ConfigError, match="grid"):      # α is a hyperparameter now, never searched
        run_baseline("ff", exp_class, grid=[1e-8])


# ---- Retrain --------------------------------------------------------------------------------------
def test_retrain_never_saw_forget_set(exp_class, retrain_calls):
    calls, model, info = retrain_calls
    s = exp_class.splits
    trained_on = [idx for desc, idx in calls]
    assert len(trained_on) == 1, [d for d, _ in calls]      # dense run: one training, nothing else
    idx = trained_on[0].cpu()
    assert torch.equal(idx, s.retain)
    assert not bool(torch.isin(idx, s.forget).any())
    assert set(idx.tolist()) | set(s.forget.tolist()) == set(s.train.tolist())
    # class-wise: a model that never saw the class never predicts it
    assert accuracy(model, exp_class.data, s.forget) == pytest.approx(0.0)
    assert accuracy(model, exp_class.data, s.retain) > 97
    _, meta = exp_class.retrain()
    assert info["method"] == "retrain" and info["run_time_s"] == pytest.approx(meta["time_s"])
    assert info["hparams"]["replica"] == 0


# ---- FT / GA ----------------------------------------------------------------------------------
def test_ft_keeps_retain_accuracy_and_leaves_theta0_alone(exp_class):
    theta0, _ = exp_class.original()
    before = _state(theta0)
    model, info = run_baseline("ft", exp_class)
    s, d = exp_class.splits, exp_class.data
    assert accuracy(model, d, s.retain) >= accuracy(theta0, d, s.retain) - 2
    assert _dist(model, theta0) > 0                           # it did train
    assert all(torch.equal(v, before[k]) for k, v in theta0.state_dict().items())  # θ0 untouched
    assert info["hparams"]["lr"] == exp_class.prof.finetune.lr and info["run_time_s"] > 0
    model2, info2 = run_baseline("ft", exp_class, epochs=1)
    assert info2["hparams"]["epochs"] == 1


def test_ga_ascends_the_forget_loss(exp_class):
    s = exp_class.splits
    theta0, _ = exp_class.original()
    ce0 = _ce(theta0, exp_class, s.forget)
    # The profile's (gentle) setting: the forget loss rises, even if a confident model keeps its labels.
    model, info = run_baseline("ga", exp_class)
    assert _ce(model, exp_class, s.forget) > ce0
    assert info["hparams"] == exp_class.prof.ga.to_dict()
    # A stronger setting lowers forget accuracy while the model stays finite.
    strong, _ = run_baseline("ga", exp_class, lr=0.05, epochs=10)
    assert all(torch.isfinite(p).all() for p in strong.parameters())
    assert accuracy(strong, exp_class.data, s.forget) < accuracy(theta0, exp_class.data, s.forget) - 5


# ---- FF -----------------------------------------------------------------------------------------
def _dist_outside_row(a, b, row):
    """Parameter distance leaving out row ``row`` of the last layer (weight and bias)."""
    sa, sb = dict(a.named_parameters()), dict(b.named_parameters())
    tot = 0.0
    for n, p in sa.items():
        d = (p - sb[n]).detach()
        if n in ("fc.weight", "fc.bias"):
            d = torch.cat([d[:row], d[row + 1:]])
        tot += float((d ** 2).sum())
    return tot ** 0.5


def test_ff_noise_grows_with_alpha_and_resets_the_forgotten_row(exp_class):
    theta0, _ = exp_class.original()
    c = exp_class.splits.forget_class
    m1, i1 = run_baseline("ff", exp_class, alpha=1e-8, max_samples=200)
    m2, i2 = run_baseline("ff", exp_class, alpha=1e-6, max_samples=200)
    d1, d2 = _dist_outside_row(m1, theta0, c), _dist_outside_row(m2, theta0, c)
    assert 0 < d1 < d2
    assert d2 / d1 == pytest.approx(10.0, rel=1e-3)          # same noise draw, std ∝ √α
    # class-wise: the forgotten class's row is 0 + N(0, 1e-3) noise whatever α (the reference code's reset)
    for m in (m1, m2):
        row = torch.cat([m.fc.weight[c], m.fc.bias[c:c + 1]]).detach()
        assert float(row.abs().max()) < 6 * 1e-3 ** 0.5
        assert 0.5 < float(row.std()) / 1e-3 ** 0.5 < 1.5
    torch.testing.assert_close(m1.fc.weight[c], m2.fc.weight[c])  # α-independent: the same draw
    assert float((m1.fc.weight[c] - theta0.fc.weight[c]).detach().abs().max()) > 0
    assert i1["hparams"]["alpha"] == 1e-8 and "alpha_searched" not in i1["hparams"]
    assert i1["hparams"]["fisher_samples"] == 200
    # another noise seed gives another draw
    m3, _ = run_baseline("ff", exp_class, alpha=1e-8, max_samples=200, noise_seed=123)
    assert _dist(m3, m1) > 0


def test_ff_random_forgetting_resets_no_row(exp_random):
    theta0, _ = exp_random.original()
    m1, _ = run_baseline("ff", exp_random, alpha=1e-8, max_samples=200)
    m2, _ = run_baseline("ff", exp_random, alpha=1e-6, max_samples=200)
    assert _dist(m2, theta0) / _dist(m1, theta0) == pytest.approx(10.0, rel=1e-3)


def test_ff_noise_std_caps_and_masks():
    from advunlearn.core.models import build_model

    model = build_model("mlp", 3, 1, 2)
    zero = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    mask = {n: torch.rand(p.shape) > 0.5 for n, p in prunable(model).items()}
    std = FF.ff_noise_std(model, zero, mask, row_mean=False, bias_scale=10.0)
    w = "encoder.1.weight"
    assert torch.allclose(std[w][mask[w]], torch.full_like(std[w][mask[w]], 1e3 ** 0.5))   # cap 1e3
    assert (std[w][~mask[w]] == 0).all()                                                    # pruned: no noise
    # the last layer (p.size(0) == num_classes in the reference code): cap 1e2, then x10, weight and bias
    assert torch.allclose(std["fc.weight"], torch.full_like(std["fc.weight"], 1e3 ** 0.5))
    assert torch.allclose(std["fc.bias"], torch.full_like(std["fc.bias"], 1e3 ** 0.5))
    assert torch.allclose(std["encoder.1.bias"], torch.full_like(std["encoder.1.bias"], 1e4 ** 0.5))  # 1-D: x10
    big = {n: torch.full_like(p, 1e6) for n, p in model.named_parameters()}
    assert FF.ff_noise_std(model, big)["encoder.1.weight"].max() < 1e-2                     # 1/(F+1e-8) uncapped


# ---- IU -----------------------------------------------------------------------------------------
def test_woodfisher_ihvp_is_the_sherman_morrison_inverse():
    g = torch.Generator().manual_seed(0)
    m, P, lam = 7, 30, 0.05
    G = torch.randn(m, P, generator=g, dtype=torch.float64).float()
    v = torch.randn(P, generator=g)
    # WoodFisher's recursion with materialised matrices: F_0^-1 = I/λ, rank-one Sherman-Morrison updates.
    Finv = torch.eye(P, dtype=torch.float64) / lam
    for gi in G.double():
        u = Finv @ gi
        Finv = Finv - torch.outer(u, u) / (m + gi @ u)
    expect = (Finv @ v.double()).float()
    dense = torch.linalg.solve(lam * torch.eye(P, dtype=torch.float64) + G.double().T @ G.double() / m, v.double())
    assert torch.allclose(expect, dense.float(), rtol=1e-4, atol=1e-5)

    calls = []

    def chunk(i):                      # blocks of 2 gradients: sizes 2, 2, 2, 1
        calls.append(i)
        return G[2 * i:2 * i + 2]

    held = IU.woodfisher_ihvp(chunk, 4, v, m, lam)
    assert torch.allclose(held, expect, rtol=1e-4, atol=1e-5)
    assert sorted(calls) == [0, 1, 2, 3]                                 # each block computed once
    for r in (1, 2, 3):                                                  # out of core: r blocks held
        info = {}
        streamed = IU.woodfisher_ihvp(chunk, 4, v, m, lam, max_held_chunks=r, info=info)
        assert torch.allclose(streamed, expect, rtol=1e-4, atol=1e-5), r
        assert info["chunk_passes"] == {1: 4 + 6 + 4, 2: 4 + 2 + 4, 3: 4 + 1 + 4}[r]
    info = {}
    IU.woodfisher_ihvp(chunk, 4, v, m, 0.1, relative=True, info=info)
    assert info["lambda"] == pytest.approx(0.1 * float((G ** 2).sum()) / m, rel=1e-5)


def test_ff_and_iu_alpha_is_a_hyperparameter(exp_class):
    import advunlearn.methods as M

    for m in ("ff", "iu"):
        spec = M.get(m)
        assert spec.space["alpha"][0] == "log"
        model, info = run_baseline(m, exp_class, **({"max_samples": 100} if m == "ff" else {"n_samples": 100}))
        assert info["hparams"]["alpha"] == spec.defaults["alpha"]


def test_iu_moves_away_from_forget_set(exp_class):
    theta0, _ = exp_class.original()
    s = exp_class.splits
    assert IU.influence_direction.__kwdefaults__["n_samples"] == 1000      # WoodFisher's ~1,000 gradients
    m1, i1 = run_baseline("iu", exp_class, alpha=0.01, n_samples=300)
    m2, i2 = run_baseline("iu", exp_class, alpha=0.03, n_samples=300)
    d1, d2 = _dist(m1, theta0), _dist(m2, theta0)
    assert 0 < d1 < d2 and d2 / d1 == pytest.approx(3.0, rel=1e-4)   # θ0 + α·H⁻¹v
    assert i1["hparams"]["n_samples"] == 300 and i1["hparams"]["closed_form"] is True   # an MLP: no m x P matrix
    # Sign convention: the step raises the loss on D_f much more than on D_r.
    df = _ce(m2, exp_class, s.forget) - _ce(theta0, exp_class, s.forget)
    dr = _ce(m2, exp_class, s.retain) - _ce(theta0, exp_class, s.retain)
    assert df > 0 and df > 10 * abs(dr)
    # The closed form, holding the per-sample gradients or streaming them (out-of-core Gram matrix)
    # give the same update.
    m3, i3 = run_baseline("iu", exp_class, alpha=0.03, n_samples=300, grad_memory_gb=1e-3, chunk_size=128)
    assert i3["hparams"]["hold_gradients"] is False and i3["hparams"]["chunk_passes"] > 3
    assert _dist(m3, m2) < 1e-3 * d2
    m4, i4 = run_baseline("iu", exp_class, alpha=0.03, n_samples=300, chunk_size=128)
    assert i4["hparams"]["closed_form"] is False and i4["hparams"]["hold_gradients"] is True
    assert _dist(m4, m2) < 1e-4 * d2 and _dist(m4, m3) < 1e-3 * d2


# ---- sparse models ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exp_sparse(results):
    from advunlearn.experiments.experiment import Experiment

    return Experiment(dataset="digits", scheme="class", sparsity=0.95, profile="cpu", progress=False,
                      results=results)


@pytest.mark.parametrize("method,opts", [("ft", {}), ("ga", {"lr": 0.05, "epochs": 10}),
                                         ("ff", {"alpha": 1e-6, "max_samples": 150}),
                                         ("iu", {"alpha": 0.1, "n_samples": 200})])
def test_sparse_masks_stay_exact(exp_sparse, method, opts):
    theta0, _ = exp_sparse.original()
    masks0 = masks_from_model(theta0)
    model, _ = run_baseline(method, exp_sparse, **opts)
    masks1 = masks_from_model(model)
    assert _dist(model, theta0) > 0
    for n, m in masks0.items():
        assert torch.equal(masks1[n], m), n
    assert sparsity_of(model) == pytest.approx(0.95, abs=1e-3)
    assert torch.equal(masks_from_model(theta0)[next(iter(masks0))], masks0[next(iter(masks0))])
