"""Population membership-inference attacks used by the paper's evaluation (section 4.1, 4.4).

MIA-efficacy (Jia et al. 2023, as the paper computes it): an RBF SVC (C=3, gamma="auto") is fitted
on one feature of the model's eval-mode softmax output, with retain samples D_r as members (label 1)
and test samples D_t as non-members (label 0), balanced by drawing as many retain samples as there
are test samples.  It then labels the forget set D_f; the efficacy is the share of D_f called
non-member, TN / |D_f| in percent.  The paper's headline number uses the *confidence* feature p_y.

Figure 2's metric attacks (Song & Mittal 2021) use the same SVC with other features:
correctness (1 if argmax p == y), confidence (p_y), entropy of p, modified entropy Mentr(p, y) and the
whole probability vector ("prob").

Deviation (speed): each side of the SVC training set is capped at ``max_per_side`` samples (5,000 by
default, a seeded random subset), so Fashion-MNIST's 10,000 test samples do not make the O(n^2) SVC
slow.  Jia et al. use the full test set and the *first* |D_t| retain samples; we draw the retain
subset at random with a seed (their first-k choice depends on the dataset's storage order).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..core.config import check_choice, check_range

ATTACKS = ("correctness", "confidence", "entropy", "m_entropy", "prob")
_EPS = 1e-30  # clamp inside logs: log(0) -> log(1e-30) ~ -69, finite


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def _check_probs(probs: torch.Tensor, labels: torch.Tensor | None = None) -> None:
    if probs.ndim != 2:
        raise ValueError(f"probs must have shape (N, K); got {tuple(probs.shape)}")
    if labels is not None and (labels.ndim != 1 or len(labels) != len(probs)):
        raise ValueError(f"labels must have shape ({len(probs)},); got {tuple(labels.shape)}")


def confidence(probs, labels) -> torch.Tensor:
    """Probability of the true label, p_y, per sample."""
    probs, labels = _as_tensor(probs).float(), _as_tensor(labels).long()
    _check_probs(probs, labels)
    return probs.gather(1, labels[:, None].to(probs.device))[:, 0]


def correctness(probs, labels) -> torch.Tensor:
    """1.0 where the prediction (argmax) equals the label, else 0.0."""
    probs, labels = _as_tensor(probs).float(), _as_tensor(labels).long()
    _check_probs(probs, labels)
    return (probs.argmax(1) == labels.to(probs.device)).float()


def entropy(probs) -> torch.Tensor:
    """Shannon entropy -sum_i p_i log p_i per sample (natural log, logs clamped)."""
    probs = _as_tensor(probs).float()
    _check_probs(probs)
    return -(probs * probs.clamp_min(_EPS).log()).sum(1)


def modified_entropy(probs, labels) -> torch.Tensor:
    """Song & Mittal's Mentr(p, y) = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i), per sample.

    Low for confident correct predictions, high for confident wrong ones (unlike plain entropy it
    uses the label).  Logs are clamped so p_y = 0 or p_i = 1 stay finite.  (Jia et al.'s code has
    the log term and the indexing wrong; this is the paper's formula.)
    """
    probs, labels = _as_tensor(probs).float(), _as_tensor(labels).long().to(_as_tensor(probs).device)
    _check_probs(probs, labels)
    p_y = probs.gather(1, labels[:, None])[:, 0]
    own = -(1 - p_y) * p_y.clamp_min(_EPS).log()
    others = -(probs * (1 - probs).clamp_min(_EPS).log())
    others = others.scatter(1, labels[:, None], 0.0).sum(1)  # drop the i == y term
    return own + others


def attack_features(probs, labels, attack: str) -> np.ndarray:
    """The SVC input of ``attack`` as a float64 array, (N, 1) for scalar features, (N, K) for "prob"."""
    check_choice("attack", attack, ATTACKS)
    probs = _as_tensor(probs).float()
    if attack == "prob":
        f = probs
    elif attack == "confidence":
        f = confidence(probs, labels)
    elif attack == "correctness":
        f = correctness(probs, labels)
    elif attack == "entropy":
        f = entropy(probs)
    else:
        f = modified_entropy(probs, labels)
    f = f.detach().cpu().double().numpy()
    return f.reshape(len(f), -1)


def _subset(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if k >= n else np.sort(rng.choice(n, size=k, replace=False))


def svc_mia_efficacy(shadow_train_feat, shadow_test_feat, target_feat, *, seed: int = 0,
                     max_per_side: int | None = 5000, C: float = 3.0) -> float:
    """MIA-efficacy in percent: share of ``target_feat`` (D_f) an RBF SVC calls non-member.

    ``shadow_train_feat``: features of members (D_r), ``shadow_test_feat``: of non-members (D_t),
    arrays of shape (N,) or (N, d).  Both sides are balanced to the same size (seeded random subset of
    the larger side; Jia et al. take as many retain as test samples) and capped at ``max_per_side``.
    """
    from sklearn.svm import SVC

    tr = np.asarray(shadow_train_feat, dtype=np.float64)
    te = np.asarray(shadow_test_feat, dtype=np.float64)
    tg = np.asarray(target_feat, dtype=np.float64)
    tr, te, tg = (a.reshape(len(a), -1) for a in (tr, te, tg))
    if not (tr.shape[1] == te.shape[1] == tg.shape[1]):
        raise ValueError(f"feature widths differ: members {tr.shape[1]}, non-members {te.shape[1]}, "
                         f"target {tg.shape[1]}")
    if not (np.isfinite(tr).all() and np.isfinite(te).all() and np.isfinite(tg).all()):
        raise ValueError("MIA features contain NaN or inf (did the model diverge?)")
    if len(tr) == 0 or len(te) == 0:
        raise ValueError("svc_mia_efficacy needs at least one member and one non-member sample")
    if len(tg) == 0:
        return float("nan")
    if max_per_side is not None:
        check_range("max_per_side", max_per_side, 1, integer=True)
    rng = np.random.default_rng(seed)
    k = min(len(tr), len(te), max_per_side or len(te))
    tr = tr[_subset(len(tr), k, rng)]
    te = te[_subset(len(te), k, rng)]
    x = np.concatenate([tr, te])
    y = np.concatenate([np.ones(len(tr)), np.zeros(len(te))])
    clf = SVC(C=C, gamma="auto", kernel="rbf")
    clf.fit(x, y)
    pred = clf.predict(tg)
    return float(100.0 * np.mean(pred == 0))


def softmax_outputs(model, exp, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode softmax probabilities and labels of ``exp.splits.<which>`` (CPU tensors)."""
    from ..core.train import predict

    idx = getattr(exp.splits, which)
    probs = torch.softmax(predict(model, exp.data, idx, exact=True), dim=1).cpu()  # fp32 on every device
    return probs, exp.data.y[idx.to(exp.data.device)].cpu()


def efficacy_from_outputs(outputs: dict, attack: str = "confidence", *, seed: int = 0,
                          max_per_side: int | None = 5000) -> float:
    """MIA-efficacy from precomputed ``{"retain": (p, y), "test": (p, y), "forget": (p, y)}``."""
    feats = {k: attack_features(p, y, attack) for k, (p, y) in outputs.items() if k in ("retain", "test", "forget")}
    return svc_mia_efficacy(feats["retain"], feats["test"], feats["forget"], seed=seed, max_per_side=max_per_side)


def mia_efficacy(model, exp, attack: str = "confidence", *, seed: int | None = None,
                 max_per_side: int | None = 5000) -> float:
    """MIA-efficacy (percent) of ``model`` on ``exp``'s forget set with one metric ``attack``."""
    check_choice("attack", attack, ATTACKS)
    outputs = {k: softmax_outputs(model, exp, k) for k in ("retain", "test", "forget")}
    return efficacy_from_outputs(outputs, attack, seed=exp.seed if seed is None else seed,
                                 max_per_side=max_per_side)


def all_attacks(outputs: dict, attacks: Sequence[str] = ATTACKS, *, seed: int = 0,
                max_per_side: int | None = 5000, threads: int | None = None) -> dict[str, float]:
    """Every metric attack's efficacy from one set of precomputed outputs (Figure 2).

    The attacks' SVCs are independent fits, run on ``threads`` threads at once (default: torch's
    thread count, i.e. the cores this run may use; libsvm releases the GIL, so two threads fit two
    SVCs in about the time of one).  Each fit is the same computation whatever the thread count.
    """
    attacks = list(attacks)
    n = torch.get_num_threads() if threads is None else threads
    check_range("threads", n, 1, integer=True)
    one = lambda a: efficacy_from_outputs(outputs, a, seed=seed, max_per_side=max_per_side)  # noqa: E731
    if n == 1 or len(attacks) < 2:
        return {a: one(a) for a in attacks}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(n, len(attacks))) as ex:
        return dict(zip(attacks, ex.map(one, attacks)))


__all__ = ["ATTACKS", "confidence", "correctness", "entropy", "modified_entropy", "attack_features",
           "svc_mia_efficacy", "mia_efficacy", "softmax_outputs", "efficacy_from_outputs", "all_attacks"]
