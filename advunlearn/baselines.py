"""The paper's baselines (from Jia et al. 2023, "Model Sparsity Can Simplify Machine Unlearning").

One interface for all of them: ``run_baseline(name, exp, **overrides) -> (model, info)`` with
``info = {"method", "run_time_s", "hparams"}``.  Every method starts from a deep copy of θ0
(``exp.original()[0]``; the stored model is never touched) and, for sparse runs, keeps the OMP masks
exact.

- ``retrain``: the gold standard, a fresh model trained on D_r with the pretraining recipe
  (``exp.retrain()``, cached in the store); its run time is the stored training time.
- ``ft``: fine-tuning on D_r (``exp.prof.finetune``; Jia et al.: lr 0.01, 10 epochs).
- ``ga``: gradient ascent on D_f (``exp.prof.ga``).
- ``ff``: Fisher forgetting (Golatkar et al. 2020, as in Jia et al.'s code): diagonal Fisher of the
  model's predictive distribution on D_r, Gaussian noise with variance α / (F + 1e-8).
- ``iu``: influence unlearning: θ ← θ0 + α H⁻¹ v with v = (n_f / n)(ḡ_f − ḡ_r) and H⁻¹ v from the
  WoodFisher (damped empirical Fisher) inverse on ~1,000 retain per-sample gradients.

FF's and IU's α is searched with :func:`search_alpha` unless given: the α whose model is closest to
*this seed's* Retrain model in accuracy on D_v, D_f and D_r.  That is an oracle choice -- it needs
Retrain, whose cost is not counted in their run time, and it scores on the forget and retain sets
the tables report -- so it favours these two baselines; the test split is never used.
Per-sample gradients use ``torch.func`` (functional_call + vmap + grad) in chunks, reducing inside
each chunk, so the N gradients are never held at once.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Callable, Sequence

import torch
from torch import nn

from .config import ConfigError, check_choice, check_range
from .prune import apply_masks
from .train import _progress, accuracy, fit

METHODS = ("retrain", "ft", "ga", "ff", "iu")

# Default α grids.  FF: the variance scale, half decades over the range users of Jia et al.'s code
# report (1e-9 … 1e-5), widened on both sides.  IU: None = a grid derived from the update's size
# (see _iu_default_grid), because the raw α's scale depends on the model and the damping.
FF_GRID = tuple(10.0 ** (e / 2) for e in range(-22, -5))   # 1e-11 … 1e-3
IU_REL_STEPS = tuple(10.0 ** (e / 2) for e in range(-10, 2))  # ||α d|| / ||θ0|| from 1e-5 to ~3.2

_FF_KEYS = ("alpha", "grid", "max_samples", "noise_seed", "row_mean", "bias_scale", "chunk_size")
_IU_KEYS = ("alpha", "grid", "n_samples", "damping", "chunk_size", "grad_memory_gb")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Timer:
    """Wall-clock timer that synchronises CUDA at both ends."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds = 0.0

    def __enter__(self):
        _sync(self.device)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        _sync(self.device)
        self.seconds += time.perf_counter() - self._t0
        return False


def _check_keys(method: str, overrides: dict, allowed: Sequence[str]) -> None:
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for baseline {method!r}; allowed: {list(allowed)}")


def _start(exp) -> tuple[nn.Module, dict | None]:
    """A deep copy of θ0 in eval mode and its OMP masks (None for dense runs)."""
    theta0, _ = exp.original()
    model = copy.deepcopy(theta0)
    model.eval()
    return model, exp.masks(model)


