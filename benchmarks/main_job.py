"""The main job end to end, in seconds: the demo grid (digits; random and class; dense and 95%
sparse; seed 0; every method) run in-process with a chosen profile, in a fresh store.

    python benchmarks/main_job.py --profile tiny     # the CPU target: under 2 minutes on 2 cores
    python benchmarks/main_job.py --profile cpu      # what `make demo` computes (minus notebook start-up)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ADVUNLEARN_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advunlearn.experiments.experiment import Experiment  # noqa: E402
from advunlearn.experiments.runner import run_experiment  # noqa: E402


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for scheme in ("random", "class"):
            for sp in (0.0, 0.95):
                t = time.perf_counter()
                exp = Experiment(dataset="digits", scheme=scheme, sparsity=sp, seed=0, profile=a.profile,
                                 device=a.device, results=tmp, progress=False)
                run_experiment(exp, log=None)
                print(f"{scheme:6s} sparsity {sp:<4g}: {time.perf_counter() - t:6.1f}s", flush=True)
    total = time.perf_counter() - t0
    import torch

    print(f"main job ({a.profile} profile, {a.device}, {torch.get_num_threads()} threads): {total:.1f}s end to end")
    return total


if __name__ == "__main__":
    main()
