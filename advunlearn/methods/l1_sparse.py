"""ℓ1-sparse unlearning (Jia et al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023).

θ_u = argmin_θ ℓ_CE(θ; D_r) + γ_e ‖θ‖₁ by SGD from θ_o,  γ_e = α · (1 − e / E) in epoch e = 0 … E−1:
fine-tuning on D_r with an ℓ1 penalty, whose weight decays linearly over the epochs, pushes the model
towards a sparse one, which forgets more like Retrain.

As their ``FT_l1`` code (Unlearn-Sparse's ``FT_prune`` entry): the penalty is the ℓ1 norm of *every*
parameter (weights, biases, BatchNorm), added unnormalised to the batch-mean cross-entropy; γ is
constant within an epoch and follows α(1 − e/E) (with their ``no_l1_epochs`` = 0), so the last epoch
still has γ = α/E, not 0.  Defaults: α 5e-4 (their paper), lr 0.01 (theirs), 5 epochs (theirs: 10).
"""

from __future__ import annotations

import torch
from torch import nn

from . import _common as C

LABEL = "ℓ1-sparse"
DEFAULTS = {"alpha": 2e-3, "lr": 0.01, "epochs": 5, "batch_size": 128, "momentum": 0.9, "weight_decay": 5e-4,
            "augment": None}
# widened after protocol 2 chose lr and epochs at their old tops (0.1, 30) on random dense
SPACE = {"alpha": ("log", 1e-8, 1e-1), "lr": ("log", 1e-3, 1.0), "epochs": ("int", 1, 60)}
PUBLISHED = {"default": {"alpha": 1e-4, "lr": 0.01, "epochs": 10}}
SOURCE = "Jia et al. 2023, Unlearn-Sparse's FT_prune commands: alpha 1e-4, lr 0.01, 10 epochs"
HARD_BOUNDS = {"epochs": ("lo", "at least one epoch")}
CHECKS = {**C.OPTIM_CHECKS, "alpha": C.nonneg}
VERSION = 1


def penalty_weight(alpha: float, epoch: int, epochs: int) -> float:
    """γ_e = α · (1 − e / E): Jia et al.'s linear decay (constant within an epoch)."""
    return alpha * (1.0 - epoch / epochs)


def l1_norm(model: nn.Module) -> torch.Tensor:
    return sum(p.abs().sum() for p in model.parameters() if p.requires_grad)


def run(exp, **hparams):
    hp = {**DEFAULTS, **hparams}
    data, s = exp.data, exp.splits
    dev = data.device
    model, masks = C.start(exp)
    aug = C.augment_default(exp, hp["augment"])
    gen = C.generator(exp, 404)
    retain = s.retain.to(dev)
    opt = C.sgd(model, hp["lr"], hp["momentum"], hp["weight_decay"])
    bar = C.progress(hp["epochs"] * C.steps_per_epoch(len(retain), hp["batch_size"]), "l1-sparse", exp.progress)
    gammas = []
    with C.Timer(exp.dev) as t:
        C.train_mode(model, dev)
        for epoch in range(hp["epochs"]):
            gamma = penalty_weight(hp["alpha"], epoch, hp["epochs"])
            gammas.append(gamma)
            for b in C.epoch_batches(retain, hp["batch_size"], gen):
                xb, yb = data.batch(b, augment=aug, generator=gen)
                loss = nn.functional.cross_entropy(model(xb).float(), yb) + gamma * l1_norm(model)
                C.descend(model, opt, loss, masks, bar)
        model.eval()
    if bar is not None:
        bar.close()
    return model, {"run_time_s": t.seconds, "hparams": {**hp, "augment": aug}, "penalty_weights": gammas}
