"""RL: random labels (Golatkar et al. 2020; Hayase et al. 2020; as in Fan et al.'s Unlearn-Saliency code).

min_θ Σ_{(x,y)∈D_f} ℓ_CE(θ; x, y′) + Σ_{(x,y)∈D_r} ℓ_CE(θ; x, y),  y′ ~ U({0..K−1} \\ {y}):
fine-tune θ_o on D_f relabelled with a random *wrong* class together with D_r under its true labels.

A new wrong label is drawn for every forget sample at the start of every epoch (y′ = (y + r) mod K,
r uniform on 1..K−1, from the run's own generator).  ``loop="sequential"`` (default) runs, each
epoch, one pass over D_f (wrong labels) and then one pass over D_r, as Fan et al.'s code does for
CIFAR-10; ``"mixed"`` shuffles D_f ∪ D_r into common batches, as their code does for CIFAR-100.
Their code draws y′ uniformly from all K classes (so sometimes y′ = y); we follow the SalUn paper's
y′ ≠ y.
"""

from __future__ import annotations

import torch
from torch import nn

from . import _common as C

LABEL = "RL"
DEFAULTS = {"lr": 0.01, "epochs": 5, "batch_size": 128, "momentum": 0.9, "weight_decay": 5e-4,
            "augment": None, "loop": "sequential"}
SPACE = {"lr": ("log", 1e-3, 1e-1), "epochs": ("int", 1, 30), "loop": ("cat", ["sequential", "mixed"])}
PUBLISHED = {"default": {"lr": 0.013, "epochs": 10, "loop": "sequential"}}
SOURCE = "Fan et al. 2024, Unlearn-Saliency's RL commands: lr 0.013, 10 epochs"
HARD_BOUNDS = {"epochs": ("lo", "at least one epoch")}
CHECKS = {**C.OPTIM_CHECKS, "loop": C.choice("sequential", "mixed")}
VERSION = 1


def wrong_labels(y: torch.Tensor, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """A uniformly random label other than ``y`` for every entry: (y + r) mod K, r ~ U{1..K−1}."""
    r = torch.randint(1, num_classes, y.shape, generator=gen, device=gen.device).to(y.device)
    return (y + r) % num_classes


def relabel_unlearn(exp, model: nn.Module, masks: dict | None, hp: dict, *, keep=None, desc: str = "rl",
                    offset: int = 101, label_log: list | None = None) -> float:
    """The RL loop on ``model`` (in place): returns the seconds it took.

    ``keep = (update_mask, theta0)``: only weights inside ``update_mask`` change (SalUn); after every
    step OMP masks are re-applied.  ``label_log`` (tests) receives (forget indices, labels) per batch.
    """
    data, s = exp.data, exp.splits
    dev = data.device
    k = data.num_classes
    aug = C.augment_default(exp, hp["augment"])
    gen = C.generator(exp, offset)
    forget, retain = s.forget.to(dev), s.retain.to(dev)
    y_f = data.y[forget]
    nf, nr, bs = len(forget), len(retain), hp["batch_size"]
    per_epoch = (C.steps_per_epoch(nf, bs) + C.steps_per_epoch(nr, bs) if hp["loop"] == "sequential"
                 else C.steps_per_epoch(nf + nr, bs))
    opt = C.sgd(model, hp["lr"], hp["momentum"], hp["weight_decay"])
    crit = nn.CrossEntropyLoss()
    bar = C.progress(per_epoch * hp["epochs"], desc, exp.progress)
    with C.Timer(exp.dev) as t:
        C.train_mode(model, dev)
        for _ in range(hp["epochs"]):
            yw = wrong_labels(y_f, k, gen)               # this epoch's wrong labels, one per forget sample
            idx = torch.cat([forget, retain])
            lab = torch.cat([yw, data.y[retain]])
            pos = torch.arange(nf + nr, device=dev)
            passes = ([pos[:nf], pos[nf:]] if hp["loop"] == "sequential" else [pos])
            for part in passes:
                for b in C.epoch_batches(part, bs, gen):
                    xb, _ = data.batch(idx[b], augment=aug, generator=gen)
                    yb = lab[b]
                    if label_log is not None:
                        label_log.append((idx[b].clone(), yb.clone()))
                    loss = crit(model(xb), yb)
                    C.descend(model, opt, loss, masks, bar, keep=keep)
        model.eval()
    if bar is not None:
        bar.close()
    return t.seconds


def run(exp, **hparams):
    hp = {**DEFAULTS, **hparams}
    model, masks = C.start(exp)
    secs = relabel_unlearn(exp, model, masks, hp, desc="rl")
    return model, {"run_time_s": secs, "hparams": {**hp, "augment": C.augment_default(exp, hp["augment"])}}
