"""The prepared GPU check: one command, under 8 minutes, on a bare CUDA machine.

Needs only torch, torchvision, scikit-learn and safetensors (no notebook packages, no internet) and
the Fashion-MNIST IDX files in a folder beside the repo::

    python benchmarks/gpu_check.py --data-root benchmarks/data/fashion-mnist --out gpu_check.json

(`bash benchmarks/prepare_gpu_data.sh` copies the files there from Debian's dataset-fashion-mnist.)
It runs, for one seed and reduced epochs: the training-throughput comparison (ours vs a plain
DataLoader loop, ResNet-18, batch 512), ResNet-18 pretraining, Retrain and every unlearning method,
each evaluated; and writes a JSON with images/s, each method's time and fraction of Retrain, peak
GPU memory and the metrics.  ``--smoke`` shrinks everything so the script itself can be checked on
a CPU in a minute.
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

from advunlearn.config import AttackerConfig, TrainConfig  # noqa: E402
from advunlearn.experiment import Experiment  # noqa: E402
from advunlearn.metrics import evaluate  # noqa: E402
from advunlearn.runner import run_method  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(Path(__file__).parent / "data" / "fashion-mnist"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--epochs", type=int, default=10, help="pretraining/Retrain epochs (reduced from the paper's 182)")
    ap.add_argument("--methods", default="retrain,ft,ga,ff,iu,ours")
    ap.add_argument("--scheme", default="random")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script on a CPU")
    ap.add_argument("--out", default="gpu_check.json")
    a = ap.parse_args(argv)
    t_start = time.perf_counter()
    dev = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if a.device == "auto" else a.device))
    out: dict = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "python": platform.python_version(),
                 "device": str(dev), "gpu": torch.cuda.get_device_name() if dev.type == "cuda" else None}
    dataset = "digits" if a.smoke else "fashion-mnist"
    model = "mlp" if a.smoke else "resnet18"
    epochs = 2 if a.smoke else a.epochs

    # 1. throughput: ours vs DataLoader, same model and batch
    import importlib.util

    spec = importlib.util.spec_from_file_location("tp", Path(__file__).parent / "train_throughput.py")
    tp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tp)
    argv_tp = ["--dataset", "synthetic32" if not a.smoke else "digits", "--model", model,
               "--batch", "512" if not a.smoke else "64", "--steps", "60" if not a.smoke else "10",
               "--device", str(dev.type), "--workers", "4" if dev.type == "cuda" else "0"]
    out["throughput"] = tp.main(argv_tp)

    # 2. one seed of Table 1 at reduced epochs
    over = {"model": model,
            "pretrain": TrainConfig(epochs=epochs, lr=0.1, batch_size=512 if not a.smoke else 64, warmup_epochs=0 if a.smoke else 1,
                                    augment=not a.smoke),
            "finetune": TrainConfig(epochs=max(1, epochs // 5), lr=0.01, batch_size=512 if not a.smoke else 64),
            "ga": TrainConfig(epochs=1, lr=5e-4, batch_size=512 if not a.smoke else 64)}
    if a.smoke:
        over["attacker"] = AttackerConfig(iterations=50)
    with tempfile.TemporaryDirectory() as tmp:
        exp = Experiment(dataset=dataset, scheme=a.scheme, seed=0, profile="gpu", device=str(dev), results=tmp,
                         data_root=None if a.smoke else a.data_root, progress=False, profile_overrides=over)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        original, meta = exp.original()
        out["pretrain"] = {"time_s": round(meta["time_s"], 2), "epochs": epochs,
                           "img_per_s": round(len(exp.splits.train) * epochs / meta["time_s"], 1),
                           **{k: round(v, 2) for k, v in exp.accuracies(original).items()}}
        print(f"pretrain: {out['pretrain']}", flush=True)
        rows = {}
        for m in a.methods.split(","):
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            model_u, info = run_method(exp, m)
            wall = time.perf_counter() - t0
            res = evaluate(model_u, exp, info.get("run_time_s"), attacks=False)
            rows[m] = {"run_time_s": round(info.get("run_time_s") or wall, 2), "wall_s": round(wall, 2),
                       "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if dev.type == "cuda" else None,
                       "hparams": info.get("hparams"),
                       **{k: round(res[k], 2) for k in ("UA", "RA", "TA", "MIA_efficacy")}}
            print(f"{m}: {rows[m]}", flush=True)
        base = rows.get("retrain", {}).get("run_time_s")
        for r in rows.values():
            r["fraction_of_retrain"] = round(r["run_time_s"] / base, 4) if base else None
        out["methods"] = rows
    out["total_s"] = round(time.perf_counter() - t_start, 1)
    Path(a.out).write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps({k: v for k, v in out.items() if k != "methods"}, indent=1, default=str))
    print(f"wrote {a.out} in {out['total_s']}s")
    return out


if __name__ == "__main__":
    main()
