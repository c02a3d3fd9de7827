"""Ours: Discriminative Adversarial Unlearning (Algorithm 1 of the paper).

min_θ max_φ  ℓ_CE(θ; D_r) + α · L_A(φ; θ, D_f, D_v) + β · V_ss(z_f, z_v):  the defender θ (from θ_o)
keeps D_r while a transformer membership-inference attacker φ (pretrained to tell D members from
D_v non-members) is made unable to tell D_f from unseen D_v, and the Barlow-Twins term V_ss aligns
the encoder features of D_f and D_v batches.

Its hyperparameters are the UnlearnConfig fields; the profile keeps its values in ``unlearn`` (per
"<scheme>-<dense|sparse>" or "<scheme>").  Registered a second time as ``ours_no_vss``, β = 0 (the
paper's Table 2 ablation).  The run time includes attacker pretraining.

Its runner is here too: :func:`pretrained_attacker` (the attacker pretrained on θ0, stored once per
experiment) and :func:`unlearn_ours` (Algorithm 1, :func:`advunlearn.dau.unlearn.adversarial_unlearn`,
from θ0 with that attacker, stored with its history for the notebooks' plots).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Callable, Iterable

from ..core.config import UnlearnConfig
from ..core.store import atomic_write_json, load_model, load_state, read_json, save_model, save_state
from ..core.models import model_signature
from ..dau.attacker import Attacker, pretrain_attacker
from ..dau.unlearn import adversarial_unlearn, split_validation
from . import _common as C

LABEL = "Ours"
TABLES = ("table1", "table2")
PROFILE_FIELD = "unlearn"       # the profile's values for Ours live in Profile.unlearn, not Profile.methods
DEFAULTS = UnlearnConfig().to_dict()
# alpha_off_after differs between the paper's settings (class-wise: α -> 0 after 30 iterations), so it is
# searched in every setting; a value at or above ``iterations`` keeps α on throughout, so its upper bound
# (600 > the most iterations searched) means "never" and is a limit of the method, not of the search.
SPACE = {"alpha": ("log", 0.01, 100.0), "beta": ("log", 1e-5, 1e-1), "lr": ("log", 1e-3, 1e-1),
         "iterations": ("int", 50, 500), "alpha_off_after": ("logint", 5, 600)}
HARD_BOUNDS = {"alpha_off_after": ("hi", "at or above the iterations α stays on throughout (the random scheme's rule)")}
# Section 4.2 of the paper; the iterations are the testbed's (200, the profile's value before tuning).
PUBLISHED = {"default": {"alpha": 0.9, "beta": 1e-3, "iterations": 200, "alpha_off_after": 600},
             "random-dense": {"lr": 0.01}, "random-sparse": {"lr": 0.03},
             "class": {"lr": 0.02, "alpha_off_after": 30}}
# What a tuning trial changes beyond the searched values: how fast, never what, it computes. The history's
# records (evaluation for the plots, every record_every iterations) use no random draws of the loop, so
# the unlearned model is the same with one record at each end (tests/test_tuning.py checks it).
TUNING_FIXED = {"record_every": 1_000_000}
SOURCE = "the paper, section 4.2: α 0.9, β 0.001; lr 0.01 / 0.03 (random dense / sparse), 0.02 class-wise with α off after 30 iterations"
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
    cfg = UnlearnConfig.from_dict({**DEFAULTS, **hparams}, where="ours")
    model, info, _ = unlearn_ours(exp, cfg)
    return model, info


def unlearn_config(exp, **overrides) -> UnlearnConfig:
    """The profile's UnlearnConfig for this scheme/sparsity, with overrides (alpha=..., beta=...)."""
    cfg = exp.prof.unlearn_for(exp.scheme, exp.sparsity)
    return cfg.updated(**overrides) if overrides else cfg


def pretrained_attacker(exp):
    """The attacker pretrained on θ0 (members D vs non-members: the loop part of D_v), from the store
    or trained now.  The held-out part of D_v (:func:`advunlearn.dau.unlearn.split_validation`) stays
    unseen, so the history's attacker accuracy on it measures generalisation, as when
    :func:`advunlearn.dau.unlearn.adversarial_unlearn` pretrains its own attacker."""
    model, _ = exp.original()
    cfg = exp.prof.attacker
    key = {**exp.data_key(), **exp.model_key(), "attacker": cfg.to_dict(), "nonmembers": "val-loop-part"}

    def compute(d: Path):
        loop_val, _ = split_validation(exp.splits.val, exp.seed)
        att, report = pretrain_attacker(model, exp.data, exp.splits.train, loop_val, cfg, seed=exp.seed,
                                        progress=exp.progress)
        save_state(d / "attacker.safetensors", att.state_dict(), {"kind": "attacker", "num_classes": exp.data.num_classes})
        atomic_write_json(d / "report.json", report)
        return att, report

    def load(d: Path):
        att = Attacker(exp.data.num_classes, cfg).to(exp.dev)
        state, _ = load_state(d / "attacker.safetensors", {"num_classes": exp.data.num_classes}, exp.dev)
        att.load_state_dict(state)
        return att, read_json(d / "report.json")

    (att, report), _ = exp.store.cached("attacker", key, compute, load)
    return att, report


def unlearn_ours(exp, cfg: UnlearnConfig | None = None, *, vss: bool = True,
                 callbacks: Iterable[Callable[[dict], None]] = (), reuse: bool = True):
    """Adversarial unlearning (Algorithm 1) of θ0; returns ``(model, info, history_dict)``.

    ``vss=False`` is the Table 2 ablation (β = 0).  With ``reuse`` a stored result is loaded (its
    callbacks are not replayed); the run time includes attacker pretraining.
    """
    cfg = cfg or unlearn_config(exp)
    if not vss:
        cfg = cfg.updated(beta=0.0)
    original, _ = exp.original()
    key = {**exp.forget_key(), **exp.model_key(), "attacker": exp.prof.attacker.to_dict(), "unlearn": cfg.to_dict(),
           "v": VERSION}

    def compute(d: Path):
        t0 = time.perf_counter()
        attacker, att_report = pretrained_attacker(exp)
        att_time = att_report.get("time_s", time.perf_counter() - t0)
        model = copy.deepcopy(original)
        model, hist = adversarial_unlearn(model, exp.data, exp.splits, cfg, attacker=copy.deepcopy(attacker),
                                          attacker_cfg=exp.prof.attacker, masks=exp.masks(original), seed=exp.seed,
                                          callbacks=list(callbacks), progress=exp.progress)
        hd = hist.to_dict()
        # run time = attacker pretraining + the loop itself; the history's records (evaluation for the
        # plots) are left out, as every other method's run time leaves out its evaluation
        info = {"method": "ours" if vss else "ours_no_vss", "run_time_s": att_time + hd["method_time_s"],
                "hparams": cfg.to_dict(), "attacker": att_report, "unlearn_time_s": hd["method_time_s"],
                "records_time_s": hd["eval_time_s"]}
        save_model(d / "model.safetensors", model, {**_sig(exp, model), "info": info})
        atomic_write_json(d / "history.json", hd)
        return model, info, hd

    def load(d: Path):
        model = copy.deepcopy(original)
        meta = load_model(d / "model.safetensors", model, expect=_sig(exp, model))
        return model, meta["info"], read_json(d / "history.json")

    if not reuse and exp.store.done("unlearn", key):
        import shutil

        shutil.rmtree(exp.store.path("unlearn", key))
    out, _ = exp.store.cached("unlearn", key, compute, load)
    return out


def _sig(exp, model):
    return model_signature(model, exp.dataset)
