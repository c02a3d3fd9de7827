"""Retrain: the gold standard every other method is scored against (Jia et al., NeurIPS 2023).

A fresh initialisation trained on D_r alone with the pretraining recipe (and, on a sparse model, θ0's
OMP mask held exact):  θ_u = argmin_θ Σ_{(x,y)∈D_r} ℓ_CE(θ; x, y), from a new θ_init.

Its run time is the stored training time.  Registered a second time as ``retrain_seed2`` ("Retrain
(another seed)"), ``replica`` = 1: the same recipe on the same split from another initialisation and
batch order, whose distance to Retrain is the noise floor of every metric.
"""

from __future__ import annotations

from . import _common as C

LABEL = "Retrain"
DEFAULTS = {"replica": 0}   # 0: the gold standard; r > 0: an independent replica (another init and batch order)
SPACE: dict = {}            # nothing to tune: the recipe is the pretraining recipe
CHECKS = {"replica": C.integer(0)}
VERSION = 1


def run(exp, **hparams):
    hp = {**DEFAULTS, **hparams}
    replica = CHECKS["replica"]("retrain", "replica", hp["replica"])
    model, meta = exp.retrain(replica=replica)
    model.eval()
    return model, {"run_time_s": float(meta["time_s"]),
                   "hparams": {"replica": replica, **exp.prof.pretrain.to_dict(), "train_indices": "splits.retain"}}
