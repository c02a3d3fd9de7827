"""SSD: selective synaptic dampening (Foster et al., AAAI 2024; code: if-loops/selective-synaptic-dampening).

[I_D]_i, [I_f]_i: diagonal Fisher importances on D and D_f;  θ_i ← θ_i · min(λ [I_D]_i / [I_f]_i, 1)
for every parameter with [I_f]_i > α [I_D]_i, θ_i unchanged otherwise.  No training.

As their code (``calc_importance``, ``modify_weight``, ``ssd_tuning``): the importance is the mean
over mini-batches of the squared gradient of the batch-mean cross-entropy, in eval mode, batches of
``batch_size`` = 128 in order (D = D_r then D_f, as their concatenation; no shuffling), over every
parameter (weights, biases, BatchNorm); defaults α ("selection weighting") = 10, λ ("dampening
constant") = 1, exponent 1.  ``batch_size=1`` gives the per-sample empirical Fisher instead.
"""

from __future__ import annotations

import torch
from torch import nn

from . import _common as C

LABEL = "SSD"
DEFAULTS = {"alpha": 10.0, "lambd": 1.0, "batch_size": 128}
SPACE = {"alpha": ("log", 0.1, 1000.0), "lambd": ("log", 0.01, 100.0)}
PUBLISHED = {"default": {"alpha": 10.0, "lambd": 1.0}}
SOURCE = "Foster et al. 2024, selective-synaptic-dampening's defaults: selection weighting 10, dampening 1"
CHECKS = {"alpha": C.nonneg, "lambd": C.nonneg, "batch_size": C.integer(1)}
VERSION = 1


@torch.no_grad()
def dampen(model: nn.Module, imp_d: dict, imp_f: dict, alpha: float, lambd: float) -> dict[str, int]:
    """θ ← θ · min(λ I_D / I_f, 1) where I_f > α I_D (in place); returns how many entries were selected."""
    selected = {}
    for n, p in model.named_parameters():
        if n not in imp_d:
            continue
        i_d, i_f = imp_d[n], imp_f[n]
        sel = i_f > alpha * i_d                              # so i_f > 0 wherever selected
        safe_f = torch.where(sel, i_f, torch.ones_like(i_f))
        factor = torch.where(sel, (lambd * i_d / safe_f).clamp(max=1.0), torch.ones_like(i_f))
        p.mul_(factor.to(p.dtype))
        selected[n] = int(sel.sum())
    return selected


def run(exp, **hparams):
    hp = {**DEFAULTS, **hparams}
    s = exp.splits
    model, masks = C.start(exp)
    with C.Timer(exp.dev) as t:
        full = torch.cat([s.retain, s.forget])
        imp_d = C.batch_grad_importance(model, exp.data, full, hp["batch_size"], masks=masks,
                                        progress=exp.progress, desc="ssd importance D")
        imp_f = C.batch_grad_importance(model, exp.data, s.forget, hp["batch_size"], masks=masks,
                                        progress=exp.progress, desc="ssd importance D_f")
        selected = dampen(model, imp_d, imp_f, hp["alpha"], hp["lambd"])
        C.after_step(model, masks)
    model.eval()
    n_sel = sum(selected.values())
    return model, {"run_time_s": t.seconds, "hparams": dict(hp), "selected": n_sel,
                   "selected_share": n_sel / sum(p.numel() for p in model.parameters())}
