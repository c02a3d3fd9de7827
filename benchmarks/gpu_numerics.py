"""Two numerical facts on CUDA, measured rather than assumed.

1. Reproducibility: ResNet-18 trained twice with the same seed (split, initialisation, batch order,
   augmentation), with the default fast settings, and twice with
   ``torch.use_deterministic_algorithms(True)``: are the weights bit-identical, and how far apart?
2. TF32: the attacker's sensitivity feature (10 noisy copies at noise 1e-3) with cuDNN's default
   TF32 convolutions vs true fp32 convolutions, on the same model, samples and noise.

    python benchmarks/gpu_numerics.py --data-root benchmarks/data/fashion-mnist --out numerics.json

On a CPU (``--device cpu --dataset digits --model mlp``) it checks the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
os.environ.setdefault("ADVUNLEARN_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from advunlearn.dau.attacker import attack_features  # noqa: E402
from advunlearn.core.config import TrainConfig  # noqa: E402
from advunlearn.core.data import load_dataset, make_splits  # noqa: E402
from advunlearn.core.models import build_model  # noqa: E402
from advunlearn.core.train import accuracy, fit  # noqa: E402


def train(data, splits, model_name: str, epochs: int, deterministic: bool) -> tuple[dict, float, float]:
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = not deterministic
    try:
        torch.manual_seed(0)
        model = build_model(model_name, data.num_classes, data.in_channels, data.image_size)
        info = fit(model, data, splits.train, TrainConfig(epochs=epochs, lr=0.1, batch_size=512, warmup_epochs=0),
                   seed=0, progress=False)
        acc = accuracy(model, data, splits.test)
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = False
    return {k: v.detach().float().cpu() for k, v in model.state_dict().items()}, info["time_s"], acc


def compare(a: dict, b: dict) -> dict:
    diffs = [float((a[k] - b[k]).abs().max()) for k in a if a[k].is_floating_point()]
    return {"bit_identical": all(torch.equal(a[k], b[k]) for k in a), "max_abs_weight_diff": max(diffs)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(Path(__file__).parent / "data" / "fashion-mnist"))
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--n", type=int, default=2000, help="samples for the sensitivity comparison")
    ap.add_argument("--out", default="gpu_numerics.json")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    data = load_dataset(a.dataset, root=a.data_root if a.dataset == "fashion-mnist" else None, device=a.device)
    splits = make_splits(data, "random", seed=0)
    out: dict = {"device": a.device, "gpu": torch.cuda.get_device_name() if a.device == "cuda" else None,
                 "torch": torch.__version__, "dataset": a.dataset, "model": a.model, "epochs": a.epochs}
    runs = {}
    for mode in ("default", "deterministic"):
        try:
            (w1, t1, acc1), (w2, t2, acc2) = (train(data, splits, a.model, a.epochs, mode == "deterministic")
                                              for _ in range(2))
            runs[mode] = {**compare(w1, w2), "time_s": [round(t1, 2), round(t2, 2)],
                          "test_acc": [round(acc1, 2), round(acc2, 2)]}
        except Exception as e:  # noqa: BLE001 - e.g. an op without a deterministic kernel
            runs[mode] = {"error": f"{type(e).__name__}: {e}"}
        print(mode, runs[mode], flush=True)
    out["reproducibility"] = runs

    # TF32 vs fp32 convolutions in the sensitivity's noisy forward passes
    torch.manual_seed(0)
    model = build_model(a.model, data.num_classes, data.in_channels, data.image_size)
    fit(model, data, splits.train, TrainConfig(epochs=a.epochs, lr=0.1, batch_size=512, warmup_epochs=0), seed=0,
        progress=False)
    idx = splits.train[: a.n]
    feats, times = {}, {}
    for tf32 in (True, False):
        g = torch.Generator(device=a.device).manual_seed(1)
        with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=False, allow_tf32=tf32):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            if a.device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            feats[tf32] = attack_features(model, data, idx, generator=g).float().cpu()
            if a.device == "cuda":
                torch.cuda.synchronize()
            times[tf32] = time.perf_counter() - t
    torch.backends.cuda.matmul.allow_tf32 = False
    s32, s_tf = feats[False][..., 1], feats[True][..., 1]          # per-class sensitivity
    m32, m_tf = s32.mean(1), s_tf.mean(1)                          # per-sample mean sensitivity
    rel = ((s_tf - s32).abs() / s32.abs().clamp_min(1e-12)).flatten()
    corr = float(torch.corrcoef(torch.stack([m32.log10(), m_tf.log10()]))[0, 1])
    out["tf32_sensitivity"] = {
        "n": len(idx), "median_rel_diff": float(rel.median()), "p90_rel_diff": float(rel.quantile(0.9)),
        "corr_log10_mean_sensitivity": corr,
        "max_abs_diff_probabilities": float((feats[True][..., 0] - feats[False][..., 0]).abs().max()),
        "time_s_tf32": round(times[True], 3), "time_s_fp32": round(times[False], 3)}
    print("tf32", out["tf32_sensitivity"], flush=True)
    out["total_s"] = round(time.perf_counter() - t0, 1)
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
