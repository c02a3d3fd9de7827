"""One-shot magnitude pruning (OMP) and keeping its mask exact through later training."""

from __future__ import annotations

import torch
from torch import nn

from .config import check_range


def prunable(model: nn.Module) -> dict[str, nn.Parameter]:
    """Convolution weights and, outside the classifier, hidden linear weights; norms and ``fc`` stay dense."""
    out = {}
    for mname, m in model.named_modules():
        if mname == "fc" or mname.startswith("fc."):
            continue
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            out[f"{mname}.weight"] = m.weight
    return out


@torch.no_grad()
def omp(model: nn.Module, sparsity: float = 0.95) -> dict[str, torch.Tensor]:
    """Zero the globally smallest-magnitude ``sparsity`` share of prunable weights; return the masks.

    Exactly ``round(sparsity * total)`` weights are removed (ties broken by position).
    """
    check_range("sparsity", sparsity, 0, 1, hi_open=True)
    params = prunable(model)
    if not params:
        raise ValueError(f"{type(model).__name__} has no prunable weights")
    flat = torch.cat([p.detach().abs().flatten().float().cpu() for p in params.values()])
    k = round(sparsity * flat.numel())
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if k > 0:
        order = torch.argsort(flat, stable=True)
        keep[order[:k]] = False
    masks, i = {}, 0
    for name, p in params.items():
        n = p.numel()
        masks[name] = keep[i:i + n].view_as(p).to(p.device)
        i += n
    apply_masks(model, masks)
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Multiply each masked weight by its mask (pruned weights back to exactly zero)."""
    params = dict(model.named_parameters())
    for name, m in masks.items():
        p = params[name]
        if m.device != p.device:
            m = masks[name] = m.to(p.device)
        p.mul_(m)


def masks_from_model(model: nn.Module) -> dict[str, torch.Tensor]:
    """Recover masks from a pruned model's exact zeros (used after loading a sparse checkpoint)."""
    return {n: (p != 0) for n, p in prunable(model).items()}


def sparsity_of(model: nn.Module) -> float:
    """Share of exactly-zero weights among the prunable ones."""
    ps = list(prunable(model).values())
    zeros = sum(int((p == 0).sum()) for p in ps)
    return zeros / sum(p.numel() for p in ps)


__all__ = ["omp", "apply_masks", "masks_from_model", "sparsity_of", "prunable"]
