"""One seed of one scheme on the testbed, every method evaluated, from nothing: its wall time.

    python benchmarks/one_seed.py                          # fashion-mnist/cpu, random, dense, seed 0; workers 1 then 2
    python benchmarks/one_seed.py --scheme class --sparsity 0.95 --workers 2

For each ``--workers`` value, in a fresh store of its own: θ0 is trained (timed apart), then
:func:`advunlearn.experiments.runner.run_experiment` runs and evaluates every registered method (UA, RA, TA,
MIA-efficacy and Figure 2's five SVC attacks; the strong attacks aside), as notebook 04 does.
``workers=1`` is one process with every core's threads (the environment's ``ADVUNLEARN_THREADS``,
else all cores); ``workers=N`` is N single-thread processes.  Prints each configuration's wall time,
the CPU time of the process and its workers, the ratio between them, and each method's Avg. Disparity
to Retrain in both (one process with two threads rounds differently from single-thread workers, and
40 epochs of training carry that into every number; at equal thread counts the records are identical,
``tests/test_runner_workers.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ADVUNLEARN_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def one(a, workers: int, root: str) -> dict:
    import torch

    from advunlearn.experiments.experiment import Experiment
    from advunlearn.experiments.runner import run_experiment

    exp = Experiment(dataset=a.dataset, profile=a.profile, scheme=a.scheme, sparsity=a.sparsity, seed=a.seed,
                     device="cpu", results=root, progress=False)
    c0, t0 = _cpu(), time.perf_counter()
    exp.original()
    t_orig = time.perf_counter() - t0
    recs = run_experiment(exp, log=lambda s: print(s, flush=True), workers=workers)
    wall = time.perf_counter() - t0
    return {"workers": workers, "threads": torch.get_num_threads(), "theta0_s": t_orig, "wall_s": wall,
            "cpu_s": _cpu() - c0, "records": {r["method"]: r for r in recs}}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--scheme", default="random")
    ap.add_argument("--sparsity", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    print(f"{a.dataset}/{a.profile} {a.scheme} sparsity {a.sparsity:g} seed {a.seed}; {os.cpu_count()} cores; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for w in a.workers:
        with tempfile.TemporaryDirectory(prefix="advunlearn-one-seed-") as tmp:
            print(f"workers {w}:", flush=True)
            rows.append(one(a, w, tmp))
        r = rows[-1]
        print(f"workers {w} ({r['threads']} thread(s) in the main process): θ0 {r['theta0_s']:.1f}s, every method "
              f"evaluated {r['wall_s'] - r['theta0_s']:.1f}s, in all {r['wall_s']:.1f}s wall = {r['wall_s'] / 60:.2f} min, "
              f"{r['cpu_s']:.1f} CPU s; load {os.getloadavg()[0]:.2f}", flush=True)
    if len(rows) > 1:
        from advunlearn.evaluation.metrics import avg_disparity

        base = rows[0]
        for r in rows[1:]:
            print(f"workers {r['workers']} / workers {base['workers']}: wall {r['wall_s'] / base['wall_s']:.2f}x "
                  f"({base['wall_s'] / r['wall_s']:.2f}x faster)")
            # a different thread count rounds differently, and 40 epochs of training carry that into other
            # numbers: compare each method's Avg. Disparity to its own run's Retrain, against the noise floor
            print("  Avg. Disparity to Retrain: " + ", ".join(
                f"{m} {avg_disparity(base['records'][m], base['records']['retrain']):.2f}/"
                f"{avg_disparity(r['records'][m], r['records']['retrain']):.2f}"
                for m in base["records"] if m in r["records"] and "retrain" in r["records"]))
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "rows": rows}, indent=1, default=str))
    return rows


if __name__ == "__main__":
    main()
