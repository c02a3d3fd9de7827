"""SCRUB (Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023).

Teacher = θ_o (frozen), student θ from θ_o, d(x) = KL(p_teacher(x; T) ‖ p_student(x; T)) with
temperature-T softmaxes.  Per epoch: a max-step pass over D_f, θ ← θ + η ∇θ mean_{D_f} d (only in the
first ``max_steps`` epochs), then a min-step pass over D_r, θ ← θ − η ∇θ [α · mean_{D_r} d + γ · ℓ_CE].

Written from the paper (its authors' code is licensed for non-commercial use only and was not used).
Choices where the paper leaves them open: SGD with momentum and weight decay (as every other method
here); the KL is the batch mean of the per-sample KL with no T² factor; the teacher runs in eval
mode, the student in train mode; the max-step pass uses ``forget_batch_size``; the paper's
"rewinding" variant (SCRUB+R) is not implemented.  At θ_o the KL and its gradient are 0, so on a
model without dropout or BatchNorm (the MLP) the first max-step pass moves the student only through
weight decay; the max-steps act once the min-steps have moved it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from . import _common as C

LABEL = "SCRUB"
DEFAULTS = {"lr": 0.005, "epochs": 5, "max_steps": 2, "alpha": 1.0, "gamma": 1.0, "T": 4.0,
            "batch_size": 128, "forget_batch_size": 64, "momentum": 0.9, "weight_decay": 5e-4, "augment": None}
SPACE = {"lr": ("log", 1e-4, 5e-2), "epochs": ("int", 1, 10), "max_steps": ("int", 1, 5),
         "alpha": ("log", 0.1, 10.0), "gamma": ("log", 0.1, 10.0), "T": ("float", 1.0, 8.0)}
CHECKS = {**C.OPTIM_CHECKS, "max_steps": C.integer(0), "alpha": C.nonneg, "gamma": C.nonneg, "T": C.positive,
          "forget_batch_size": C.integer(1)}
VERSION = 1


def kl_teacher_student(t_logits: torch.Tensor, s_logits: torch.Tensor, T: float) -> torch.Tensor:
    """Per-sample KL(softmax(t/T) ‖ softmax(s/T))."""
    log_pt = (t_logits.float() / T).log_softmax(-1)
    log_ps = (s_logits.float() / T).log_softmax(-1)
    return (log_pt.exp() * (log_pt - log_ps)).sum(-1)


def max_epoch(student: nn.Module, teacher: nn.Module, data, forget: torch.Tensor, opt, hp: dict,
              gen: torch.Generator, aug: bool, masks: dict | None = None, bar=None) -> None:
    """One max-step pass over D_f: ascend mean d on each batch."""
    student.train()
    for b in C.epoch_batches(forget, hp["forget_batch_size"], gen):
        xb, _ = data.batch(b, augment=aug, generator=gen)
        with torch.no_grad():
            t = teacher(xb)
        loss = -kl_teacher_student(t, student(xb), hp["T"]).mean()
        C.descend(student, opt, loss, masks, bar)


def min_epoch(student: nn.Module, teacher: nn.Module, data, retain: torch.Tensor, opt, hp: dict,
              gen: torch.Generator, aug: bool, masks: dict | None = None, bar=None) -> None:
    """One min-step pass over D_r: descend α · mean d + γ · CE on each batch."""
    student.train()
    for b in C.epoch_batches(retain, hp["batch_size"], gen):
        xb, yb = data.batch(b, augment=aug, generator=gen)
        with torch.no_grad():
            t = teacher(xb)
        out = student(xb)
        loss = hp["alpha"] * kl_teacher_student(t, out, hp["T"]).mean() + \
            hp["gamma"] * nn.functional.cross_entropy(out.float(), yb)
        C.descend(student, opt, loss, masks, bar)


def run(exp, **hparams):
    hp = {**DEFAULTS, **hparams}
    data, s = exp.data, exp.splits
    dev = data.device
    student, masks = C.start(exp)
    teacher = copy.deepcopy(student).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    aug = C.augment_default(exp, hp["augment"])
    gen = C.generator(exp, 303)
    forget, retain = s.forget.to(dev), s.retain.to(dev)
    opt = C.sgd(student, hp["lr"], hp["momentum"], hp["weight_decay"])
    n_max = min(hp["max_steps"], hp["epochs"])
    total = n_max * C.steps_per_epoch(len(forget), hp["forget_batch_size"]) + \
        hp["epochs"] * C.steps_per_epoch(len(retain), hp["batch_size"])
    bar = C.progress(total, "scrub", exp.progress)
    with C.Timer(exp.dev) as t:
        C.train_mode(student, dev)
        for epoch in range(hp["epochs"]):
            if epoch < hp["max_steps"]:
                max_epoch(student, teacher, data, forget, opt, hp, gen, aug, masks, bar)
            min_epoch(student, teacher, data, retain, opt, hp, gen, aug, masks, bar)
        student.eval()
    if bar is not None:
        bar.close()
    return student, {"run_time_s": t.seconds, "hparams": {**hp, "augment": aug}}
