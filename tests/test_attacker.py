"""The SAMIA attacker: its features (tokens), its architecture and its pretraining."""

import pytest
import torch
from torch import nn

from advunlearn.dau.attacker import (Attacker, EncoderLayer, attack_features, evaluate_attacker, fast_dropout,
                                     pretrain_attacker)
from advunlearn.core.config import AttackerConfig, ConfigError
from advunlearn.core.data import Dataset
from advunlearn.core.models import Classifier, build_model

SMALL = dict(d_model=32, heads=4, layers=1, ff=64)


pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp(digits, seed=0):
    torch.manual_seed(seed)
    return build_model("mlp", 10, digits.in_channels, digits.image_size)


def test_tokens_hold_softmax_sensitivity_and_onehot_per_class(digits):
    model = _mlp(digits)
    idx = torch.arange(50)
    tok = attack_features(model, digits, idx, generator=torch.Generator().manual_seed(0))
    assert tok.shape == (50, 10, 3) and not tok.requires_grad
    with torch.no_grad():
        p = torch.softmax(model(digits.x[idx]), 1)
    torch.testing.assert_close(tok[:, :, 0], p, atol=1e-6, rtol=0)              # token k, slot 0: p_k
    assert (tok[:, :, 1] >= 0).all() and tok[:, :, 1].sum() > 0                # slot 1: s_k >= 0
    torch.testing.assert_close(tok[:, :, 2], nn.functional.one_hot(digits.y[idx], 10).float())  # slot 2: y_k


class _Const(nn.Module):
    def forward(self, x):
        return torch.zeros(x.shape[0], 4, device=x.device)


def test_sensitivity_is_exactly_zero_for_a_model_that_ignores_its_input(digits):
    model = Classifier(_Const(), 4, 10, "const")
    nn.init.normal_(model.fc.bias)
    tok = attack_features(model, digits, torch.arange(20))
    assert float(tok[:, :, 1].abs().max()) == 0.0
    assert torch.allclose(tok[:, :, 0].sum(1), torch.ones(20))


def test_sensitivity_is_the_mean_absolute_directional_derivative(digits):
    """s_k = mean_i |p_k(x + eps u_i) - p_k(x)| / eps  ~=  mean_i |(J u_i)_k| for small eps."""
    model = _mlp(digits)
    idx = torch.arange(8)
    x = digits.x[idx]
    seed, n_noise, eps = 3, 10, 1e-3
    s = attack_features(model, digits, idx, noise=eps, n_noise=n_noise,
                        generator=torch.Generator().manual_seed(seed))[:, :, 1]
    u = torch.randn((n_noise, *x.shape), generator=torch.Generator().manual_seed(seed))
    f = lambda inp: torch.softmax(model(inp), 1)  # noqa: E731
    jus = torch.stack([torch.func.jvp(f, (x,), (u[i],))[1] for i in range(n_noise)])
    torch.testing.assert_close(s, jus.abs().mean(0), rtol=0.05, atol=2e-4)
    # the same draws at a 10x larger eps give nearly the same derivative estimate
    s10 = attack_features(model, digits, idx, noise=1e-2, n_noise=n_noise,
                          generator=torch.Generator().manual_seed(seed))[:, :, 1]
    torch.testing.assert_close(s10, s, rtol=0.2, atol=2e-3)


def test_clean_and_noisy_copies_run_in_one_batched_forward(digits):
    model = _mlp(digits)
    sizes = []
    model.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[0]))
    attack_features(model, digits, torch.arange(30), n_noise=10)
    assert sizes == [11 * 30]


def test_grad_flows_through_p_only(digits):
    model = _mlp(digits)
    tok = attack_features(model, digits, torch.arange(16), grad=True)
    params = list(model.parameters())
    gp = torch.autograd.grad(tok[:, :, 0].pow(2).sum(), params, retain_graph=True, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in gp)
    gs = torch.autograd.grad(tok[:, :, 1].sum(), params, allow_unused=True)
    assert all(g is None or g.abs().sum() == 0 for g in gs)
    assert not attack_features(model, digits, torch.arange(4)).requires_grad