def _param_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _auto_chunk(n_params: int, device: torch.device, chunk_size: int | None, budget_bytes: float | None = None) -> int:
    """Per-sample-gradient chunk: the given size, or as many samples as fit a memory budget."""
    if chunk_size is not None:
        check_range("chunk_size", chunk_size, 1, integer=True)
        return int(chunk_size)
    if budget_bytes is None:
        budget_bytes = 2e9 if device.type == "cuda" else 1e9
    # ~4 copies of a per-sample gradient live at once inside vmap(grad) (grad, square, products).
    return int(max(1, min(512, budget_bytes // (4 * 4 * n_params))))


def per_sample_grad_fn(model: nn.Module) -> tuple[dict, Callable]:
    """``(params, g)`` where ``g(params, x, w)`` gives per-sample ∇θ Σ_k w_k log softmax(f(x))_k.

    Uses ``torch.func.functional_call`` with the model's buffers in eval mode (BatchNorm uses its
    running statistics, so each sample's gradient does not depend on the rest of the chunk).
    ``x``: (B, C, H, W), ``w``: (B, K).  Returns a dict name -> (B, *param.shape).
    """
    from torch.func import functional_call, grad, vmap

    model.eval()
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def f(p, x, w):
        out = functional_call(model, (p, buffers), (x.unsqueeze(0),))
        return (out.float().log_softmax(-1)[0] * w).sum()

    return params, vmap(grad(f), in_dims=(None, 0, 0))


def _masked(g: dict, masks: dict | None) -> dict:
    if masks:
        for name, m in masks.items():
            if name in g:
                g[name] = g[name] * m.to(g[name].dtype)
    return g


def _flat(g: dict, names: Sequence[str]) -> torch.Tensor:
    b = next(iter(g.values())).shape[0]
    return torch.cat([g[n].reshape(b, -1) for n in names], dim=1)


def _to_flat_param(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad])


@torch.no_grad()
def _set_flat(model: nn.Module, base: dict, direction: torch.Tensor, scale: float, masks: dict | None) -> None:
    """θ ← base + scale · direction (flat, in named_parameters order); pruned weights stay zero."""
    i = 0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        n = p.numel()
        p.copy_(base[name] + scale * direction[i:i + n].view_as(p).to(p.dtype))
        i += n
    if masks:
        apply_masks(model, masks)


def _subsample(idx: torch.Tensor, k: int | None, seed: int) -> torch.Tensor:
    if k is None or k >= len(idx):
        return idx
    g = torch.Generator().manual_seed(int(seed))
    return idx[torch.randperm(len(idx), generator=g)[:k]].sort().values


# ---------------------------------------------------------------------------------------------
# FF: Fisher forgetting
# ---------------------------------------------------------------------------------------------
def fisher_diagonal(model: nn.Module, data, idx: torch.Tensor, *, masks: dict | None = None,
                    chunk_size: int | None = None, progress: bool = False) -> dict[str, torch.Tensor]:
    """Diagonal Fisher F = mean_x Σ_c p_c(x) (∂ log p_c(x) / ∂θ)², per parameter (eval mode).

    This is Golatkar's / Jia et al.'s ``hessian``: for every sample and every class c the squared
    gradient of log p_c weighted by the predicted probability p_c.  The (sample, class) pairs are
    processed in chunks with vmap(grad); each chunk is reduced to a sum before the next one.
    """
    device = data.device
    params, g_fn = per_sample_grad_fn(model)
    names = list(params)
    k = model.num_classes
    chunk = _auto_chunk(_n_params(model), device, chunk_size)
    acc = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    eye = torch.eye(k, device=device)
    idx = idx.to(device)
    n_batch = max(1, chunk // k)  # samples per chunk; the chunk holds n_batch * K pairs
    bar = _progress(len(idx), "ff fisher", progress)
    for i in range(0, len(idx), n_batch):
        xb, _ = data.batch(idx[i:i + n_batch])
        with torch.no_grad():
            probs = torch.softmax(model(xb).float(), dim=1)          # (B, K), weights p_c
        b = len(xb)
        x_pairs = xb.repeat_interleave(k, dim=0)                     # (B*K, ...): sample-major
        w_pairs = eye.repeat(b, 1)                                   # one-hot class per pair
        p_pairs = probs.reshape(-1)                                  # p_c(x) per pair
        for j in range(0, len(x_pairs), max(chunk, 1)):
            g = g_fn(params, x_pairs[j:j + chunk], w_pairs[j:j + chunk])
            wj = p_pairs[j:j + chunk]
            for n in names:
                acc[n] += torch.einsum("b,b...->...", wj, g[n].float() ** 2)
            del g
        if bar is not None:
            bar.update(b)
    if bar is not None:
        bar.close()
    for n in names:
        acc[n] /= max(1, len(idx))
    return _masked(acc, masks)


def ff_noise_std(model: nn.Module, fisher: dict[str, torch.Tensor], masks: dict | None = None, *,
                 row_mean: bool = True, bias_scale: float = 10.0) -> dict[str, torch.Tensor]:
    """Per-parameter noise std for α = 1: √(min(1 / (F + 1e-8), cap)), cap 1e3 (1e2 for ``fc``).

    As in Golatkar's / Jia et al.'s ``get_mean_var``: the cap applies to 1/(F + 1e-8) before scaling
    by α (so std(α) = √α · this); for weights with more than one dimension the variance is averaged
    over dim 1 (``row_mean``; over unpruned entries only: pruned ones get no noise); the last layer
    (``fc.weight`` and ``fc.bias``, their ``p.size(0) == num_classes`` case) and every other 1-D
    parameter (BatchNorm) get ``bias_scale`` = 10 times the variance.  The reference code's
    class-wise reset of the forgotten class's last-layer row is done by :func:`ff_apply`.
    """
    out = {}
    for name, p in model.named_parameters():
        if name not in fisher:
            continue
        inv = 1.0 / (fisher[name].float() + 1e-8)
        cap = 1e2 if name.startswith("fc.") else 1e3
        var = inv.clamp(max=cap)
        m = masks.get(name) if masks else None
        if row_mean and p.ndim > 1:
            if m is not None:
                mf = m.to(var.dtype)
                var = (var * mf).sum(1, keepdim=True) / mf.sum(1, keepdim=True).clamp_min(1)
            else:
                var = var.mean(1, keepdim=True)
            var = var.expand_as(p).clone()
        if name.startswith("fc.") or p.ndim == 1:
            var = var * bias_scale
        std = var.sqrt()
        if m is not None:
            std = std * m.to(std.dtype)
        out[name] = std
    return out


# Class-wise FF: the forgotten class's last-layer row is reset to mean 0 with this variance,
# whatever α (Jia et al.'s / Golatkar's get_mean_var: var 1e-4, then the last layer's x10).  Their
# code also did this in random forgetting (a bug, not repeated here: no row is reset there).
FF_FORGET_ROW_VAR = 1e-3


@torch.no_grad()
def ff_apply(model: nn.Module, theta0: dict[str, torch.Tensor], std: dict[str, torch.Tensor], alpha: float,
             noise_seed: int, masks: dict | None = None, forget_class: int | None = None) -> nn.Module:
    """θ ← θ0 + √α · std · ε with ε ~ N(0, 1) from a generator seeded by ``noise_seed``.

    The same seed gives the same ε for every α, so the perturbation grows monotonically with α.
    ``forget_class`` (class-wise forgetting): row ``forget_class`` of ``fc.weight`` and ``fc.bias`` becomes
    0 + √FF_FORGET_ROW_VAR · ε instead, as in the reference code.
    """
    check_range("alpha", alpha, 0)
    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(int(noise_seed))
    for name, p in model.named_parameters():
        if name not in std:
            continue
        eps = torch.randn(p.shape, generator=gen, device=dev, dtype=torch.float32)
        new = theta0[name] + math.sqrt(alpha) * std[name] * eps
        if forget_class is not None and name in ("fc.weight", "fc.bias"):
            new[forget_class] = math.sqrt(FF_FORGET_ROW_VAR) * eps[forget_class]
        p.copy_(new)
    if masks:
        apply_masks(model, masks)
    return model


# ---------------------------------------------------------------------------------------------
# IU: influence unlearning with a WoodFisher inverse-Hessian-vector product
# ---------------------------------------------------------------------------------------------
def _mean_grad(model: nn.Module, data, idx: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Flat mean cross-entropy gradient over ``idx`` (eval mode, batched autograd)."""
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    total = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    idx = idx.to(data.device)
    for i in range(0, len(idx), batch_size):
        xb, yb = data.batch(idx[i:i + batch_size])
        loss = nn.functional.cross_entropy(model(xb).float(), yb, reduction="sum")
        gs = torch.autograd.grad(loss, params)
        for t, g in zip(total, gs):
            t += g.float()
    return torch.cat([t.reshape(-1) for t in total]) / max(1, len(idx))


def woodfisher_ihvp(grad_chunk: Callable[[int], torch.Tensor], n_chunks: int, v: torch.Tensor, m: int,
                    damping: float, *, max_held_chunks: int | None = None, relative: bool = False,
                    info: dict | None = None) -> torch.Tensor:
    """(λI + (1/m) Σ_i g_i g_iᵀ)⁻¹ v without forming the P × P matrix.

    WoodFisher builds this inverse by m Sherman-Morrison rank-one updates
    F_k⁻¹ = F_{k-1}⁻¹ − F_{k-1}⁻¹ g_k g_kᵀ F_{k-1}⁻¹ / (m + g_kᵀ F_{k-1}⁻¹ g_k), F_0⁻¹ = I/λ.
    Their product is exactly the Woodbury identity, which we apply to v directly:
        F⁻¹ v = (v − Gᵀ (mλ I + G Gᵀ)⁻¹ G v) / λ,
    with the m × m Gram matrix G Gᵀ (m² dot products) solved in float64.

    ``grad_chunk(i)`` returns the i-th (c_i, P) block of the m gradients (i < ``n_chunks``) and must
    give the same block every time it is called.  ``max_held_chunks=None`` holds all m gradients
    (O(m·P) memory, each block computed once).  Otherwise at most ``max_held_chunks + 1`` blocks are
    held: the Gram matrix is built row-block by row-block, streaming the later blocks past each
    held row block, and Gᵀw takes one more pass (blocks computed about n + n²/(2R) + n times for
    n blocks and R held).  ``relative=True`` uses λ = damping · trace(F̂) = damping · mean ‖g_i‖²
    (from the Gram diagonal); the λ used is written to ``info["lambda"]`` when ``info`` is given.
    """
    check_range("damping", damping, 0, lo_open=True)
    check_range("n_chunks", n_chunks, 1, integer=True)
    if max_held_chunks is not None:
        check_range("max_held_chunks", max_held_chunks, 1, integer=True)
    v = v.float()

    def lam_of(K: torch.Tensor) -> float:
        lam = damping * float(torch.diagonal(K).sum()) / m if relative else damping
        if not lam > 0:
            raise ValueError("all per-sample gradients are zero; the relative damping is undefined")
        if info is not None:
            info["lambda"] = lam
        return lam

    if max_held_chunks is None or max_held_chunks >= n_chunks:
        G = torch.cat([grad_chunk(i).float() for i in range(n_chunks)])
        if len(G) != m:
            raise ValueError(f"grad_chunk gave {len(G)} gradients, expected m={m}")
        K = (G @ G.T).double()
        lam = lam_of(K)
        w = _solve_spd(K, (G @ v).double(), m * lam)
        if info is not None:
            info["chunk_passes"] = n_chunks
        return (v - G.T @ w.float()) / lam
    # Out of core: row blocks of R held chunks; later chunks streamed past them.
    R = max_held_chunks
    K_blocks: dict[tuple[int, int], torch.Tensor] = {}
    Gv: dict[int, torch.Tensor] = {}
    sizes: dict[int, int] = {}
    passes = 0
    for a0 in range(0, n_chunks, R):
        held = {i: grad_chunk(i).float() for i in range(a0, min(a0 + R, n_chunks))}
        passes += len(held)
        for i, Gi in held.items():
            sizes[i] = len(Gi)
            Gv[i] = (Gi @ v).double()
            for j, Gj in held.items():
                if j >= i:
                    K_blocks[(i, j)] = (Gi @ Gj.T).double()
        for j in range(a0 + R, n_chunks):
            Gj = grad_chunk(j).float()
            passes += 1
            for i, Gi in held.items():
                K_blocks[(i, j)] = (Gi @ Gj.T).double()
            del Gj
        del held
    offs = [0]
    for i in range(n_chunks):
        offs.append(offs[-1] + sizes[i])
    if offs[-1] != m:
        raise ValueError(f"grad_chunk gave {offs[-1]} gradients, expected m={m}")
    K = torch.zeros(m, m, dtype=torch.float64, device=v.device)
    for (i, j), blk in K_blocks.items():
        K[offs[i]:offs[i + 1], offs[j]:offs[j + 1]] = blk
        if i != j:
            K[offs[j]:offs[j + 1], offs[i]:offs[i + 1]] = blk.T
    lam = lam_of(K)
    w = _solve_spd(K, torch.cat([Gv[i] for i in range(n_chunks)]), m * lam).float()
    out = v.clone()
    for i in range(n_chunks):
        out -= grad_chunk(i).float().T @ w[offs[i]:offs[i + 1]]
        passes += 1
    if info is not None:
        info["chunk_passes"] = passes
    return out / lam


def _solve_spd(K: torch.Tensor, b: torch.Tensor, shift: float) -> torch.Tensor:
    A = K + shift * torch.eye(len(K), dtype=K.dtype, device=K.device)
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) == 0:
        return torch.cholesky_solve(b[:, None], L)[:, 0]
    return torch.linalg.solve(A, b)


def influence_direction(model: nn.Module, exp, *, masks: dict | None = None, n_samples: int = 1000,
                        damping: float = 1e-3, chunk_size: int | None = None,
                        grad_memory_gb: float | None = None) -> tuple[torch.Tensor, dict]:
    """The flat IU direction d = F⁻¹ v (θ_u = θ0 + α d) and facts about it.

    v = (n_f / n)(ḡ_f − ḡ_r) where ḡ is the mean cross-entropy gradient (Jia et al.'s ``Wfisher``:
    ``forget_grad / n − retain_grad · n_f / (n · n_r)``).  Sign: adding +α F⁻¹ v raises the loss on
    D_f (moves away from fitting D_f) and lowers it on D_r; this is the influence-function estimate
    of θ_{−f} − θ0 for removing D_f.

    F is the WoodFisher damped empirical Fisher of ``n_samples`` retain per-sample gradients (a
    seeded random subset).  Deviations from Jia et al.'s code: (1) their loop substitutes a running
    vector for F_{k−1}⁻¹ g_k, which is not the Sherman-Morrison update; we compute the exact inverse
    (Woodbury, see :func:`woodfisher_ihvp`); (2) damping: their F_0 = I; ours is λ = ``damping`` ·
    mean ‖g_i‖² (relative to the Fisher's trace, so one setting suits every model).  Pruned weights
    have no gradient (as with torch's pruning reparametrisation): their entries are masked to zero.
    """
    data, s = exp.data, exp.splits
    device = data.device
    check_range("n_samples", n_samples, 1, integer=True)
    check_range("damping", damping, 0, lo_open=True)
    names = _param_names(model)
    flat_mask = None
    if masks:
        flat_mask = torch.cat([masks[n].reshape(-1).float() if n in masks else
                               torch.ones(p.numel(), device=device)
                               for n, p in model.named_parameters() if p.requires_grad])
    n_f, n_r = len(s.forget), len(s.retain)
    n = n_f + n_r
    g_f = _mean_grad(model, data, s.forget)
    g_r = _mean_grad(model, data, s.retain)
    v = (n_f / n) * (g_f - g_r)
    if flat_mask is not None:
        v = v * flat_mask
    idx = _subsample(s.retain, n_samples, exp.seed + 7).to(device)
    m = len(idx)
    P = v.numel()
    if grad_memory_gb is not None:
        check_range("grad_memory_gb", grad_memory_gb, 0, lo_open=True)
        budget = grad_memory_gb * 1e9
    elif device.type == "cuda":
        budget = 0.4 * torch.cuda.mem_get_info(device)[0]
    else:
        budget = 1e9
    chunk = _auto_chunk(P, device, chunk_size)
    n_chunks = math.ceil(m / chunk)
    held = None if m * P * 4 <= budget else max(1, int(budget // (chunk * P * 4)) - 1)
    params, g_fn = per_sample_grad_fn(model)
    k = model.num_classes

    def grad_chunk(i: int) -> torch.Tensor:
        xb, yb = data.batch(idx[i * chunk:(i + 1) * chunk])
        w = -nn.functional.one_hot(yb, k).float()  # ∇ of −log p_y = per-sample CE gradient
        g = _flat(g_fn(params, xb, w), names)
        return g * flat_mask if flat_mask is not None else g

    wf: dict = {}
    d = woodfisher_ihvp(grad_chunk, n_chunks, v, m, damping, max_held_chunks=held, relative=True, info=wf)
    if flat_mask is not None:
        d = d * flat_mask
    hold = held is None
    facts = {"n_samples": m, "damping": damping, "lambda": wf["lambda"], "hold_gradients": hold, "chunk": chunk,
             "chunk_passes": wf["chunk_passes"],
             "v_norm": float(v.norm()), "direction_norm": float(d.norm())}
    return d, facts


def _iu_default_grid(direction: torch.Tensor, theta0_flat: torch.Tensor) -> list[float]:
    """α values whose update ‖α d‖ is 1e-5 … ~3 times ‖θ0‖ (half-decade steps)."""
    dn = float(direction.norm())
    if dn == 0:
        return [0.0]
    return [r * float(theta0_flat.norm()) / dn for r in IU_REL_STEPS]


# ---------------------------------------------------------------------------------------------
# shared α search (FF, IU)
# ---------------------------------------------------------------------------------------------
class _Prepared:
    """The expensive part of FF / IU computed once; ``apply(alpha)`` gives the model for any α."""

    def __init__(self, method: str, exp, opts: dict):
        self.method, self.exp, self.opts = method, exp, opts
        self.model, self.masks = _start(exp)
        self.base = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        self.timer = _Timer(exp.dev)
        with self.timer:
            if method == "ff":
                idx = _subsample(exp.splits.retain, opts.get("max_samples"), exp.seed + 3)
                F = fisher_diagonal(self.model, exp.data, idx, masks=self.masks, chunk_size=opts.get("chunk_size"),
                                    progress=exp.progress)
                self.std = ff_noise_std(self.model, F, self.masks, row_mean=opts.get("row_mean", True),
                                        bias_scale=opts.get("bias_scale", 10.0))
                self.facts = {"fisher_samples": len(idx)}
            else:
                self.direction, self.facts = influence_direction(
                    self.model, exp, masks=self.masks, n_samples=opts.get("n_samples", 1000),
                    damping=opts.get("damping", 1e-3), chunk_size=opts.get("chunk_size"),
                    grad_memory_gb=opts.get("grad_memory_gb"))

    def default_grid(self) -> list[float]:
        if self.method == "ff":
            return list(FF_GRID)
        return _iu_default_grid(self.direction, torch.cat([b.reshape(-1) for b in self.base.values()]))

    def apply(self, alpha: float) -> nn.Module:
        check_range("alpha", alpha, 0)
        if self.method == "ff":
            seed = self.opts.get("noise_seed", self.exp.seed)
            fc = self.exp.splits.forget_class if self.exp.scheme == "class" else None
            ff_apply(self.model, self.base, self.std, alpha, seed, self.masks, forget_class=fc)
        else:
            _set_flat(self.model, self.base, self.direction, alpha, self.masks)
        return self.model


SEARCH_RETAIN_SAMPLES = 5000  # RA during the α search is measured on at most this many retain samples


def _search_scores(model: nn.Module, exp, retain_idx: torch.Tensor) -> dict[str, float]:
    return {"val_acc": accuracy(model, exp.data, exp.splits.val),
            "UA": 100.0 - accuracy(model, exp.data, exp.splits.forget),
            "RA": accuracy(model, exp.data, retain_idx)}


def _search(prep: _Prepared, grid: Sequence[float] | None) -> tuple[float, list[dict]]:
    exp = prep.exp
    grid = list(prep.default_grid() if grid is None else grid)
    if not grid:
        raise ConfigError("grid must hold at least one alpha value")
    for a in grid:
        check_range("alpha (grid)", a, 0)
    retain_idx = _subsample(exp.splits.retain, SEARCH_RETAIN_SAMPLES, exp.seed + 11)
    retrained, _ = exp.retrain()
    target = _search_scores(retrained, exp, retain_idx)
    scores = []
    for a in sorted(grid):
        r = _search_scores(prep.apply(a), exp, retain_idx)
        if not all(math.isfinite(x) for x in r.values()):
            continue
        r["score"] = sum(abs(r[k] - target[k]) for k in ("val_acc", "UA", "RA"))
        scores.append({"alpha": a, **r})
    if not scores:
        raise RuntimeError(f"{prep.method}: no alpha in the grid gave a finite model")
    best = min(scores, key=lambda r: (r["score"], r["alpha"]))
    return best["alpha"], scores


def search_alpha(method: str, exp, grid: Sequence[float] | None = None, **overrides) -> tuple[float, list[dict]]:
    """Pick FF's / IU's α: argmin |VA − VA_r| + |UA − UA_r| + |RA − RA_r| against Retrain (subscript r).

    VA is accuracy on D_v (never trained on by θ0 or Retrain), UA = 100 − accuracy on D_f (given to
    the unlearner), RA accuracy on D_r (a seeded subset of at most ``SEARCH_RETAIN_SAMPLES``); the
    test split is never used.  This is Avg. Disparity's accuracy part with D_v standing in for D_t.
    The RA term is there on purpose: with only |ΔVA| + |ΔUA|, class-wise FF prefers a destroyed model
    (VA 15%, UA 99%) over an intact one, because one class's UA outweighs the validation drop.
    The expensive part (Fisher, or H⁻¹v) is computed once; each α is then one update and three
    accuracy passes.  Ties go to the smaller α.  Returns ``(alpha, [{"alpha", "val_acc", "UA", "RA",
    "score"}, ...])``.
    """
    check_choice("method", method, ("ff", "iu"))
    _check_keys(method, overrides, _FF_KEYS if method == "ff" else _IU_KEYS)
    opts = {k: v for k, v in overrides.items() if k not in ("alpha", "grid")}
    return _search(_Prepared(method, exp, opts), grid)


# ---------------------------------------------------------------------------------------------
# the one interface
# ---------------------------------------------------------------------------------------------
def _run_retrain(exp, overrides: dict):
    _check_keys("retrain", overrides, ())
    model, meta = exp.retrain()
    model.eval()
    return model, {"method": "retrain", "run_time_s": float(meta["time_s"]),
                   "hparams": {**exp.prof.pretrain.to_dict(), "train_indices": "splits.retain"}}


def _run_fit(name: str, exp, overrides: dict):
    base = exp.prof.finetune if name == "ft" else exp.prof.ga
    cfg = base.updated(**overrides) if overrides else base
    model, masks = _start(exp)
    idx = exp.splits.retain if name == "ft" else exp.splits.forget
    with _Timer(exp.dev) as t:
        fit(model, exp.data, idx, cfg, seed=exp.seed, masks=masks, ascent=(name == "ga"),
            progress=exp.progress, desc=name)
    model.eval()
    return model, {"method": name, "run_time_s": t.seconds, "hparams": cfg.to_dict()}


def _run_search_method(name: str, exp, overrides: dict):
    _check_keys(name, overrides, _FF_KEYS if name == "ff" else _IU_KEYS)
    opts = {k: v for k, v in overrides.items() if k not in ("alpha", "grid")}
    prep = _Prepared(name, exp, opts)
    prep_time = prep.timer.seconds
    hp = dict(opts)
    if overrides.get("alpha") is None:
        t0 = time.perf_counter()
        alpha, scores = _search(prep, overrides.get("grid"))
        hp.update(alpha=alpha, alpha_searched=True, search_scores=scores,
                  search_time_s=time.perf_counter() - t0)
    else:
        alpha = float(overrides["alpha"])
        check_range("alpha", alpha, 0)
        hp.update(alpha=alpha, alpha_searched=False)
    with _Timer(exp.dev) as t:
        model = prep.apply(alpha)
    model.eval()
    hp.update(prep.facts)
    # Run time = the method itself (Fisher / H⁻¹v plus one update); the α search is reported apart.
    return model, {"method": name, "run_time_s": prep_time + t.seconds, "hparams": hp}


def run_baseline(name: str, exp, **overrides) -> tuple[nn.Module, dict]:
    """Run baseline ``name`` (one of METHODS) on ``exp``; returns ``(model, info)``.

    ``overrides``: ``ft``/``ga``: TrainConfig fields (epochs, lr, ...); ``ff``: alpha, grid,
    max_samples, noise_seed, row_mean, bias_scale, chunk_size; ``iu``: alpha, grid, n_samples, damping,
    chunk_size, grad_memory_gb; ``retrain``: none.  Without ``alpha``, FF and IU search it against this
    seed's Retrain model (:func:`search_alpha`, an oracle choice) and report it in ``info["hparams"]``.
    """
    check_choice("method", name, METHODS)
    if name == "retrain":
        return _run_retrain(exp, overrides)
    if name in ("ft", "ga"):
        return _run_fit(name, exp, overrides)
    return _run_search_method(name, exp, overrides)


__all__ = ["METHODS", "run_baseline", "search_alpha", "fisher_diagonal", "ff_noise_std", "ff_apply",
           "influence_direction", "woodfisher_ihvp", "per_sample_grad_fn", "FF_GRID", "IU_REL_STEPS"]
