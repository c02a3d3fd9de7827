"""The paper's objectives: L_A (eq. 1), the cross-correlation C and V_ss (eq. 2, section 3.4)."""

import math

import pytest
import torch

from advunlearn.core.config import ConfigError
from advunlearn.dau.losses import attacker_loss, barlow_twins_loss, cross_correlation


def _direct_vss(zf, zv, lambd):
    """Eq. 2 written out with explicit loops over features and batch (float64)."""
    zf = zf.double() - zf.double().mean(0)
    zv = zv.double() - zv.double().mean(0)
    b, d = zf.shape
    c = [[0.0] * d for _ in range(d)]
    for i in range(d):
        for j in range(d):
            num = sum(zf[k, i] * zv[k, j] for k in range(b))
            den = math.sqrt(sum(zf[k, i] ** 2 for k in range(b))) * math.sqrt(sum(zv[k, j] ** 2 for k in range(b)))
            c[i][j] = float(num / den)
    on = sum((1 - c[i][i]) ** 2 for i in range(d))
    off = sum(c[i][j] ** 2 for i in range(d) for j in range(d) if i != j)
    return on + lambd * off, c


def test_cross_correlation_of_a_batch_with_itself_has_unit_diagonal():
    z = torch.randn(64, 16, generator=torch.Generator().manual_seed(0)) * 3 + 5
    c = cross_correlation(z, z)
    assert c.shape == (16, 16)
    torch.testing.assert_close(torch.diagonal(c), torch.ones(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(c, c.T, atol=1e-6, rtol=0)
    assert float(c.abs().max()) <= 1 + 1e-5  # Cauchy-Schwarz
    assert barlow_twins_loss(z, z, lambd=0.0) < 1e-8


@pytest.mark.parametrize("lambd", [0.0, 5e-3, 0.7])
def test_barlow_twins_loss_matches_a_double_loop_of_eq_2(lambd):
    g = torch.Generator().manual_seed(1)
    zf, zv = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g) * 2 - 1
    want, c_want = _direct_vss(zf, zv, lambd)
    torch.testing.assert_close(cross_correlation(zf, zv).double(), torch.tensor(c_want, dtype=torch.float64),
                               atol=1e-5, rtol=0)
    assert float(barlow_twins_loss(zf, zv, lambd)) == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_cross_correlation_ignores_per_feature_shift_and_positive_scale():
    g = torch.Generator().manual_seed(2)
    zf, zv = torch.randn(32, 6, generator=g), torch.randn(32, 6, generator=g)
    scale, shift = torch.rand(6, generator=g) * 10 + 0.1, torch.randn(6, generator=g) * 100
    torch.testing.assert_close(cross_correlation(zf * scale + shift, zv), cross_correlation(zf, zv), atol=1e-4, rtol=0)


def test_zero_variance_features_give_zero_correlation_and_finite_gradients():
    zf = torch.randn(16, 4)
    zf[:, 2] = 3.0  # a dead unit: constant over the batch
    zf.requires_grad_(True)
    zv = torch.randn(16, 4)
    c = cross_correlation(zf, zv).detach()
    assert torch.isfinite(c).all() and float(c[2].abs().max()) < 1e-4
    barlow_twins_loss(zf, zv).backward()
    assert torch.isfinite(zf.grad).all()


@pytest.mark.parametrize("shapes", [((8, 4), (9, 4)), ((8, 4), (8, 5)), ((1, 4), (1, 4)), ((8,), (8,))])
def test_mismatched_or_tiny_batches_raise_config_error(shapes):
    a, b = torch.randn(*shapes[0]), torch.randn(*shapes[1])
    with pytest.raises(ConfigError, match="z_f|batch size"):
        barlow_twins_loss(a, b)


def test_attacker_loss_is_eq_1_and_stable_for_large_logits():
    lf, lv = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([0.3, -4.0])
    s = torch.sigmoid
    want = float(torch.log(s(lf)).mean() + torch.log(1 - s(lv)).mean())
    assert float(attacker_loss(lf, lv, "minimax")) == pytest.approx(want, rel=1e-6)
    want_ns = -float(torch.log(1 - s(lf)).mean() + torch.log(s(lv)).mean())
    assert float(attacker_loss(lf, lv, "nonsaturating")) == pytest.approx(want_ns, rel=1e-6)
    # A perfect attacker: L_A -> 0 from below; a fooled one: large negative but finite.
    assert -1e-6 < float(attacker_loss(torch.tensor([200.0]), torch.tensor([-200.0]))) <= 0
    bad = float(attacker_loss(torch.tensor([-200.0]), torch.tensor([200.0])))
    assert bad == pytest.approx(-400.0, rel=1e-4)
    # The non-saturating defender term is large exactly when the attacker is confidently right.
    assert float(attacker_loss(torch.tensor([200.0]), torch.tensor([-200.0]), "nonsaturating")) == pytest.approx(400.0, rel=1e-4)


def test_attacker_loss_gradients_point_the_documented_ways():
    lf = torch.zeros(4, requires_grad=True)
    lv = torch.zeros(4, requires_grad=True)
    attacker_loss(lf, lv, "minimax").backward()
    # ascent on L_A raises member logits of D_f and lowers those of D_v
    assert (lf.grad > 0).all() and (lv.grad < 0).all()
    lf.grad = lv.grad = None
    attacker_loss(lf, lv, "nonsaturating").backward()
    # descent on the defender's term also lowers A(f) and raises A(v)
    assert (lf.grad > 0).all() and (lv.grad < 0).all()


def test_unknown_loss_kind_is_refused():
    with pytest.raises(ConfigError, match="kind"):
        attacker_loss(torch.zeros(2), torch.zeros(2), "wasserstein")
