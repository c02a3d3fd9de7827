"""The paper's objectives: the attacker's log-likelihood L_A (eq. 1, section 3.3) and the
Barlow-Twins regulariser V_ss (eq. 2, section 3.4).

Sign conventions, in one place (``A(.) = sigmoid(logit)`` is the attacker's "member" probability):

* The **attacker** maximises ``L_A = E[log A(D(x_f))] + E[log(1 - A(D(x_v)))]``
  (``attacker_loss(..., kind="minimax")``).  In code it takes a gradient *descent* step on
  ``-L_A`` (= the binary cross-entropy with D_f labelled 1 and D_v labelled 0), which is the
  gradient *ascent* step of Algorithm 1, line 7.
* The **defender** minimises ``CE(D_r) + alpha * attacker_loss(..., kind=cfg.loss) + beta * V_ss``
  (Algorithm 1, line 8).  With ``kind="minimax"`` its adversarial term is L_A itself (eq. 1).
  With ``kind="nonsaturating"`` (the GAN trick of section 3.3) the defender instead *maximises*
  ``E[log(1 - A(D(x_f)))] + E[log A(D(x_v))]`` (labels swapped), so the returned value is the
  negative of that, again a quantity the defender *minimises*.  Both terms push A(f) down and A(v)
  up; the non-saturating one has strong gradients exactly when the attacker is confidently right.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.config import ConfigError, check_choice

LOSS_KINDS = ("minimax", "nonsaturating")
CORR_EPS = 1e-12  # added under the square root of each feature's sum of squares (zero-variance features)


def attacker_loss(logit_f: torch.Tensor, logit_v: torch.Tensor, kind: str = "minimax") -> torch.Tensor:
    """``minimax``: L_A of eq. 1 (attacker maximises, defender minimises);
    ``nonsaturating``: the defender's swapped-label term, to be minimised by the defender.

    Computed stably from logits with ``logsigmoid`` (``log(1 - sigmoid(l)) = logsigmoid(-l)``).
    Expectations are means over each batch (the D_f and D_v batches may differ in size here).
    """
    check_choice("kind", kind, LOSS_KINDS)
    logit_f = logit_f.float()
    logit_v = logit_v.float()
    if kind == "minimax":
        # log A(f) + log(1 - A(v))
        return F.logsigmoid(logit_f).mean() + F.logsigmoid(-logit_v).mean()
    # -(log(1 - A(f)) + log A(v)): the defender minimises this (maximises the swapped likelihood).
    return -(F.logsigmoid(-logit_f).mean() + F.logsigmoid(logit_v).mean())


def _check_pair(z_f: torch.Tensor, z_v: torch.Tensor) -> None:
    if z_f.dim() != 2 or z_v.dim() != 2:
        raise ConfigError(f"z_f and z_v must be 2-D (batch, features); got shapes {tuple(z_f.shape)} "
                          f"and {tuple(z_v.shape)}")
    if z_f.shape != z_v.shape:
        raise ConfigError(f"z_f and z_v must have the same shape (same batch size B and feature size); "
                          f"got z_f {tuple(z_f.shape)} and z_v {tuple(z_v.shape)}")
    if z_f.shape[0] < 2:
        raise ConfigError(f"batch size={z_f.shape[0]} is too small for a cross-correlation; allowed: >= 2")


def cross_correlation(z_f: torch.Tensor, z_v: torch.Tensor) -> torch.Tensor:
    """Section 3.4's C (D x D): C_ij = sum_b zf_bi zv_bj / (||zf_.i|| ||zv_.j||) on batch-mean-centred features.

    ``CORR_EPS`` is added inside each norm's square root so a zero-variance feature (a dead ReLU unit)
    gives C = 0 for its row/column instead of 0/0; it changes other entries by < 1e-10 relative.
    Deviation note: Zbontar et al.'s code normalises with a BatchNorm (biased std) and divides by B;
    the paper's formula (used here) is the cosine form, whose diagonal is exactly 1 for z_f == z_v.
    """
    _check_pair(z_f, z_v)
    z_f = z_f.float()
    z_v = z_v.float()
    z_f = z_f - z_f.mean(0, keepdim=True)
    z_v = z_v - z_v.mean(0, keepdim=True)
    n_f = torch.sqrt(z_f.pow(2).sum(0) + CORR_EPS)
    n_v = torch.sqrt(z_v.pow(2).sum(0) + CORR_EPS)
    return (z_f / n_f).T @ (z_v / n_v)


def barlow_twins_loss(z_f: torch.Tensor, z_v: torch.Tensor, lambd: float = 5e-3) -> torch.Tensor:
    """V_ss of eq. 2: sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2 (a scalar the defender minimises)."""
    c = cross_correlation(z_f, z_v)
    diag = torch.diagonal(c)
    on = (1.0 - diag).pow(2).sum()
    off = c.pow(2).sum() - diag.pow(2).sum()
    return on + lambd * off


__all__ = ["attacker_loss", "cross_correlation", "barlow_twins_loss", "LOSS_KINDS", "CORR_EPS"]
