"""Algorithm 1 before and after, per scheme: accuracies, the attacker, and times, in one run.

For each scheme it prints the forget / retain / test accuracy and the in-loop attacker's accuracy
and AUC on held-out forget/validation pairs before unlearning (θ0, the just-pretrained attacker)
and after it (the unlearned model, the attacker at the last iteration), next to the pretraining
time of θ0 and the unlearning time (attacker pretraining included), all measured in this run::

    python scripts/before_after.py --dataset fashion-mnist --profile cpu --results /tmp/ba
"""

from __future__ import annotations

import argparse
import json
import time

from advunlearn.experiments.experiment import Experiment
from advunlearn.methods.ours import unlearn_config, unlearn_ours


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--schemes", default="random,class")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--results", default="results/before_after")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    a = ap.parse_args(argv)
    rows = []
    for scheme in a.schemes.split(","):
        exp = Experiment(dataset=a.dataset, scheme=scheme, seed=a.seed, profile=a.profile, device=a.device,
                         results=a.results)
        original, meta = exp.original()
        before = exp.accuracies(original)
        t0 = time.perf_counter()
        model, info, hist = unlearn_ours(exp, unlearn_config(exp), reuse=False)
        wall = time.perf_counter() - t0
        after = exp.accuracies(model)
        first, last = hist["records"][0], hist["records"][-1]
        row = {"dataset": a.dataset, "profile": a.profile, "model": exp.prof.model, "scheme": scheme,
               "device": str(exp.dev), "seed": a.seed, "n_train": len(exp.splits.train),
               "n_forget": len(exp.splits.forget), "pretrain_s": round(meta["time_s"], 1),
               "unlearn_s": round(info["run_time_s"], 1), "attacker_pretrain_s": round(info["attacker"]["time_s"], 1),
               "unlearn_wall_s": round(wall, 1), "iterations": info["hparams"]["iterations"],
               "alpha": info["hparams"]["alpha"], "lr": info["hparams"]["lr"],
               **{f"{k}_before": round(before[k], 2) for k in ("forget", "retain", "test")},
               **{f"{k}_after": round(after[k], 2) for k in ("forget", "retain", "test")},
               "attacker_acc_before": round(first["attacker_acc"], 2),
               "attacker_auc_before": round(first["attacker_auc"], 3),
               "attacker_acc_after": round(last["attacker_acc"], 2),
               "attacker_auc_after": round(last["attacker_auc"], 3)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| scheme | forget acc before → after | retain acc | test acc | attacker acc (AUC) | pretraining s | unlearning s |")
    print("| --- | --- | --- | --- | --- | ---: | ---: |")
    for r in rows:
        print(f"| {r['scheme']} | {r['forget_before']:.2f} → {r['forget_after']:.2f} | {r['retain_before']:.2f} → "
              f"{r['retain_after']:.2f} | {r['test_before']:.2f} → {r['test_after']:.2f} | "
              f"{r['attacker_acc_before']:.1f} ({r['attacker_auc_before']:.3f}) → {r['attacker_acc_after']:.1f} "
              f"({r['attacker_auc_after']:.3f}) | {r['pretrain_s']} | {r['unlearn_s']} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
