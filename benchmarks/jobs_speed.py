"""Two testbed-sized runs on this machine: one after another with all threads, or side by side with one
thread each (what ``advunlearn batch --jobs auto`` does on a CPU machine)?

    python benchmarks/jobs_speed.py            # prints both wall times and their ratio

The work unit is a slice of a testbed run: 2 epochs of the testbed's MLP pretraining recipe (5,000
Fashion-MNIST images, batch 64) plus 30 attacker training steps (batch 128), in a fresh process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNIT = r"""
import torch, time
from advunlearn.core.train import resolve_device, fit
from advunlearn.core.config import TrainConfig, AttackerConfig
from advunlearn.core.data import load_dataset
from advunlearn.core.models import build_model
from advunlearn.dau.attacker import Attacker, make_attacker_optimizer
resolve_device("cpu")
d = load_dataset("fashion-mnist", None, "cpu")
torch.manual_seed(0)
m = build_model("mlp", 10, 1, 28)
fit(m, d, torch.arange(5000), TrainConfig(epochs=2, lr=0.05, batch_size=64, augment=False), progress=False)
a = Attacker(10, AttackerConfig()); opt = make_attacker_optimizer(a.parameters(), 1e-3, 0.9, 5e-4)
tok = torch.rand(128, 10, 3); tgt = (torch.arange(128) < 64).float(); bce = torch.nn.BCEWithLogitsLoss()
for _ in range(30):
    loss = bce(a(tok), tgt); opt.zero_grad(); loss.backward(); opt.step()
"""


def unit(threads: int) -> subprocess.Popen:
    env = {**os.environ, "ADVUNLEARN_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": str(ROOT), "ADVUNLEARN_PROGRESS": "0"}
    return subprocess.Popen([sys.executable, "-c", UNIT], env=env)


def main():
    cores = os.cpu_count() or 1
    print(f"{cores} cores, load {os.getloadavg()[0]:.2f}", flush=True)
    res = {"seq": [], "par": []}
    for rep in range(2):  # interleaved A/B
        t = time.perf_counter()
        for _ in range(2):
            assert unit(cores).wait() == 0
        res["seq"].append(time.perf_counter() - t)
        t = time.perf_counter()
        ps = [unit(1) for _ in range(2)]
        assert all(p.wait() == 0 for p in ps)
        res["par"].append(time.perf_counter() - t)
        print(f"rep {rep}: sequential ({cores} threads each) {res['seq'][-1]:.1f}s, side by side (1 thread each) "
              f"{res['par'][-1]:.1f}s -> {res['seq'][-1] / res['par'][-1]:.2f}x", flush=True)
    print(f"load after {os.getloadavg()[0]:.2f}; best of each: sequential {min(res['seq']):.1f}s, side by side "
          f"{min(res['par']):.1f}s -> side by side is {min(res['seq']) / min(res['par']):.2f}x as fast")


if __name__ == "__main__":
    main()
