"""How many pretraining iterations the testbed's attacker needs: its held-out AUC along one run.

    ADVUNLEARN_THREADS=1 python benchmarks/attacker_plateau.py --seed 0 --every 50

Pretrains the profile's attacker (``AttackerConfig``: SGD, batch 128) on θ0 of the Fashion-MNIST
testbed exactly as ``runner.pretrained_attacker`` does (members D, non-members the loop part of
D_v) and records the held-out accuracy and AUC every ``--every`` iterations (a constant learning
rate: the curve's point at k iterations is what a k-iteration pretraining gives).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("ADVUNLEARN_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None):
    from advunlearn.dau.attacker import pretrain_attacker
    from advunlearn.experiments.experiment import Experiment
    from advunlearn.dau.unlearn import split_validation

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=None, help="default: the profile's")
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--results", default="/tmp/advunlearn-profile/store")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    exp = Experiment(dataset=a.dataset, profile=a.profile, seed=a.seed, results=a.results, progress=False)
    model, _ = exp.original()
    cfg = exp.prof.attacker if a.iterations is None else exp.prof.attacker.updated(iterations=a.iterations)
    loop_val, _ = split_validation(exp.splits.val, exp.seed)
    _, rep = pretrain_attacker(model, exp.data, exp.splits.train, loop_val, cfg, seed=exp.seed, progress=False,
                               curve_every=a.every)
    print(f"seed {a.seed}: {cfg.iterations} iterations in {rep['time_s']:.1f}s (features {rep['feature_time_s']:.1f}s)")
    for c in rep["curve"]:
        print(f"  {c['iteration']:5d}  acc {c['acc']:5.1f}  auc {c['auc']:.4f}", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rep, indent=2))
    return rep


if __name__ == "__main__":
    main()
