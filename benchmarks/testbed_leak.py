"""Is the testbed's original model attackable? LiRA on D_f against θ0 and against Retrain, per seed.

    ADVUNLEARN_THREADS=1 python benchmarks/testbed_leak.py --seeds 0 1 2 [--results DIR]

For each seed (random scheme, dense): offline LiRA (fixed variance, the experiment's 4 reference
models trained on D_r, as in the strong evaluation) scores D_f (positives) against the test set
(negatives) for θ0, which trained on D_f, and for Retrain, which never did.  Prints AUC and TPR at
1% FPR for both and the ratio θ0 / Retrain.  A testbed where membership leaks has the ratio well
above 1; Retrain's TPR sits near the FPR.  ``--results``: the store to reuse θ0, Retrain and the
reference models from (e.g. the Table 1 batch's store).
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
    from advunlearn.experiments.experiment import Experiment
    from advunlearn.evaluation.strong import reference_models, strong_attack_report

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--results", default="results/store")
    ap.add_argument("--json", default=None, help="also write the rows here")
    a = ap.parse_args(argv)
    rows = []
    print("| seed | θ0 LiRA AUC | Retrain LiRA AUC | θ0 TPR@1% | Retrain TPR@1% | ratio |")
    print("|---|---|---|---|---|---|")
    for seed in a.seeds:
        exp = Experiment(dataset=a.dataset, profile=a.profile, seed=seed, results=a.results, progress=False)
        refs = reference_models(exp, n=4)
        got = {}
        for name, model in (("original", exp.original()[0]), ("retrain", exp.retrain()[0])):
            r = strong_attack_report(model, exp, refs)["lira_fixed"]
            got[name] = {"auc": r["auc"], "tpr_1pct": r["tpr@1%"]}
        t0, tr = got["original"]["tpr_1pct"], got["retrain"]["tpr_1pct"]
        ratio = t0 / tr if tr else float("inf")
        rows.append({"seed": seed, **{f"{k}_{m}": v for k, d in got.items() for m, v in d.items()}, "ratio": ratio})
        print(f"| {seed} | {got['original']['auc']:.3f} | {got['retrain']['auc']:.3f} | {100 * t0:.1f}% | "
              f"{100 * tr:.1f}% | {ratio:.1f}x |", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
