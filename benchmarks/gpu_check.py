"""The prepared GPU check: one command, under 8 minutes, on a bare CUDA machine.

Needs only torch, torchvision, scikit-learn and safetensors (no notebook packages, no internet) and
the Fashion-MNIST IDX files in a folder beside the repo::

    python benchmarks/gpu_check.py --data-root benchmarks/data/fashion-mnist --out gpu_check.json

(`bash benchmarks/prepare_gpu_data.sh` copies the files there from Debian's dataset-fashion-mnist.)
It runs, for one seed and reduced epochs: the training-throughput comparison (ours vs a plain
DataLoader loop, ResNet-18, batch 512), ResNet-18 pretraining, Retrain and every unlearning method,
each evaluated; and writes a JSON with images/s, each method's time and fraction of Retrain, peak
GPU memory and the metrics.  ``--smoke`` shrinks everything (digits instead of Fashion-MNIST, one
epoch, five attacker and unlearning iterations of batch 16; still ResNet-18) so the whole script
can be checked on a CPU in minutes (tests/test_gpu_check.py does, with the notebook packages hidden).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ADVUNLEARN_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from advunlearn.core.config import AttackerConfig, TrainConfig  # noqa: E402
from advunlearn.experiments.profiles import PAPER_UNLEARN
from advunlearn.experiments.experiment import Experiment  # noqa: E402
from advunlearn.evaluation.metrics import evaluate  # noqa: E402
from advunlearn.experiments.runner import run_method  # noqa: E402


def _save(out: dict, path: str) -> None:
    Path(path).write_text(json.dumps(out, indent=2, default=str))


class SectionTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise SectionTimeout("ran past its time limit")


def _section(out: dict, name: str, path: str, fn, limit_s: float | None = None, into: dict | None = None):
    """Run one section; a failure or a section past ``limit_s`` is recorded and the check goes on.

    The result goes to ``into[name]`` (default ``out[name]``); its time and any error go to ``out``,
    which is then saved whole to ``path``.
    """
    import signal

    t0 = time.perf_counter()
    if limit_s:
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, max(1.0, limit_s))
    try:
        (out if into is None else into)[name] = fn()
    except Exception as e:  # noqa: BLE001 - a broken section must not lose the others' numbers
        import traceback

        traceback.print_exc()
        out.setdefault("errors", {})[name] = f"{type(e).__name__}: {e}"
    finally:
        if limit_s:
            signal.setitimer(signal.ITIMER_REAL, 0)
    out.setdefault("section_s", {})[name] = round(time.perf_counter() - t0, 1)
    _save(out, path)
    print(f"[{name}] done in {out['section_s'][name]}s", flush=True)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(Path(__file__).parent / "data" / "fashion-mnist"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--epochs", type=int, default=10, help="pretraining/Retrain epochs (reduced from the paper's 182)")
    ap.add_argument("--paper-epochs", type=int, default=182,
                    help="Retrain's epoch count at the paper's scale, for the extrapolated fractions")
    ap.add_argument("--methods", default="retrain,ft,ga,ours,ff,iu")
    ap.add_argument("--method-limit-s", type=float, default=120.0, help="stop one method after this long")
    ap.add_argument("--ff-samples", type=int, default=1000,
                    help="retain samples of FF's Fisher diagonal (all of D_r takes hours for ResNet-18)")
    ap.add_argument("--iu-samples", type=int, default=1000, help="per-sample gradients in IU's WoodFisher")
    ap.add_argument("--scheme", default="random")
    ap.add_argument("--max-train", type=int, default=None, help="subsample the training pool (dry runs)")
    ap.add_argument("--budget-s", type=float, default=420.0,
                    help="skip the remaining methods and the compile measurement once this much time has passed")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile throughput measurement")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, to check the whole script on a CPU")
    ap.add_argument("--out", default="gpu_check.json")
    a = ap.parse_args(argv)
    t_start = time.perf_counter()
    dev = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if a.device == "auto" else a.device))
    out: dict = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "python": platform.python_version(),
                 "device": str(dev), "gpu": torch.cuda.get_device_name() if dev.type == "cuda" else None,
                 "cpu_threads": torch.get_num_threads(), "args": vars(a)}
    # the smoke run keeps ResNet-18 (every method's code path on it) but takes digits (8x8, 1,797
    # images) so that evaluating it on a CPU takes seconds
    dataset, model = ("digits" if a.smoke else "fashion-mnist"), "resnet18"
    epochs = 1 if a.smoke else a.epochs
    bs = 64 if a.smoke else 512
    if a.smoke:
        a.ff_samples, a.iu_samples = min(a.ff_samples, 20), min(a.iu_samples, 20)

    def left() -> float:
        return a.budget_s - (time.perf_counter() - t_start)

    tp = _load_throughput()
    tp_args = ["--dataset", "digits" if a.smoke else "synthetic32", "--model", model, "--batch", str(bs),
               "--steps", "3" if a.smoke else "60", "--device", dev.type,
               "--workers", "4" if dev.type == "cuda" else "0"]

    # 1. throughput: ours vs DataLoader, same model and batch
    _section(out, "throughput", a.out, lambda: tp.main(tp_args))

    # 2. one seed of Table 1 at reduced epochs
    over = {"model": model,
            "pretrain": TrainConfig(epochs=epochs, lr=0.1, batch_size=bs, warmup_epochs=0 if a.smoke else 1),
            "finetune": TrainConfig(epochs=max(1, epochs // 5), lr=0.01, batch_size=bs),
            "ga": TrainConfig(epochs=1, lr=5e-4, batch_size=bs),
            "max_train": a.max_train}
    if a.smoke:
        over["attacker"] = AttackerConfig(iterations=5)
        over["unlearn"] = {k: v.updated(iterations=5, batch_size=16) for k, v in PAPER_UNLEARN.items()}
    with tempfile.TemporaryDirectory() as tmp:
        exp = Experiment(dataset=dataset, scheme=a.scheme, seed=0, profile="gpu", device=str(dev), results=tmp,
                         data_root=None if a.smoke else a.data_root, progress=False, profile_overrides=over)

        def pretrain():
            _reset_peak(dev)
            original, meta = exp.original()
            return {"time_s": round(meta["time_s"], 2), "epochs": epochs, "train_n": len(exp.splits.train),
                    "img_per_s": round(len(exp.splits.train) * epochs / meta["time_s"], 1),
                    "peak_gpu_mb": _peak(dev), **{k: round(v, 2) for k, v in exp.accuracies(original).items()}}

        _section(out, "pretrain", a.out, pretrain)
        out["methods"] = {}
        for m in a.methods.split(","):
            if left() < 0:
                out.setdefault("skipped", []).append(m)
                continue

            def one(m=m):
                _reset_peak(dev)
                t0 = time.perf_counter()
                opts = {"ff": {"max_samples": a.ff_samples}, "iu": {"n_samples": a.iu_samples}}.get(m, {})
                model_u, info = run_method(exp, m, **opts)
                wall = time.perf_counter() - t0
                res = evaluate(model_u, exp, info.get("run_time_s"), attacks=False)
                return {"run_time_s": round(info.get("run_time_s") or wall, 2), "wall_s": round(wall, 2),
                        "peak_gpu_mb": _peak(dev), "hparams": info.get("hparams"),
                        **({"attacker": info["attacker"]} if "attacker" in info else {}),
                        **{k: round(res[k], 2) for k in ("UA", "RA", "TA", "MIA_efficacy")}}

            _section(out, m, a.out, one, limit_s=min(a.method_limit_s, max(left(), 1.0)), into=out["methods"])
            print(f"{m}: {out['methods'].get(m)}", flush=True)
        rows = out["methods"]
        base = rows.get("retrain", {}).get("run_time_s")
        for r in rows.values():
            if base:
                r["fraction_of_retrain"] = round(r["run_time_s"] / base, 4)
                # Retrain scales linearly with its epochs; the methods do not depend on them.
                r["fraction_of_retrain_at_paper_epochs"] = round(
                    r["run_time_s"] / (base * a.paper_epochs / epochs), 4)
        _save(out, a.out)

    # 3. torch.compile: does it pay for the training loop?
    if not a.no_compile and dev.type == "cuda" and left() > 60:
        _section(out, "throughput_compiled", a.out, lambda: tp.main(tp_args + ["--compile"]))
    out["total_s"] = round(time.perf_counter() - t_start, 1)
    _save(out, a.out)
    print(json.dumps({k: v for k, v in out.items() if k != "methods"}, indent=1, default=str))
    print(f"wrote {a.out} in {out['total_s']}s")
    return out


def _load_throughput():
    import importlib.util

    spec = importlib.util.spec_from_file_location("tp", Path(__file__).parent / "train_throughput.py")
    tp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tp)
    return tp


def _reset_peak(dev) -> None:
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _peak(dev):
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if dev.type == "cuda" else None


if __name__ == "__main__":
    main()
