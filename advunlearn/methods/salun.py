"""SalUn: saliency unlearning (Fan et al., ICLR 2024; code: OPTML-Group/Unlearn-Saliency).

m = 1[|∇θ ℓ_CE(θ_o; D_f)| among the top ``ratio`` of all weights],  θ_u = m ⊙ (θ_o + Δθ) + (1 − m) ⊙ θ_o,
with Δθ from RL (random wrong labels on D_f, true labels on D_r) updating only the salient weights.

As in their ``generate_mask.py``: the saliency is the absolute gradient of the forgetting loss (GA's
loss, the cross-entropy on D_f; its sign does not matter) at θ_o in eval mode, over *every* parameter
(weights, biases, BatchNorm) ranked jointly, and exactly ⌊ratio · N⌋ of the N entries are salient
(ties broken by position).  Departures: we take the gradient of the mean loss over all of D_f
(theirs sums per-batch mean gradients, which differs only by a ragged last batch's weight); on a
sparse model pruned weights have no gradient (as with torch's pruning reparametrisation) and a weight
must be salient *and* unpruned.  Their RL loop (``sequential``: a D_f pass, then a D_r pass, per
epoch) runs with the non-salient weights restored bit for bit after every step (their latest code
masks the gradients and resets the momentum; restoring is exact whatever the optimiser does).
Defaults: ratio 0.5 (their example), lr 0.013 (their CIFAR-10 example), 5 epochs (theirs: 10).
"""

from __future__ import annotations

import torch
from torch import nn

from . import _common as C
from .rl import relabel_unlearn

LABEL = "SalUn"
DEFAULTS = {"ratio": 0.5, "lr": 0.013, "epochs": 5, "batch_size": 128, "momentum": 0.9, "weight_decay": 5e-4,
            "augment": None, "loop": "sequential"}
SPACE = {"ratio": ("float", 0.05, 0.95), "lr": ("log", 1e-3, 1e-1), "epochs": ("int", 1, 30)}
PUBLISHED = {"default": {"ratio": 0.5, "lr": 0.013, "epochs": 10}}
SOURCE = "Fan et al. 2024, Unlearn-Saliency's commands: mask ratio 0.5, lr 0.013, 10 epochs"
HARD_BOUNDS = {"epochs": ("lo", "at least one epoch")}
CHECKS = {**C.OPTIM_CHECKS, "ratio": C.fraction, "loop": C.choice("sequential", "mixed")}
VERSION = 1


def saliency_mask(model: nn.Module, data, forget: torch.Tensor, ratio: float, masks: dict | None = None,
                  batch_size: int = 1024) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(mask, saliency)``: saliency = |∇θ mean CE(D_f)| at the model's weights (eval mode), pruned
    entries 0; mask = the ⌊ratio · N⌋ largest saliencies over all N parameter entries, ∧ unpruned."""
    model.eval()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    grads = [torch.zeros_like(p, dtype=torch.float32) for _, p in named]
    forget = forget.to(data.device)
    for i in range(0, len(forget), batch_size):
        xb, yb = data.batch(forget[i:i + batch_size])
        loss = nn.functional.cross_entropy(model(xb).float(), yb, reduction="sum")
        for g, gi in zip(grads, torch.autograd.grad(loss, [p for _, p in named])):
            g += gi.float()
    sal = {n: (g / max(1, len(forget))).abs() for (n, _), g in zip(named, grads)}
    sal = C.masked(sal, masks)
    allv = torch.cat([v.reshape(-1) for v in sal.values()])
    k = int(len(allv) * ratio)
    keep = torch.zeros(len(allv), dtype=torch.bool, device=allv.device)
    keep[torch.argsort(allv, descending=True, stable=True)[:k]] = True
    out, i = {}, 0
    for n, v in sal.items():
        m = keep[i:i + v.numel()].view_as(v)
        if masks and n in masks:
            m = m & masks[n].to(m.device).bool()
        out[n] = m
        i += v.numel()
    return out, sal


def run(exp, **hparams):
    hp = {**DEFAULTS, **hparams}
    model, masks = C.start(exp)
    theta0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    with C.Timer(exp.dev) as t:
        mask, _ = saliency_mask(model, exp.data, exp.splits.forget, hp["ratio"], masks)
    secs = relabel_unlearn(exp, model, masks, hp, keep=(mask, theta0), desc="salun")
    n_sal = int(sum(int(m.sum()) for m in mask.values()))
    return model, {"run_time_s": t.seconds + secs,
                   "hparams": {**hp, "augment": C.augment_default(exp, hp["augment"])},
                   "salient": n_sal, "salient_share": n_sal / sum(m.numel() for m in mask.values())}
