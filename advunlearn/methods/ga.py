"""GA: gradient ascent on the forget set (Thudi et al. 2022; as in Jia et al., NeurIPS 2023).

θ_u = θ_o + η Σ_t ∇θ ℓ_CE(θ_t; D_f): SGD that maximises the cross-entropy on D_f for a few epochs.

Its recipe is a TrainConfig: the profile's ``ga`` is its profile value (Jia et al.'s code: lr 1e-4,
5 epochs; users report 5e-4 to 1e-3 forget, 1e-4 barely does).
"""

from __future__ import annotations

from ..core.config import TrainConfig
from . import _common as C
from .ft import fit_run

LABEL = "GA"
DEFAULTS = TrainConfig(epochs=5, lr=5e-4).to_dict()
SPACE = {"lr": ("log", 1e-6, 1e-1), "epochs": ("int", 1, 20)}
PUBLISHED = {"default": {"lr": 1e-4, "epochs": 5}}
SOURCE = "Jia et al. 2023, Unlearn-Sparse's run commands: lr 1e-4, 5 epochs"
HARD_BOUNDS = {"epochs": ("lo", "at least one epoch")}
CHECKS: dict = {}
VERSION = 1


def validate(hp: dict) -> dict:
    return C.as_config(TrainConfig, "ga", hp)


def profile_values(prof, scheme: str, sparsity: float) -> dict:
    return prof.ga.to_dict()


def run(exp, **hparams):
    return fit_run("ga", exp, exp.splits.forget, hparams, ascent=True)
