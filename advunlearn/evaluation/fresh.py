"""The strong evaluation of one model: LiRA/RMIA against reference models, and a fresh attacker.

:func:`strong_evaluation` is what a result record's ``strong`` entry holds (``advunlearn run
--strong``, notebook 06): :func:`advunlearn.evaluation.strong.strong_attack_report` against shared
Retrain-recipe reference models, plus :func:`fresh_attacker`, an attacker of Algorithm 1's
architecture trained post hoc on the frozen model, with its positive control on θ0.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.store import atomic_write_json, read_json
from ..dau.attacker import evaluate_attacker, pretrain_attacker
from ..dau.unlearn import split_validation
from .strong import reference_models, strong_attack_report

# The strong-attack evaluation's version (in its store keys). 2: RMIA's population is the held-out part of D_v, its
# ties are broken by ratio(x), and the attacks read fp32 logits on every device. 3: the fresh
# attacker's non-members come from the held-out part of D_v only, with a positive control on θ0;
# a TPR at an FPR below 1/n_neg is left unresolved.
STRONG_VERSION = 3


def strong_evaluation(model, exp, n_refs: int = 4) -> dict:
    """LiRA/RMIA against shared reference models, plus a fresh post-hoc attacker."""
    refs = reference_models(exp, n=n_refs)
    out = strong_attack_report(model, exp, refs)
    out["fresh_attacker"] = fresh_attacker(model, exp)
    return out


def fresh_attacker_split(exp) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(training non-members, evaluation non-members, evaluation members) of the post-hoc attacker.

    Non-members come from the held-out part of D_v only (:func:`advunlearn.dau.unlearn.split_validation`),
    which Algorithm 1's loop never samples (Ours pulls the loop part toward D_f's outputs, so an
    attacker scored on it would be judged on data the defender trained against).  It is split in two
    halves: one trains the attacker (members: D_r), the other is what D_f is told apart from.  In the
    class scheme D_f is one class, so its evaluation negatives are never-trained samples of that class
    (D_t's forgotten class); otherwise the attacker would only detect the class.
    """
    held = split_validation(exp.splits.val, exp.seed)[1]
    g = torch.Generator().manual_seed(exp.seed + 777)
    held = held[torch.randperm(len(held), generator=g)]
    half = len(held) // 2
    train_neg, eval_neg = held[:half].sort().values, held[half:].sort().values
    if exp.splits.scheme == "class" and len(exp.splits.test_forget):
        eval_neg = exp.splits.test_forget
    return train_neg, eval_neg, exp.splits.forget


def _fresh_attack(model, exp) -> dict:
    train_neg, eval_neg, pos = fresh_attacker_split(exp)
    att, rep = pretrain_attacker(model, exp.data, exp.splits.retain, train_neg, exp.prof.attacker,
                                 seed=exp.seed + 777, progress=False)
    ev = evaluate_attacker(att, model, exp.data, pos, eval_neg, seed=exp.seed)
    return {"train_report": rep, "forget_vs_val": ev, "n_train_nonmembers": len(train_neg),
            "n_eval_nonmembers": len(eval_neg), "eval_nonmembers": "test_forget" if exp.splits.scheme == "class"
            else "val-heldout-half"}


def fresh_attacker(model, exp) -> dict:
    """A new attacker of the same architecture trained post hoc on the frozen model.

    Members: D_r; non-members: half of the held-out part of D_v; evaluated on D_f against the other
    half (:func:`fresh_attacker_split`).  It answers: can a fresh adversary still tell forgotten
    samples from unseen ones?  ``positive_control`` is the same attack on θ0, which trained on D_f: it
    must find them (AUC above 0.5), or the attack is too weak for its verdict on ``model`` to mean
    anything.  The control is stored once per experiment.
    """
    out = _fresh_attack(model, exp)
    original, _ = exp.original()
    key = {**exp.forget_key(), **exp.model_key(), "attacker": exp.prof.attacker.to_dict(), "what": "fresh-control",
           "v": 1}
    ctrl, _ = exp.store.cached("fresh-attacker-control", key,
                               lambda d: _write_json(d / "control.json", _fresh_attack(original, exp)),
                               lambda d: read_json(d / "control.json"))
    out["positive_control"] = ctrl
    return out


def _write_json(path: Path, obj: dict) -> dict:
    atomic_write_json(path, obj)
    return obj


__all__ = ["STRONG_VERSION", "strong_evaluation", "fresh_attacker", "fresh_attacker_split"]
