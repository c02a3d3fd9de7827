"""FT: fine-tuning on the retain set (Warnecke et al. 2023; as in Jia et al., NeurIPS 2023).

θ_u = θ_o − η Σ_t ∇θ ℓ_CE(θ_t; D_r): a few epochs of SGD on D_r from θ_o, so the model drifts away
from what only D_f taught it ("catastrophic forgetting").

Its recipe is a TrainConfig: the profile's ``finetune`` is its profile value (Jia et al.: lr 0.01,
10 epochs).
"""

from __future__ import annotations

from ..core.config import TrainConfig
from . import _common as C

LABEL = "FT"
DEFAULTS = TrainConfig(epochs=10, lr=0.01).to_dict()
# widened twice after protocol 2 chose values at the top of the space on the random scheme: lr 0.1 and 28
# epochs of [1, 30]; then 59 epochs of [1, 60] (random dense). Past the profile's 40 training epochs FT
# costs more than Retrain itself (its run time says so in the tables); the criterion does not charge
# cost, for FT as for every method.
SPACE = {"lr": ("log", 1e-3, 1.0), "epochs": ("int", 1, 120)}
# Then 117 of [1, 120]: the criterion keeps improving with epochs (random dense: 0.776 at 59, 0.500 at
# 117) as FT turns into retraining from θ0 on D_r. 120 is declared FT's limit rather than widened again.
PUBLISHED = {"default": {"lr": 0.01, "epochs": 10}}
SOURCE = "Jia et al. 2023, Unlearn-Sparse's run commands: lr 0.01, 10 epochs"
HARD_BOUNDS = {"epochs": {"lo": "at least one epoch",
                          "hi": "3× the testbed's Retrain (40 epochs): past it FT is retraining from θ0 at a higher cost"}}
CHECKS: dict = {}           # TrainConfig checks every field (validate)
VERSION = 1


def validate(hp: dict) -> dict:
    return C.as_config(TrainConfig, "ft", hp)


def profile_values(prof, scheme: str, sparsity: float) -> dict:
    return prof.finetune.to_dict()


def fit_run(name: str, exp, idx, hparams: dict, ascent: bool = False):
    """FT and GA: :func:`advunlearn.core.train.fit` from a copy of θ0 on ``idx``."""
    from ..core.train import fit

    cfg = TrainConfig.from_dict({**DEFAULTS, **hparams}, where=name)
    model, masks = C.start(exp)
    with C.Timer(exp.dev) as t:
        fit(model, exp.data, idx, cfg, seed=exp.seed, masks=masks, ascent=ascent, progress=exp.progress, desc=name)
    model.eval()
    return model, {"run_time_s": t.seconds, "hparams": cfg.to_dict()}


def run(exp, **hparams):
    return fit_run("ft", exp, exp.splits.retain, hparams)
