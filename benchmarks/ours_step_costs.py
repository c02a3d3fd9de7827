"""Ours/Retrain on the testbed from per-step costs measured side by side (robust to a changing load).

    ADVUNLEARN_THREADS=1 python benchmarks/ours_step_costs.py --reps 3

Interleaves, ``--reps`` times: 20 Retrain training steps (the testbed MLP, batch 64), 10 attacker
pretraining steps (batch 128) and 5 Algorithm 1 iterations (phase-timed).  Then
Ours/Retrain ~= (attacker iterations x pretraining step + iterations x Algorithm 1 iteration) /
(Retrain's steps x training step), the token pass and records left out (small on the testbed).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("ADVUNLEARN_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None):
    import torch

    from advunlearn.dau.attacker import Attacker, make_attacker_optimizer
    from advunlearn.experiments.experiment import Experiment
    from advunlearn.methods.ours import unlearn_config
    from advunlearn.core.timing import phase_timer
    from advunlearn.core.train import make_sgd
    from advunlearn.dau.unlearn import AdversarialUnlearner

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--results", default="/tmp/advunlearn-profile/store")
    a = ap.parse_args(argv)
    exp = Experiment(dataset="fashion-mnist", profile="cpu", seed=0, results=a.results, progress=False)
    theta0, _ = exp.original()
    cfg, acfg = unlearn_config(exp), exp.prof.attacker
    # Retrain's step: the pretraining recipe's batch on D_r
    model = copy.deepcopy(theta0).train()
    opt = make_sgd(model.parameters(), 0.05, 0.9, 5e-4)
    ce = torch.nn.CrossEntropyLoss()
    r_idx = exp.splits.retain
    g = torch.Generator().manual_seed(0)

    def train_step():
        xb, yb = exp.data.batch(r_idx[torch.randint(len(r_idx), (exp.prof.pretrain.batch_size,), generator=g)])
        loss = ce(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    torch.manual_seed(0)
    att = Attacker(10, acfg).train()
    aopt = make_attacker_optimizer(att.parameters(), acfg.lr, acfg.momentum, acfg.weight_decay)
    tok = torch.rand(acfg.batch_size, 10, 3)
    tgt = (torch.arange(acfg.batch_size) < acfg.batch_size // 2).float()
    bce = torch.nn.BCEWithLogitsLoss()

    def att_step():
        loss = bce(att(tok), tgt)
        aopt.zero_grad(set_to_none=True)
        loss.backward()
        aopt.step()

    torch.manual_seed(0)
    un = AdversarialUnlearner(copy.deepcopy(theta0), exp.data, exp.splits, cfg, attacker=Attacker(10, acfg),
                              attacker_cfg=acfg, seed=0, progress=False)
    res = {"train": [], "att": [], "iter": []}
    phases = {}
    for _ in range(2):
        train_step(), att_step(), un.step()  # warm-up
    for rep in range(a.reps):
        t = time.perf_counter()
        for _ in range(20):
            train_step()
        res["train"].append((time.perf_counter() - t) / 20)
        t = time.perf_counter()
        for _ in range(10):
            att_step()
        res["att"].append((time.perf_counter() - t) / 10)
        with phase_timer() as pt:
            t = time.perf_counter()
            for _ in range(5):
                un.step()
            res["iter"].append((time.perf_counter() - t) / 5)
        for k, v in pt.seconds.items():
            phases.setdefault(k, []).append(v / 5)
    med = {k: sorted(v)[len(v) // 2] for k, v in res.items()}
    n_train = len(r_idx) // exp.prof.pretrain.batch_size * exp.prof.pretrain.epochs
    retrain = n_train * med["train"]
    pre = acfg.iterations * med["att"]
    loop = cfg.iterations * med["iter"]
    print(f"threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}; medians of {a.reps}: train step "
          f"{med['train'] * 1e3:.1f} ms, attacker step {med['att'] * 1e3:.1f} ms, Algorithm 1 iteration "
          f"{med['iter'] * 1e3:.1f} ms (" + ", ".join(f"{k} {sorted(v)[len(v) // 2] * 1e3:.1f}"
                                                       for k, v in phases.items()) + " ms)")
    print(f"Retrain {n_train} steps = {retrain:.1f}s; Ours = pretraining {acfg.iterations} x attacker step "
          f"{pre:.1f}s + {cfg.iterations} iterations {loop:.1f}s = {pre + loop:.1f}s -> Ours/Retrain "
          f"{(pre + loop) / retrain:.2f} (pretraining {pre / retrain:.2f}, loop {loop / retrain:.2f})")


if __name__ == "__main__":
    main()
