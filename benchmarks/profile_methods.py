"""Where each method's time goes on one testbed seed, as ratios to Retrain's time from the same run.

    ADVUNLEARN_THREADS=1 python benchmarks/profile_methods.py                 # fashion-mnist, random, dense, seed 0
    python benchmarks/profile_methods.py --scheme class --sparsity 0.95 --seed 1 --methods retrain,ours

Every method in ``advunlearn.experiments.runner.ALL_METHODS`` runs once from the stored original model θ0 (θ0 is
trained first if the store lacks it; its time is not counted).  Before each method the store's other
artifacts are removed, so nothing a method computes (Retrain's model, the pretrained attacker) is
reused by the next one.  Phases come from :mod:`advunlearn.core.timing` regions (exclusive times):

* ``attacker_pretrain``: the attacker's token pass on θ0, its iterations and held-out check;
* ``attacker_step``: the attacker's updates inside Algorithm 1 (the sensitivity pass excluded);
* ``sensitivity``: the clean + ``noise_samples`` noisy forward passes of the D_f/D_v batches;
* ``defender_step``: the defender's forward/backward/update;
* ``records``: the history's evaluation (not part of the method's run time);
* ``loop_other``: the rest of Algorithm 1's loop (batch drawing, bookkeeping);
* ``method_other``: the rest of the method (all of a baseline's work);
* ``evaluation``: ``metrics.evaluate`` of the result (UA, RA, TA, MIA; not part of the run time).

It prints one table: each method's wall time, its reported run time, and each phase's seconds
divided by Retrain's run time.  ``--json`` writes the numbers too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("ADVUNLEARN_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PHASES = ("attacker_pretrain", "attacker_step", "sensitivity", "defender_step", "loop_other", "method_other",
          "records", "evaluation")
KEEP = ("pretrain", "pretrain-sparse")  # store kinds kept between methods (θ0)


def clear_store(root: Path) -> None:
    if not root.exists():
        return
    for d in root.iterdir():
        if d.is_dir() and d.name not in KEEP:
            shutil.rmtree(d)


def profile(exp, methods, log=print) -> dict:
    from advunlearn.evaluation.metrics import evaluate
    from advunlearn.experiments.runner import run_method
    from advunlearn.core.timing import phase, phase_timer

    exp.original()  # θ0 (stored), outside every measurement
    rows = {}
    for m in methods:
        clear_store(Path(exp.store.root))
        with phase_timer(sync=exp.dev.type == "cuda") as t:
            t0 = time.perf_counter()
            with phase("method_other"):
                model, info = run_method(exp, m)
            wall = time.perf_counter() - t0
            with phase("evaluation"):
                res = evaluate(model, exp, info.get("run_time_s"), attacks=False)
        row = {"wall_s": wall, "run_time_s": info.get("run_time_s") or wall,
               "phases": {k: t.seconds.get(k, 0.0) for k in PHASES},
               "UA": res["UA"], "RA": res["RA"], "TA": res["TA"], "MIA_efficacy": res["MIA_efficacy"]}
        if "attacker" in info:
            row["attacker_auc"] = info["attacker"].get("auc")
        rows[m] = row
        log(f"  {m:12s} run {row['run_time_s']:7.2f}s  wall {wall:7.2f}s  load {os.getloadavg()[0]:.1f}  phases (s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in row["phases"].items() if v))
    return rows


def table(rows: dict) -> str:
    base = rows.get("retrain", {}).get("run_time_s")
    short = {"attacker_pretrain": "att.pretrain", "attacker_step": "att.steps", "sensitivity": "sensitivity",
             "defender_step": "def.steps", "loop_other": "loop other", "method_other": "method other",
             "records": "records", "evaluation": "evaluation"}
    head = "| method | run time s | × Retrain | " + " | ".join(short[p] for p in PHASES) + " |"
    lines = [head, "|---" * (3 + len(PHASES)) + "|"]
    for m, r in rows.items():
        ratio = (lambda v: f"{v / base:.3f}") if base else (lambda v: f"{v:.2f}s")
        lines.append(f"| {m} | {r['run_time_s']:.2f} | {ratio(r['run_time_s'])} | "
                     + " | ".join(ratio(r["phases"][p]) for p in PHASES) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    from advunlearn.experiments.experiment import Experiment
    from advunlearn.experiments.runner import ALL_METHODS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--scheme", default="random")
    ap.add_argument("--sparsity", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(ALL_METHODS))
    ap.add_argument("--results", default="/tmp/advunlearn-profile/store",
                    help="a store of its own: everything but θ0 is deleted between methods")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    a = ap.parse_args(argv)
    import torch

    exp = Experiment(dataset=a.dataset, profile=a.profile, scheme=a.scheme, sparsity=a.sparsity, seed=a.seed,
                     device=a.device, results=a.results, progress=False)
    print(f"{a.dataset}/{a.profile} {a.scheme} sparsity {a.sparsity} seed {a.seed}, device {exp.dev}, "
          f"{torch.get_num_threads()} thread(s), load {os.getloadavg()[0]:.2f}", flush=True)
    rows = profile(exp, a.methods.split(","), log=lambda s: print(s, flush=True))
    print("\nphase seconds / Retrain's run time (run time = what the method reports; records and evaluation "
          "are outside it)\n")
    print(table(rows))
    base = rows.get("retrain", {}).get("run_time_s")
    if base and "ours" in rows:
        print(f"\nOurs / Retrain = {rows['ours']['run_time_s'] / base:.2f}")
    out = {"args": vars(a), "threads": torch.get_num_threads(), "load": os.getloadavg(), "rows": rows}
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