def test_features_use_eval_mode_and_leave_batchnorm_statistics_alone(digits):
    torch.manual_seed(0)
    model = build_model("cnn", 10, 1, 8)
    model.train()
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    bn.running_mean.normal_()
    before = bn.running_mean.clone()
    t1 = attack_features(model, digits, torch.arange(12), grad=True, generator=torch.Generator().manual_seed(0))
    assert model.training and all(m.training for m in model.modules())
    torch.testing.assert_close(bn.running_mean, before, rtol=0, atol=0)
    model.eval()
    t2 = attack_features(model, digits, torch.arange(12), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(t1.detach(), t2)


def test_attacker_architecture_and_output_shape():
    att = Attacker(10)
    enc = att.encoder.layers
    assert len(enc) == 3 and all(isinstance(layer, nn.TransformerEncoderLayer) for layer in enc)
    layer = enc[0]
    assert layer.self_attn.num_heads == 4 and layer.self_attn.embed_dim == 64
    assert layer.linear1.out_features == 128 and not layer.norm_first and layer.dropout.p == 0.2
    assert isinstance(att.norm, nn.BatchNorm1d) and att.norm.num_features == 30
    assert att.embed[0].in_features == 3 and att.head[0].in_features == 640 and att.head[-1].out_features == 1
    assert not any("pos" in n or "cls" in n for n, _ in att.named_parameters())
    att.eval()
    tok = torch.rand(5, 10, 3)
    out = att(tok)
    assert out.shape == (5,)
    assert ((att.prob(tok) > 0) & (att.prob(tok) < 1)).all()
    with pytest.raises(ConfigError, match="num_classes=10"):
        att(torch.rand(5, 9, 3))


def test_encoder_layer_computes_what_torch_transformer_layer_computes():
    torch.manual_seed(0)
    ours = EncoderLayer(64, 4, 128, 0.2, activation="gelu", batch_first=True)
    ref = nn.TransformerEncoderLayer(64, 4, 128, 0.2, activation="gelu", batch_first=True)
    ref.load_state_dict(ours.state_dict())
    ours.eval(), ref.eval()
    x = torch.randn(7, 10, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=2e-5, rtol=1e-4)


def test_fast_dropout_keeps_the_mean_and_drops_about_p():
    x = torch.ones(200_000)
    y = fast_dropout(x, 0.2, True)
    assert abs(float((y == 0).float().mean()) - 0.2) < 0.01
    assert abs(float(y.mean()) - 1.0) < 0.01
    assert fast_dropout(x, 0.2, False) is x


class _Leaky(nn.Module):
    """Confident on the true class when the membership marker x[...,0] is +1, the opposite when -1."""

    def forward(self, x):
        f = x.flatten(1)
        return 4.0 * f[:, :1] * f[:, 1:]


def _leaky_data(n=400, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    x = torch.zeros(n, 1, 1, 1 + k)
    x[:, 0, 0, 0] = torch.where(torch.arange(n) < n // 2, 1.0, -1.0)  # first half: members
    x[torch.arange(n), 0, 0, 1 + y] = 1.0
    x[:, 0, 0, 1:] += 0.3 * torch.randn(n, k, generator=g)
    return Dataset("synthetic", x, y, n, k), Classifier(_Leaky(), k, k, "leaky")


def test_pretraining_learns_a_clear_membership_signal_and_is_deterministic():
    data, model = _leaky_data()
    with torch.no_grad():
        model.fc.weight.copy_(torch.eye(3))
        model.fc.bias.zero_()
    cfg = AttackerConfig(iterations=150, optimizer="adam", batch_size=64, **SMALL)
    members, non = torch.arange(200), torch.arange(200, 400)
    att, rep = pretrain_attacker(model, data, members, non, cfg, seed=0, progress=False)
    assert rep["acc"] > 95 and rep["auc"] > 0.99
    assert rep["n_heldout_pairs"] == 40 and rep["n_members"] == 160 and rep["n_nonmembers"] == 160
    assert rep["time_s"] > 0 and rep["iterations"] == 150
    att2, rep2 = pretrain_attacker(model, data, members, non, cfg, seed=0, progress=False)
    assert rep2["acc"] == rep["acc"] and rep2["auc"] == rep["auc"]
    for (n, a), b in zip(att.state_dict().items(), att2.state_dict().values()):
        assert torch.equal(a, b), n
    ev = evaluate_attacker(att, model, data, members[:30], non)
    assert ev["n_pairs"] == 30 and ev["acc"] > 95
    _, rep3 = pretrain_attacker(model, data, members, non, cfg.updated(iterations=1), seed=0, progress=False,
                                max_samples=100)
    assert rep3["n_members"] == 80 and rep3["n_nonmembers"] == 80 and rep3["n_heldout_pairs"] == 20


def test_untrained_attacker_on_unrelated_sets_is_near_chance(digits):
    model = _mlp(digits)
    att = Attacker(10, AttackerConfig(**SMALL))
    ev = evaluate_attacker(att, model, digits, torch.arange(0, 300), torch.arange(300, 600))
    assert ev["n_pairs"] == 300 and 0.35 < ev["auc"] < 0.65


def test_bad_inputs_name_the_field(digits):
    model = _mlp(digits)
    with pytest.raises(ConfigError, match="members_idx"):
        pretrain_attacker(model, digits, torch.arange(1), torch.arange(5, 20), AttackerConfig(iterations=1))
    with pytest.raises(ConfigError, match="nonmembers_idx"):
        pretrain_attacker(model, digits, torch.arange(20), torch.arange(0), AttackerConfig(iterations=1))
    with pytest.raises(ConfigError, match="max_samples"):
        pretrain_attacker(model, digits, torch.arange(20), torch.arange(20, 40), max_samples=1)
    with pytest.raises(ConfigError, match="heldout_frac"):
        pretrain_attacker(model, digits, torch.arange(20), torch.arange(20, 40), heldout_frac=1.0)
    with pytest.raises(ConfigError, match="noise"):
        attack_features(model, digits, torch.arange(3), noise=0.0)
    with pytest.raises(ConfigError, match="optimizer"):
        AttackerConfig(optimizer="rmsprop")


def test_roc_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    from advunlearn.dau.attacker import roc_auc

    g = torch.Generator().manual_seed(0)
    pos = torch.randint(0, 6, (57,), generator=g).float().numpy()
    neg = torch.randint(0, 5, (40,), generator=g).float().numpy()
    want = roc_auc_score([1] * 57 + [0] * 40, list(pos) + list(neg))
    assert roc_auc(pos, neg) == pytest.approx(want, abs=1e-12)
    assert roc_auc([3.0], [1.0]) == 1.0 and roc_auc([1.0], [3.0]) == 0.0 and roc_auc([2.0], [2.0]) == 0.5
