"""Ours: Discriminative Adversarial Unlearning (Algorithm 1 of the paper).

min_θ max_φ  ℓ_CE(θ; D_r) + α · L_A(φ; θ, D_f, D_v) + β · V_ss(z_f, z_v):  the defender θ (from θ_o)
keeps D_r while a transformer membership-inference attacker φ (pretrained to tell D members from
D_v non-members) is made unable to tell D_f from unseen D_v, and the Barlow-Twins term V_ss aligns
the encoder features of D_f and D_v batches.

Its hyperparameters are the UnlearnConfig fields; the profile keeps its values in ``unlearn`` (per
"<scheme>-<dense|sparse>" or "<scheme>").  Registered a second time as ``ours_no_vss``, β = 0 (the
paper's Table 2 ablation).  The run time includes attacker pretraining.
"""

from __future__ import annotations

from ..config import UnlearnConfig
from . import _common as C

LABEL = "Ours"
TABLES = ("table1", "table2")
PROFILE_FIELD = "unlearn"       # the profile's values for Ours live in Profile.unlearn, not Profile.methods
DEFAULTS = UnlearnConfig().to_dict()
SPACE = {"alpha": ("log", 0.1, 50.0), "beta": ("log", 1e-4, 1e-1), "lr": ("log", 1e-3, 1e-1),
         "iterations": ("int", 50, 400)}
CHECKS: dict = {}               # UnlearnConfig checks every field (validate)
# 2: D_r-only BatchNorm statistics in the defender step, attacker pretrained on the loop part of D_v,
# run time without the records.
VERSION = 2


def validate(hp: dict) -> dict:
    return C.as_config(UnlearnConfig, "ours", hp)


def profile_values(prof, scheme: str, sparsity: float) -> dict:
    return prof.unlearn_for(scheme, sparsity).to_dict()


def store_key(exp) -> dict:
    return {"attacker": exp.prof.attacker.to_dict()}


def run(exp, **hparams):
    from ..runner import unlearn_ours

    cfg = UnlearnConfig.from_dict({**DEFAULTS, **hparams}, where="ours")
    model, info, _ = unlearn_ours(exp, cfg)
    return model, info
