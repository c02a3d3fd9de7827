"""Training images/s: our device-resident loop vs a plain torchvision-style DataLoader loop.

Same model, same batch size, same optimiser, same augmentation, measured in one run; prints the
ratio.  Usage:

    python benchmarks/train_throughput.py --dataset fashion-mnist --model cnn --steps 100
    python benchmarks/train_throughput.py --dataset cifar10 --model resnet18 --device cuda   # on a GPU

Without CIFAR files, ``--dataset synthetic32`` uses random 3x32x32 images (throughput does not
depend on pixel values).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from advunlearn.core.config import TrainConfig  # noqa: E402
from advunlearn.core.data import AUGMENT, NORMALISATION, Dataset, load_dataset  # noqa: E402
from advunlearn.core.models import build_model  # noqa: E402
from advunlearn.core.train import autocast, fit, resolve_device  # noqa: E402


def synthetic(n: int, device) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return Dataset("cifar10", x.to(device), y.to(device), n, 10)


class ImageFolderLike(torch.utils.data.Dataset):
    """What a torchvision-style pipeline does: uint8 HWC images, per-sample PIL transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, name: str):
        import torchvision.transforms as T
        from PIL import Image

        self.images, self.labels, self.Image = images, labels, Image
        pad, flip = AUGMENT[name]
        mean, std = NORMALISATION[name]
        ts = [T.RandomCrop(images.shape[1], padding=pad)] if pad else []
        ts += [T.RandomHorizontalFlip()] if flip else []
        self.tf = T.Compose(ts + [T.ToTensor(), T.Normalize(mean, std)])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        img = self.images[i]
        img = self.Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        return self.tf(img), int(self.labels[i])


def to_uint8_hwc(ds: Dataset, n: int) -> np.ndarray:
    mean = torch.tensor(NORMALISATION[ds.name][0]).view(1, -1, 1, 1)
    std = torch.tensor(NORMALISATION[ds.name][1]).view(1, -1, 1, 1)
    x = (ds.x[:n].cpu() * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def dataloader_loop(model, ds: Dataset, n: int, batch: int, steps: int, device, workers: int) -> float:
    data = ImageFolderLike(to_uint8_hwc(ds, n), ds.y[:n].cpu().numpy(), ds.name)
    dl = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                     pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    crit = nn.CrossEntropyLoss()
    model.to(device).train()
    done, t0 = 0, None
    while done < steps + 5:
        for xb, yb in dl:
            if done == 5:  # warm-up steps excluded
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with autocast(device):
                loss = crit(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()  # what a typical loop does to log
            done += 1
            if done >= steps + 5:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def our_loop(model, ds: Dataset, n: int, batch: int, steps: int, device, compile: bool = False) -> float:
    idx = torch.arange(n)
    epochs = max(1, -(-(steps + 5) * batch // n))
    cfg = TrainConfig(epochs=epochs, lr=0.01, batch_size=batch, schedule="constant", augment=True)
    # time only the steady state: run once briefly to warm up, then the measured run
    # (with compile=True the warm-up also pays the compilation, which is reported separately)
    fit(model, ds, idx[: batch * 5], cfg.updated(epochs=1), seed=0, progress=False, compile=compile)
    info = fit(model, ds, idx, cfg, seed=0, progress=False, compile=compile)
    return info["steps"] * batch / info["time_s"]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist", help="digits, fashion-mnist, cifar10, cifar100 or synthetic32")
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--n", type=int, default=None, help="training images used (default: enough for the steps)")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the baseline loop")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ours-only", action="store_true",
                    help="time only our loop (for several processes sharing one GPU)")
    ap.add_argument("--compile", action="store_true", help="also time our loop under torch.compile (CUDA)")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    a = ap.parse_args(argv)
    device = resolve_device(a.device)
    n = a.n or (a.steps + 5) * a.batch
    ds = synthetic(n, device) if a.dataset == "synthetic32" else load_dataset(a.dataset, device=device)
    n = min(n, ds.n_pool)
    torch.manual_seed(0)
    m1 = build_model(a.model, ds.num_classes, ds.in_channels, ds.image_size)
    m2 = build_model(a.model, ds.num_classes, ds.in_channels, ds.image_size)
    m2.load_state_dict(m1.state_dict())
    ours = our_loop(m2, ds, n, a.batch, a.steps, device)
    if a.ours_only:
        print(f"{a.model} on {a.dataset} ({device}, batch {a.batch}): ours {ours:,.0f} img/s", flush=True)
        return {"device": str(device), "model": a.model, "batch": a.batch, "ours_img_s": round(ours, 1)}
    base = dataloader_loop(m1, ds, n, a.batch, a.steps, device, a.workers)
    extra = {}
    if a.compile:
        m3 = build_model(a.model, ds.num_classes, ds.in_channels, ds.image_size)
        m3.load_state_dict(m1.state_dict())
        t0 = time.perf_counter()
        compiled = our_loop(m3, ds, n, a.batch, a.steps, device, compile=True)
        extra = {"ours_compiled_img_s": round(compiled, 1), "compiled_vs_eager": round(compiled / ours, 2),
                 "compile_total_s": round(time.perf_counter() - t0, 1)}
        print(f"  torch.compile: {compiled:,.0f} img/s -> {compiled / ours:.2f}x our eager loop "
              f"({extra['compile_total_s']}s including compilation)")
    out = {"device": str(device), "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
           "dataset": a.dataset, "model": a.model, "batch": a.batch, "dataloader_img_s": round(base, 1),
           "ours_img_s": round(ours, 1), "ratio": round(ours / base, 2), "torch": torch.__version__,
           "threads": torch.get_num_threads(), **extra}
    print(f"{a.model} on {a.dataset} ({device}, batch {a.batch}): DataLoader loop {base:,.0f} img/s, "
          f"ours {ours:,.0f} img/s -> ratio {ours / base:.2f}x")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
