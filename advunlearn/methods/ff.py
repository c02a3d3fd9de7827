"""FF: Fisher forgetting (Golatkar et al., CVPR 2020; as in Jia et al., NeurIPS 2023).

θ_u = θ_o + √(α · min(1/(F + 1e-8), cap)) ⊙ ε,  ε ~ N(0, I),  F = E_{x∈D_r} Σ_c p_c(x) (∂ log p_c(x)/∂θ)²:
noise where the retain set does not pin the weights down (small Fisher), little where it does.

Details as in Jia et al.'s code (``get_mean_var``): the cap is 1e3 (1e2 for the last layer ``fc``,
whose variance, like every other 1-D parameter's, is then multiplied by ``bias_scale`` = 10); for
weights with more than one dimension the variance is averaged over dim 1 (``row_mean``); in
class-wise forgetting the forgotten class's last-layer row is reset to 0 + N(0, 1e-3) noise.  Not
repeated from their code: that reset in random forgetting.  α is an ordinary hyperparameter (a
log-scale SPACE for the tuner; users of their code found 1e-9 … 1e-5).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..core.config import check_range
from ..core.prune import apply_masks
from . import _common as C

LABEL = "FF"
DEFAULTS = {
    "alpha": 1e-7,          # noise scale; the old per-run search's choice on the Fashion-MNIST MLP testbed
    "max_samples": None,    # Fisher on at most this many retain samples (a seeded subset); None: all of D_r
    "noise_seed": None,     # None: the experiment's seed
    "row_mean": True,
    "bias_scale": 10.0,
    "chunk_size": None,     # vmap chunk of (sample, class) pairs for non-Linear layers; None: by memory
}
SPACE = {"alpha": ("log", 1e-14, 1e-2)}
PUBLISHED = {"default": {"alpha": 3e-8}}
SOURCE = "Jia et al. 2023, Unlearn-Sparse's run script for fisher_new: alpha 3e-8"
CHECKS = {"alpha": C.nonneg, "max_samples": C.optional(C.integer(1)), "noise_seed": C.optional(C.integer(0)),
          "row_mean": C.boolean, "bias_scale": C.nonneg, "chunk_size": C.optional(C.integer(1))}
VERSION = 3   # 3: α a hyperparameter (no search against Retrain); 2: fc variance x10, class-wise row reset

# Class-wise FF: the forgotten class's last-layer row is reset to mean 0 with this variance, whatever
# α (Jia et al.'s / Golatkar's get_mean_var: var 1e-4, then the last layer's x10).
FF_FORGET_ROW_VAR = 1e-3


def ff_noise_std(model: nn.Module, fisher: dict[str, torch.Tensor], masks: dict | None = None, *,
                 row_mean: bool = True, bias_scale: float = 10.0) -> dict[str, torch.Tensor]:
    """Per-parameter noise std for α = 1: √(min(1 / (F + 1e-8), cap)), cap 1e3 (1e2 for ``fc``).

    The cap applies to 1/(F + 1e-8) before scaling by α (so std(α) = √α · this); for weights with more
    than one dimension the variance is averaged over dim 1 (``row_mean``; over unpruned entries only:
    pruned ones get no noise); the last layer (``fc.weight`` and ``fc.bias``) and every other 1-D
    parameter (BatchNorm) get ``bias_scale`` times the variance.
    """
    out = {}
    for name, p in model.named_parameters():
        if name not in fisher:
            continue
        inv = 1.0 / (fisher[name].float() + 1e-8)
        cap = 1e2 if name.startswith("fc.") else 1e3
        var = inv.clamp(max=cap)
        m = masks.get(name) if masks else None
        if row_mean and p.ndim > 1:
            if m is not None:
                mf = m.to(var.dtype)
                var = (var * mf).sum(1, keepdim=True) / mf.sum(1, keepdim=True).clamp_min(1)
            else:
                var = var.mean(1, keepdim=True)
            var = var.expand_as(p).clone()
        if name.startswith("fc.") or p.ndim == 1:
            var = var * bias_scale
        std = var.sqrt()
        if m is not None:
            std = std * m.to(std.dtype)
        out[name] = std
    return out


@torch.no_grad()
def ff_apply(model: nn.Module, theta0: dict[str, torch.Tensor], std: dict[str, torch.Tensor], alpha: float,
             noise_seed: int, masks: dict | None = None, forget_class: int | None = None) -> nn.Module:
    """θ ← θ0 + √α · std · ε with ε ~ N(0, 1) from a generator seeded by ``noise_seed``.

    The same seed gives the same ε for every α, so the perturbation grows monotonically with α.
    ``forget_class`` (class-wise forgetting): row ``forget_class`` of ``fc.weight`` and ``fc.bias``
    becomes 0 + √FF_FORGET_ROW_VAR · ε instead, as in the reference code.
    """
    check_range("alpha", alpha, 0)
    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(int(noise_seed))
    for name, p in model.named_parameters():
        if name not in std:
            continue
        eps = torch.randn(p.shape, generator=gen, device=dev, dtype=torch.float32)
        new = theta0[name] + math.sqrt(alpha) * std[name] * eps
        if forget_class is not None and name in ("fc.weight", "fc.bias"):
            new[forget_class] = math.sqrt(FF_FORGET_ROW_VAR) * eps[forget_class]
        p.copy_(new)
    if masks:
        apply_masks(model, masks)
    return model


def run(exp, **hparams):
    hp = {**DEFAULTS, **hparams}
    model, masks = C.start(exp)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    with C.Timer(exp.dev) as t:
        idx = C.subsample(exp.splits.retain, hp["max_samples"], exp.seed + 3)
        F = C.fisher_diagonal(model, exp.data, idx, weights="model", masks=masks, chunk_size=hp["chunk_size"],
                              progress=exp.progress, desc="ff fisher")
        std = ff_noise_std(model, F, masks, row_mean=hp["row_mean"], bias_scale=hp["bias_scale"])
        fc = exp.splits.forget_class if exp.scheme == "class" else None
        seed = exp.seed if hp["noise_seed"] is None else hp["noise_seed"]
        ff_apply(model, base, std, hp["alpha"], seed, masks, forget_class=fc)
    model.eval()
    return model, {"run_time_s": t.seconds, "hparams": {**hp, "fisher_samples": len(idx)}}
