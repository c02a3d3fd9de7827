"""Memorisation scores (Feldman & Zhang 2020) and the ``memorized`` forget set.

mem(x) = P[model is right on x | x in its training set] − P[right on x | x not in it], estimated
with M shadow models of the pretraining recipe, each trained on a random half of D (pairs of
complementary halves: every sample is in exactly M/2 of them, the out-estimate uses the other M/2).
Feldman & Zhang train thousands of models on 70% subsets; with M = 32 the score moves in steps of
1/16, so ties are broken by the same difference in the mean true-class probability (a choice).
Halves rather than 70%: every sample gets as many in- as out-models, the estimate's two halves are
equally precise, and each model costs half a pretraining.

The ``memorized`` scheme forgets the ``forget_frac`` of D with the highest scores: the hard case for
unlearning (RUM, Zhao et al. 2024), where a model's behaviour on D_f differs most from Retrain's.

Cost on the testbed (Fashion-MNIST MLP, 5,000 training images): M models on 2,500 images each, that
is M/2 pretrainings' worth of compute; see docs/strong_evaluation.md for the measured time.
Stored: each shadow's correctness and true-class probability on D (kind ``memo-shadow``) and the
scores (kind ``memorization``), keyed by the data, the model and its recipe, D and M.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..core.config import check_range
from ..experiments.experiment import MEMORIZATION_VERSION

DEFAULT_MEMORIZATION_SHADOWS = 32
_SEED_OFFSET = 99_000_000


def _base_key(exp, train: np.ndarray) -> dict:
    from .shadows import _sha

    # Not the thread count: the scores choose the memorized scheme's forget set, so every process of
    # a run (single-thread workers, a main process with more threads) must read the same stored scores.
    dk = {k: v for k, v in exp.data_key().items() if k not in ("shadow", "threads")}
    return {**dk, "model": exp.prof.model, "pretrain": exp.prof.pretrain.to_dict(), "train": _sha(train),
            "v": MEMORIZATION_VERSION}


def _membership(exp, n: int, m: int) -> np.ndarray:
    from .shadows import pair_membership

    return pair_membership(n, m, (exp.seed, 0x3E30))


def _memo_shadow(exp_or_spec, train: np.ndarray, n_shadows: int, i: int) -> dict:
    """Shadow i: trained on its half of D; stores correctness and p_y on all of D."""
    from ..experiments.workers import _experiment
    from ..core.store import load_state, save_state
    from ..core.train import fit, predict

    exp = _experiment(exp_or_spec)
    key = {**_base_key(exp, train), "i": int(i)}
    idx = torch.from_numpy(np.asarray(train, dtype=np.int64))

    def compute(d: Path):
        member = _membership(exp, len(train), n_shadows)[i]
        seed = (int(exp.seed) + 1) * 10 ** 8 + _SEED_OFFSET + 1000 * int(i)
        torch.manual_seed(seed)
        from ..core.models import build_model

        model = build_model(exp.prof.model, exp.data.num_classes, exp.data.in_channels, exp.data.image_size).to(exp.dev)
        info = fit(model, exp.data, idx[torch.from_numpy(member)], exp.prof.pretrain, seed=seed, progress=False,
                   desc="memo-shadow")
        logits = predict(model, exp.data, idx, exact=True).double().cpu()
        y = exp.data.y[idx.to(exp.data.device)].cpu()
        correct = (logits.argmax(1) == y).to(torch.uint8)
        prob = torch.softmax(logits, 1).gather(1, y[:, None]).squeeze(1).float()
        save_state(d / "outputs.safetensors", {"correct": correct, "prob": prob},
                   {"kind": "memo-shadow", "i": int(i), "time_s": info["time_s"]})
        return {"correct": correct.numpy(), "prob": prob.numpy(), "time_s": info["time_s"]}

    def load(d: Path):
        t, meta = load_state(d / "outputs.safetensors", {"kind": "memo-shadow"})
        return {"correct": t["correct"].numpy(), "prob": t["prob"].numpy(), "time_s": meta.get("time_s")}

    out, reused = exp.store.cached("memo-shadow", key, compute, load)
    return {**out, "i": int(i), "reused": reused}


def memorization_scores(exp, train=None, n_shadows: int | None = None, *, workers: int = 1, backend: str = "process",
                        address: str | None = None, log=None) -> dict:
    """Memorisation scores of D (``train``, default ``exp.splits.train``) from ``n_shadows`` half-D models.

    Returns ``{"index", "score", "in_acc", "out_acc", "prob_score", "rank_score", "n_shadows",
    "time_s"}``: the first five per sample of D (in ``index`` order); ``rank_score`` is one value per
    dataset index (NaN outside D), the score plus the probability difference / (2M), which orders
    equal scores by the probability difference without ever crossing a step of the score.
    ``time_s`` sums the shadows' training times.  ``workers`` / ``backend`` as
    :func:`advunlearn.experiments.workers.run_tasks`.
    """
    from ..experiments.workers import experiment_spec, run_tasks
    from ..core.store import load_state, save_state

    m = int(n_shadows if n_shadows is not None else exp.memorization_shadows)
    check_range("n_shadows", m, 2, integer=True)
    train = np.sort(np.asarray((exp.splits.train if train is None else train), dtype=np.int64))
    key = {**_base_key(exp, train), "n_shadows": m}

    def compute(d: Path):
        t0 = time.perf_counter()
        spec = {**experiment_spec(exp), "scheme": "random"}  # the same D, without the scores it waits for
        outs = run_tasks(exp, spec, _memo_shadow, [(train, m, i) for i in range(m)], workers=workers,
                         backend=backend, address=address,
                         on_result=(lambda r: log(f"  memorisation shadow {r['i']}: "
                                                  f"{'reused' if r['reused'] else 'trained'}")) if log else None)
        outs.sort(key=lambda r: r["i"])
        member = _membership(exp, len(train), m)
        correct = np.stack([o["correct"] for o in outs]).astype(np.float64)
        prob = np.stack([o["prob"] for o in outs]).astype(np.float64)
        n_in, n_out = member.sum(0), (~member).sum(0)
        in_acc = (correct * member).sum(0) / n_in
        out_acc = (correct * ~member).sum(0) / n_out
        prob_score = (prob * member).sum(0) / n_in - (prob * ~member).sum(0) / n_out
        score = in_acc - out_acc
        secs = float(sum(o["time_s"] or 0 for o in outs))
        tensors = {"index": torch.from_numpy(train), "score": torch.from_numpy(score),
                   "in_acc": torch.from_numpy(in_acc), "out_acc": torch.from_numpy(out_acc),
                   "prob_score": torch.from_numpy(prob_score)}
        save_state(d / "scores.safetensors", tensors, {"kind": "memorization", "n_shadows": m, "time_s": secs,
                                                       "wall_s": time.perf_counter() - t0})
        return {k: v.numpy() for k, v in tensors.items()} | {"time_s": secs}

    def load(d: Path):
        t, meta = load_state(d / "scores.safetensors", {"kind": "memorization", "n_shadows": m})
        return {k: v.numpy() for k, v in t.items()} | {"time_s": meta.get("time_s")}

    res, _ = exp.store.cached("memorization", key, compute, load)
    rank = np.full(len(exp.data.y), np.nan)
    rank[res["index"]] = res["score"] + res["prob_score"] / (2 * m)
    return {**res, "rank_score": rank, "n_shadows": m}


def memorized_splits(exp):
    """The memorized scheme's splits: D and D_v as for the random scheme, D_f = the top ``forget_frac``."""
    from ..core.data import make_splits

    base = make_splits(exp.data, "random", exp.forget_frac, None, exp.val_frac, exp.seed, exp.prof.max_train)
    sc = memorization_scores(exp, train=base.train, workers=exp.memorization_workers)
    s = make_splits(exp.data, "memorized", exp.forget_frac, None, exp.val_frac, exp.seed, exp.prof.max_train,
                    scores=sc["rank_score"])
    assert torch.equal(s.train, base.train) and torch.equal(s.val, base.val)
    return s


__all__ = ["memorization_scores", "memorized_splits", "MEMORIZATION_VERSION", "DEFAULT_MEMORIZATION_SHADOWS"]
