"""Wall time of every unlearning method as a fraction of Retrain's, and peak memory, in one run.

    python benchmarks/unlearning_cost.py --dataset digits --profile cpu
    python benchmarks/unlearning_cost.py --dataset fashion-mnist --profile cpu --scheme random
    python benchmarks/unlearning_cost.py --dataset fashion-mnist --profile gpu --device cuda

Everything is computed fresh in a temporary store (nothing reused), so each number is a real
cost on this machine.  "ours" includes attacker pretraining.  Peak memory is the process's peak
RSS on CPU and ``torch.cuda.max_memory_allocated`` on CUDA.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advunlearn.experiments.experiment import Experiment  # noqa: E402
from advunlearn.evaluation.metrics import evaluate  # noqa: E402
from advunlearn.experiments.runner import ALL_METHODS, run_method  # noqa: E402


def peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--scheme", default="random")
    ap.add_argument("--sparsity", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--methods", default=",".join(m for m in ALL_METHODS if m != "ours_no_vss"))
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        exp = Experiment(dataset=a.dataset, scheme=a.scheme, sparsity=a.sparsity, seed=a.seed, profile=a.profile,
                         device=a.device, results=tmp, progress=False)
        t0 = time.perf_counter()
        exp.original()
        pretrain_s = time.perf_counter() - t0
        rows = {}
        for m in a.methods.split(","):
            if exp.dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            model, info = run_method(exp, m)
            if exp.dev.type == "cuda":
                torch.cuda.synchronize()
            wall = time.perf_counter() - t0
            res = evaluate(model, exp, info.get("run_time_s"), attacks=False)
            rows[m] = {"wall_s": round(wall, 3), "run_time_s": round(info.get("run_time_s") or wall, 3),
                       "peak_mem_mb": round(peak_mem_mb(exp.dev), 1),
                       **{k: round(res[k], 2) for k in ("UA", "RA", "TA", "MIA_efficacy")}}
    base = rows.get("retrain", {}).get("run_time_s")
    print(f"{a.dataset} / {a.profile} / {a.scheme} / sparsity {a.sparsity:g} on {exp.dev}"
          f" (original model trained in {pretrain_s:.1f}s)")
    print(f"{'method':12s} {'time s':>8s} {'/Retrain':>9s} {'peak MB':>9s}   UA     RA     TA    MIA")
    for m, r in rows.items():
        frac = f"{r['run_time_s'] / base:9.3f}" if base else "      n/a"
        r["fraction_of_retrain"] = round(r["run_time_s"] / base, 4) if base else None
        print(f"{m:12s} {r['run_time_s']:8.2f} {frac} {r['peak_mem_mb']:9.1f}  {r['UA']:5.1f}  {r['RA']:5.1f}  "
              f"{r['TA']:5.1f}  {r['MIA_efficacy']:5.1f}")
    out = {"dataset": a.dataset, "profile": a.profile, "scheme": a.scheme, "sparsity": a.sparsity,
           "device": str(exp.dev), "pretrain_s": round(pretrain_s, 2), "methods": rows}
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
