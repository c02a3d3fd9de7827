"""The attacker's cost on digits: 1,000 attacker pretraining iterations plus 300 iterations of
Algorithm 1 with the MLP defender, against a 10 s target, and the floor the arithmetic sets.

    python benchmarks/attacker_speed.py                  # all cores
    ADVUNLEARN_THREADS=1 python benchmarks/attacker_speed.py

θ0 is trained first (not timed).  Then, timed: ``pretrain_attacker`` with 1,000 iterations (the
feature pass included) and 300 iterations of Algorithm 1 (``history.method_time_s``: the records'
evaluation left out; the unlearning batch of the digits CPU profile).  The script also counts the
attacker's floating-point work (matrix products only) and times one matrix product of the
attacker's largest shape, so it can print the time the work would take if every FLOP ran at that
product's rate: a floor no implementation of this attacker on this machine gets under.

``--compile`` instead times one attacker training step eager and under ``torch.compile``
(the first compiled steps include the compilation; a warm on-disk cache shortens a second run).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advunlearn.dau.attacker import pretrain_attacker  # noqa: E402
from advunlearn.core.config import AttackerConfig  # noqa: E402
from advunlearn.experiments.experiment import Experiment  # noqa: E402
from advunlearn.methods.ours import unlearn_config  # noqa: E402
from advunlearn.dau.unlearn import adversarial_unlearn  # noqa: E402


def attacker_forward_flops(n: int, k: int, cfg: AttackerConfig) -> float:
    """FLOPs of one attacker forward on ``n`` samples of ``k`` tokens (matrix products only)."""
    d, ff = cfg.d_model, cfg.ff
    per_token_layer = 3 * d * d + d * d + 2 * d * ff + 2 * k * d  # q/k/v, out, feed-forward, attention
    macs = n * (k * 3 * d + cfg.layers * k * per_token_layer + k * d * 64 + 64)
    return 2.0 * macs


def gemm_rate(m: int, kdim: int, n: int, reps: int = 200) -> float:
    """GFLOP/s of an (m x kdim) @ (kdim x n) fp32 product on this machine."""
    a, b = torch.randn(m, kdim), torch.randn(kdim, n)
    for _ in range(10):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2.0 * m * kdim * n * reps / (time.perf_counter() - t0) / 1e9


def compile_check(acfg: AttackerConfig, k: int = 10, steps: int = 200) -> dict:
    """ms per attacker training step (batch ``acfg.batch_size``, ``k`` tokens), eager vs torch.compile.

    Inductor compiles into an empty cache folder, so the first compiled steps include a cold
    compilation (a later process with a warm cache compiles in seconds)."""
    import os

    from advunlearn.dau.attacker import Attacker, make_attacker_optimizer
    from advunlearn.core.train import resolve_device

    resolve_device("cpu")  # ADVUNLEARN_THREADS
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")
    out = {"threads": torch.get_num_threads()}
    for mode in ("eager", "compiled"):
        torch.manual_seed(0)
        att = Attacker(k, acfg)
        opt = make_attacker_optimizer(att.parameters(), acfg.lr, acfg.momentum, acfg.weight_decay)
        fwd = torch.compile(att) if mode == "compiled" else att
        tok = torch.rand(acfg.batch_size, k, 3)
        tgt = (torch.arange(acfg.batch_size) < acfg.batch_size // 2).float()
        bce = torch.nn.BCEWithLogitsLoss()

        def step():
            loss = bce(fwd(tok), tgt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        t0 = time.perf_counter()
        for _ in range(3):
            step()
        out[f"{mode}_warmup_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        out[f"{mode}_ms_per_step"] = round((time.perf_counter() - t0) / steps * 1e3, 2)
    print(f"attacker training step, batch {acfg.batch_size}, {out['threads']} thread(s): eager "
          f"{out['eager_ms_per_step']} ms, torch.compile {out['compiled_ms_per_step']} ms "
          f"-> {out['eager_ms_per_step'] / out['compiled_ms_per_step']:.2f}x; first 3 compiled steps "
          f"{out['compiled_warmup_s']} s with a cold compile (eager {out['eager_warmup_s']} s)")
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attacker-iterations", type=int, default=1000)
    ap.add_argument("--unlearn-iterations", type=int, default=300)
    ap.add_argument("--target-s", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--compile", action="store_true",
                    help="also time one attacker training step eager vs under torch.compile (compilation timed)")
    a = ap.parse_args(argv)
    if a.compile:
        return compile_check(acfg=AttackerConfig())
    with tempfile.TemporaryDirectory() as tmp:
        exp = Experiment(dataset="digits", scheme="random", seed=a.seed, profile="cpu", device="cpu",
                         results=tmp, progress=False)
        original, _ = exp.original()
        acfg = exp.prof.attacker.updated(iterations=a.attacker_iterations)
        t0 = time.perf_counter()
        attacker, rep = pretrain_attacker(original, exp.data, exp.splits.train, exp.splits.val, acfg,
                                          seed=a.seed, progress=False)
        t_att = time.perf_counter() - t0
        ucfg = unlearn_config(exp, iterations=a.unlearn_iterations, record_every=a.unlearn_iterations)
        _, hist = adversarial_unlearn(copy.deepcopy(original), exp.data, exp.splits, ucfg, attacker=attacker,
                                      masks=None, seed=a.seed, progress=False)
        t_unl = hist.method_time_s
    k, bsz = exp.data.num_classes, acfg.batch_size
    fwd = attacker_forward_flops(bsz, k, acfg)
    # attacker step: forward + backward (about 3 forwards); defender step: forward + backward to the
    # inputs only (about 2 forwards), on 2 x the unlearning batch
    n_alg = 2 * ucfg.batch_size
    flops = (a.attacker_iterations * 3 * fwd
             + a.unlearn_iterations * (3 + 2) * attacker_forward_flops(n_alg, k, acfg))
    rate = gemm_rate(bsz * k, acfg.d_model, 3 * acfg.d_model)
    total = t_att + t_unl
    out = {"threads": torch.get_num_threads(), "attacker_iterations": a.attacker_iterations,
           "attacker_pretrain_s": round(t_att, 2), "attacker_feature_s": round(rep["feature_time_s"], 2),
           "unlearn_iterations": a.unlearn_iterations, "unlearn_s": round(t_unl, 2), "total_s": round(total, 2),
           "target_s": a.target_s, "ratio_to_target": round(total / a.target_s, 2),
           "attacker_gflop": round(flops / 1e9, 1), "gemm_gflops": round(rate, 1),
           "floor_s": round(flops / 1e9 / rate, 2), "achieved_gflops": round(flops / 1e9 / total, 1)}
    print(f"digits MLP defender, {out['threads']} thread(s): {a.attacker_iterations} attacker iterations "
          f"{t_att:.1f}s + {a.unlearn_iterations} unlearning iterations {t_unl:.1f}s = {total:.1f}s "
          f"-> {total / a.target_s:.2f}x the {a.target_s:g}s target")
    print(f"attacker work {out['attacker_gflop']} GFLOP (matrix products); this machine's sgemm "
          f"{out['gemm_gflops']} GFLOP/s -> floor {out['floor_s']}s; achieved {out['achieved_gflops']} GFLOP/s "
          f"({total / out['floor_s']:.2f}x the floor)")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
