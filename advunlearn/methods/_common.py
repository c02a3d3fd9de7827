"""What every unlearning method shares.

- :func:`start`: a deep copy of θ0 (the stored original is never touched) and its OMP masks;
- :func:`after_step`: re-applies the OMP masks after an optimiser step (pruned weights stay exactly 0)
  and, for methods that update only some weights (SalUn), restores the frozen ones bit for bit;
- :class:`Timer` (CUDA-synchronised wall time), :func:`progress` (a tqdm bar that respects
  ``exp.progress`` and ``ADVUNLEARN_PROGRESS=0``), :func:`sgd`, :func:`epoch_batches`;
- hyperparameter checks (:func:`positive`, :func:`fraction`, ...) that raise a ConfigError naming the
  method, the hyperparameter and the allowed range;
- per-sample gradients and diagonal Fisher matrices (:func:`fisher_diagonal`,
  :func:`batch_grad_importance`), shared by FF, IU and SSD.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from ..core.config import ConfigError, check_choice, check_range
from ..core.prune import apply_masks
from ..core.train import _progress, make_sgd, prepare_model


# ---------------------------------------------------------------------------------------------
# starting point, masks, timing, progress
# ---------------------------------------------------------------------------------------------
def start(exp) -> tuple[nn.Module, dict | None]:
    """A deep copy of θ0 in eval mode and its OMP masks (None for dense runs)."""
    theta0, _ = exp.original()
    model = copy.deepcopy(theta0)
    model.eval()
    return model, exp.masks(model)


@torch.no_grad()
def after_step(model: nn.Module, masks: dict | None, keep: tuple[dict, dict] | None = None) -> None:
    """After an optimiser step: pruned weights back to exactly 0; with ``keep = (update_mask, theta0)``
    every weight outside ``update_mask`` back to its value in ``theta0`` (bit-identical)."""
    if keep is not None:
        upd, base = keep
        for name, p in model.named_parameters():
            m = upd.get(name)
            if m is not None:
                p.copy_(torch.where(m, p, base[name]))
    if masks:
        apply_masks(model, masks)


def descend(model: nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor, masks: dict | None, bar=None,
            keep: tuple[dict, dict] | None = None) -> None:
    """One optimiser step on ``loss``, then :func:`after_step` (masks kept exact) and the progress bar."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    after_step(model, masks, keep)
    if bar is not None:
        bar.update(1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """Wall-clock timer that synchronises CUDA at both ends; ``seconds`` accumulates over uses."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.seconds = 0.0

    def __enter__(self):
        _sync(self.device)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        _sync(self.device)
        self.seconds += time.perf_counter() - self._t0
        return False


def progress(total: int, desc: str, enabled: bool):
    """A tqdm bar (None when ``enabled`` is false or ``ADVUNLEARN_PROGRESS=0``)."""
    return _progress(total, desc, enabled)


def sgd(model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4) -> torch.optim.SGD:
    """Jia et al.'s optimiser for every method: SGD with momentum and weight decay."""
    return make_sgd(model.parameters(), lr, momentum, weight_decay)


def generator(exp, offset: int = 0) -> torch.Generator:
    """A generator seeded by the experiment's seed (plus ``offset``) on the data's device."""
    dev = exp.data.device
    return torch.Generator(device=dev if dev.type == "cuda" else "cpu").manual_seed(int(exp.seed) + int(offset))


def epoch_batches(idx: torch.Tensor, batch_size: int, gen: torch.Generator, *,
                  drop_last: bool = True) -> Iterator[torch.Tensor]:
    """One epoch of shuffled batches of ``idx`` (on the data's device).  ``drop_last`` drops the
    ragged last batch, as :func:`advunlearn.core.train.fit` does, unless that would leave no batch."""
    n = len(idx)
    if n == 0:
        return
    bs = min(int(batch_size), n)
    perm = idx[torch.randperm(n, generator=gen, device=gen.device).to(idx.device)]
    stop = (n // bs) * bs if drop_last else n
    for i in range(0, stop, bs):
        yield perm[i:i + bs]


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, n // min(int(batch_size), max(1, n))) if n else 0


def cycle_batches(idx: torch.Tensor, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless shuffled batches of ``idx`` (a new permutation after each pass)."""
    while True:
        yield from epoch_batches(idx, batch_size, gen)


def augment_default(exp, augment: bool | None) -> bool:
    """``augment=None`` means: as the profile's pretraining recipe."""
    return bool(exp.prof.pretrain.augment) if augment is None else bool(augment)


def train_mode(model: nn.Module, device: torch.device) -> nn.Module:
    prepare_model(model, device)
    model.train()
    return model


# ---------------------------------------------------------------------------------------------
# hyperparameter checks: (method, name, value) -> normalised value, or a ConfigError
# ---------------------------------------------------------------------------------------------
Check = Callable[[str, Any], Any]


def _named(method: str, name: str) -> str:
    return f"{method}.{name}" if method else name


def positive(method: str, name: str, v):
    return check_range(_named(method, name), v, 0, lo_open=True)


def nonneg(method: str, name: str, v):
    return check_range(_named(method, name), v, 0)


def fraction(method: str, name: str, v):
    """A fraction in (0, 1]."""
    return check_range(_named(method, name), v, 0, 1, lo_open=True)


def unit_open(method: str, name: str, v):
    """A number in [0, 1) (momentum)."""
    return check_range(_named(method, name), v, 0, 1, hi_open=True)


def unit(method: str, name: str, v):
    """A number in [0, 1]."""
    return check_range(_named(method, name), v, 0, 1)


def integer(lo: int) -> Check:
    def check(method: str, name: str, v):
        return check_range(_named(method, name), v, lo, integer=True)
    check.__doc__ = f"an integer >= {lo}"
    return check


def boolean(method: str, name: str, v):
    if not isinstance(v, bool):
        raise ConfigError(f"{_named(method, name)}={v!r} must be true or false")
    return v


def choice(*allowed) -> Check:
    def check(method: str, name: str, v):
        check_choice(_named(method, name), v, tuple(allowed))
        return v
    return check


def optional(inner: Check) -> Check:
    """``None`` or a value that passes ``inner``."""
    def check(method: str, name: str, v):
        return None if v is None else inner(method, name, v)
    return check


# The optimiser settings every training-based method shares (Jia et al.: SGD, momentum 0.9, wd 5e-4).
OPTIM_CHECKS = {"lr": positive, "momentum": unit_open, "weight_decay": nonneg, "epochs": integer(1),
                "batch_size": integer(1), "augment": optional(boolean)}


# ---------------------------------------------------------------------------------------------
# per-sample gradients and diagonal Fisher matrices
# ---------------------------------------------------------------------------------------------
def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def param_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def auto_chunk(n: int, device: torch.device, chunk_size: int | None, budget_bytes: float | None = None) -> int:
    """Per-sample-gradient chunk: the given size, or as many samples as fit a memory budget."""
    if chunk_size is not None:
        check_range("chunk_size", chunk_size, 1, integer=True)
        return int(chunk_size)
    if budget_bytes is None:
        budget_bytes = 2e9 if device.type == "cuda" else 1e9
    # ~4 copies of a per-sample gradient live at once inside vmap(grad) (grad, square, products).
    return int(max(1, min(4096, budget_bytes // (4 * 4 * max(1, n)))))


def per_sample_grad_fn(model: nn.Module, names: Sequence[str] | None = None) -> tuple[dict, Callable]:
    """``(params, g)`` where ``g(params, x, w)`` gives per-sample ∇θ Σ_k w_k log softmax(f(x))_k.

    Uses ``torch.func.functional_call`` with the model's buffers in eval mode (BatchNorm uses its
    running statistics, so each sample's gradient does not depend on the rest of the chunk).
    ``names`` restricts the gradient to those parameters (the others enter as constants).
    ``x``: (B, ...), ``w``: (B, K).  Returns a dict name -> (B, *param.shape).
    """
    from torch.func import functional_call, grad, vmap

    model.eval()
    allp = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    names = list(allp) if names is None else list(names)
    params = {n: allp[n] for n in names}
    const = {n: p for n, p in allp.items() if n not in params}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def f(p, x, w):
        out = functional_call(model, ({**const, **p}, buffers), (x.unsqueeze(0),))
        return (out.float().log_softmax(-1)[0] * w).sum()

    return params, vmap(grad(f), in_dims=(None, 0, 0))


def masked(g: dict, masks: dict | None) -> dict:
    if masks:
        for name, m in masks.items():
            if name in g:
                g[name] = g[name] * m.to(g[name].dtype)
    return g


def linear_fast_path(model: nn.Module, x1: torch.Tensor) -> dict[str, nn.Linear]:
    """The nn.Linear modules whose per-sample gradients have the closed form δ aᵀ: called exactly once
    per forward on a 2-D input (checked on one sample).  Every other parameter takes the vmap path."""
    calls: dict[str, list] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and m.weight.requires_grad:
            calls[name] = []
            handles.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: calls[name].append(inp[0].dim())))
    try:
        with torch.no_grad():
            model(x1)
    finally:
        for h in handles:
            h.remove()
    mods = dict(model.named_modules())
    return {n: mods[n] for n, c in calls.items() if c == [2]}


def forward_capturing(model: nn.Module, fast: Mapping[str, nn.Linear], xb: torch.Tensor):
    """``(logits, {name: (a, z)})``: a forward pass (autograd on) that records each fast-path Linear
    layer's input ``a`` (detached) and output ``z`` (in the graph, for ∂/∂z)."""
    captured: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(mod, inp, out, name):
        captured[name] = (inp[0].detach(), out)
        return out.clone()  # a following in-place op (ReLU(inplace=True)) must not overwrite z

    handles = [m.register_forward_hook(lambda mod, inp, out, n=n: hook(mod, inp, out, n)) for n, m in fast.items()]
    try:
        with torch.enable_grad():
            logits = model(xb)
    finally:
        for h in handles:
            h.remove()
    return logits, captured


def fisher_diagonal(model: nn.Module, data, idx: torch.Tensor, *, weights: str = "model", masks: dict | None = None,
                    batch_size: int = 1024, chunk_size: int | None = None, progress: bool = False,
                    desc: str = "fisher") -> dict[str, torch.Tensor]:
    """Diagonal Fisher F = mean_x Σ_c w_c(x) (∂ log p_c(x) / ∂θ)², per parameter, in eval mode.

    ``weights="model"``: w_c = p_c(x), the predicted probability (Golatkar's / Jia et al.'s ``hessian``,
    FF's Fisher of the model's predictive distribution); ``weights="label"``: w_c = 1[c = y], the
    empirical Fisher (mean squared per-sample gradient of the cross-entropy).

    Computed exactly, per sample, without holding the N per-sample gradients:

    - an ``nn.Linear`` layer (input a, output z) has per-sample gradients δ aᵀ and δ with
      δ = ∂ log p_c / ∂z, so Σ_x Σ_c w_c (δ aᵀ)² = Sᵀ (a ⊙ a) with S = Σ_c w_c δ ⊙ δ: one backward
      pass per class for a whole batch (samples are independent in eval mode) and one matrix product;
    - every other parameter (convolutions, BatchNorm) uses ``torch.func`` vmap(grad) over the
      (sample, class) pairs in chunks, each chunk reduced to a sum before the next.
    """
    check_choice("weights", weights, ("model", "label"))
    device = data.device
    model.eval()
    idx = idx.to(device)
    names = param_names(model)
    acc = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in model.named_parameters() if p.requires_grad}
    if len(idx) == 0:
        return masked(acc, masks)
    k = model.num_classes
    fast = linear_fast_path(model, data.batch(idx[:1])[0])
    fast_names = {f"{n}.{w}" for n, m in fast.items() for w, p in m.named_parameters(recurse=False)}
    slow_names = [n for n in names if n not in fast_names]
    g_fn = None
    if slow_names:
        params, g_fn = per_sample_grad_fn(model, slow_names)
        chunk = auto_chunk(sum(params[n].numel() for n in slow_names), device, chunk_size)
    bs = max(1, int(batch_size))
    bar = _progress(len(idx), desc, progress)
    eye = torch.eye(k, device=device)
    for i in range(0, len(idx), bs):
        xb, yb = data.batch(idx[i:i + bs])
        b = len(xb)
        if fast:
            logits, captured = forward_capturing(model, fast, xb)
            logp = logits.float().log_softmax(-1)
            w = logp.detach().exp() if weights == "model" else eye[yb]
            outs = [captured[n][1] for n in fast]
            S = [torch.zeros(o.shape, device=device, dtype=torch.float32) for o in outs]
            classes = range(k) if weights == "model" else torch.unique(yb).tolist()
            for c in classes:
                gs = torch.autograd.grad(logp[:, c].sum(), outs, retain_graph=True)
                wc = w[:, c:c + 1]
                for s, g in zip(S, gs):
                    s.add_(wc * g.float() ** 2)
            for (n, m), s in zip(fast.items(), S):
                a = captured[n][0].float()
                acc[f"{n}.weight"] += s.T @ (a * a)
                if m.bias is not None and f"{n}.bias" in acc:
                    acc[f"{n}.bias"] += s.sum(0)
            del logits, logp, outs, gs, captured
        if g_fn is not None:
            with torch.no_grad():
                w = torch.softmax(model(xb).float(), dim=1) if weights == "model" else eye[yb]
            if weights == "model":      # every (sample, class) pair, weight √p_c on the class's log p
                x_pairs = xb.repeat_interleave(k, dim=0)
                w_pairs = (eye.repeat(b, 1) * w.reshape(-1, 1).sqrt())
            else:                        # one pair per sample: the true class
                x_pairs, w_pairs = xb, w
            for j in range(0, len(x_pairs), chunk):
                g = g_fn(params, x_pairs[j:j + chunk], w_pairs[j:j + chunk])
                for n in slow_names:
                    acc[n] += (g[n].float() ** 2).sum(0)
                del g
        if bar is not None:
            bar.update(b)
    if bar is not None:
        bar.close()
    for n in acc:
        acc[n] /= len(idx)
    return masked(acc, masks)


def batch_grad_importance(model: nn.Module, data, idx: torch.Tensor, batch_size: int = 128, *,
                          masks: dict | None = None, progress: bool = False,
                          desc: str = "importance") -> dict[str, torch.Tensor]:
    """Mean over mini-batches of the squared gradient of the batch's mean cross-entropy, in eval mode.

    This is SSD's importance (Foster et al.'s ``calc_importance``): batches of ``batch_size`` in the
    order of ``idx`` (no shuffling), the last one possibly smaller, each batch's (∇θ CE)² summed and
    divided by the number of batches.  ``batch_size=1`` is the per-sample empirical Fisher, computed by
    :func:`fisher_diagonal` with ``weights="label"``.
    """
    check_range("batch_size", batch_size, 1, integer=True)
    if int(batch_size) == 1:
        return fisher_diagonal(model, data, idx, weights="label", masks=masks, progress=progress, desc=desc)
    model.eval()
    idx = idx.to(data.device)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    acc = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in named}
    n_batches = 0
    bar = _progress(len(idx), desc, progress)
    for i in range(0, len(idx), int(batch_size)):
        xb, yb = data.batch(idx[i:i + int(batch_size)])
        with torch.enable_grad():
            loss = nn.functional.cross_entropy(model(xb).float(), yb)
            gs = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
        for (n, _), g in zip(named, gs):
            if g is not None:
                acc[n] += g.float() ** 2
        n_batches += 1
        if bar is not None:
            bar.update(len(xb))
    if bar is not None:
        bar.close()
    for n in acc:
        acc[n] /= max(1, n_batches)
    return masked(acc, masks)


def subsample(idx: torch.Tensor, k: int | None, seed: int) -> torch.Tensor:
    """A seeded random subset of ``k`` indices (sorted), or ``idx`` itself when ``k`` is None or large."""
    if k is None or k >= len(idx):
        return idx
    g = torch.Generator().manual_seed(int(seed))
    return idx[torch.randperm(len(idx), generator=g)[:k].to(idx.device)].sort().values


def flat(g: Mapping[str, torch.Tensor], names: Sequence[str]) -> torch.Tensor:
    b = next(iter(g.values())).shape[0]
    return torch.cat([g[n].reshape(b, -1) for n in names], dim=1)


__all__ = ["start", "after_step", "Timer", "progress", "sgd", "generator", "epoch_batches", "cycle_batches",
           "fisher_diagonal", "batch_grad_importance", "per_sample_grad_fn", "masked", "subsample",
           "positive", "nonneg", "fraction", "unit", "unit_open", "integer", "boolean", "choice", "optional",
           "OPTIM_CHECKS"]


def as_config(cls, method: str, hp: Mapping[str, Any]) -> dict:
    """``hp`` checked as the fields of config class ``cls`` (TrainConfig, UnlearnConfig), the error
    prefixed with the method's name."""
    try:
        return cls.from_dict(hp, where=method).to_dict()
    except ConfigError as e:
        raise ConfigError(f"{method}: {e}") from None
