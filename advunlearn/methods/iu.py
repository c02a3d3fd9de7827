"""IU: influence unlearning (Koh & Liang 2017; Izzo et al. 2021; as in Jia et al., NeurIPS 2023).

θ_u = θ_o + α · F⁻¹ v,  v = (n_f / n)(ḡ_f − ḡ_r),  ḡ the mean cross-entropy gradient on D_f / D_r:
one Newton-like step towards the model trained without D_f, with F⁻¹ v from the WoodFisher (damped
empirical Fisher) inverse of ~1,000 retain per-sample gradients.

Deviations from Jia et al.'s code: (1) their loop substitutes a running vector for F_{k−1}⁻¹ g_k,
which is not the Sherman-Morrison update; we compute the exact inverse (Woodbury, see
:func:`woodfisher_ihvp`); (2) damping: their F_0 = I; ours is λ = ``damping`` · mean ‖g_i‖² (relative
to the Fisher's trace, so one setting suits every model).  α is an ordinary hyperparameter (a
log-scale SPACE for the tuner).  On a dense model made of nn.Linear layers (the MLP) F⁻¹ v is
computed in closed form from the layers' inputs and output gradients (:func:`_linear_ihvp`), the
same value without the m × P per-sample gradient matrix.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..core.config import check_range
from ..core.prune import apply_masks
from . import _common as C

LABEL = "IU"
DEFAULTS = {
    "alpha": 0.03,          # step along F⁻¹v; the scale of a useful step depends on model and damping
    "n_samples": 1000,      # WoodFisher: retain per-sample gradients (a seeded subset)
    "damping": 1e-3,        # λ = damping · mean ‖g_i‖²
    "chunk_size": None,     # per-sample gradients per vmap call; None: by memory
    "grad_memory_gb": None, # hold at most this much of per-sample gradients (else stream them); None: auto
}
SPACE = {"alpha": ("log", 1e-4, 1e3)}
PUBLISHED = {"default": {"alpha": 10.0}}
SOURCE = "Jia et al. 2023, Unlearn-Sparse's run commands for wfisher: alpha 10"
CHECKS = {"alpha": C.nonneg, "n_samples": C.integer(1), "damping": C.positive,
          "chunk_size": C.optional(C.integer(1)), "grad_memory_gb": C.optional(C.positive)}
VERSION = 2   # 2: α a hyperparameter (no search against Retrain)


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


def _solve_spd(K: torch.Tensor, b: torch.Tensor, shift: float) -> torch.Tensor:
    A = K + shift * torch.eye(len(K), dtype=K.dtype, device=K.device)
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) == 0:
        return torch.cholesky_solve(b[:, None], L)[:, 0]
    return torch.linalg.solve(A, b)


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


def _linear_ihvp(model: nn.Module, data, idx: torch.Tensor, v: torch.Tensor, damping: float,
                 batch_size: int = 512) -> tuple[torch.Tensor, float] | None:
    """F⁻¹ v of :func:`woodfisher_ihvp` (relative damping) in closed form when every parameter belongs
    to a dense nn.Linear layer (the MLP), without forming the m × P gradient matrix; None otherwise.

    A per-sample gradient of such a layer is (δ aᵀ, δ) with δ = ∂ℓ/∂z, so with Δ, A the m samples'
    δ and a: G Gᵀ = Σ_layers (Δ Δᵀ) ⊙ (A Aᵀ + 1), (G v)_i = Σ_layers δ_iᵀ (V a_i + v_b) and
    Gᵀ w = (Δᵀ diag(w) A, Δᵀ w) per layer: m × m products instead of m × P ones.
    """
    fast = C.linear_fast_path(model, data.batch(idx[:1])[0])
    shapes = [(n, p.shape) for n, p in model.named_parameters() if p.requires_grad]
    covered = {f"{n}.{w}" for n, m in fast.items() for w, _ in m.named_parameters(recurse=False)}
    if not fast or covered != {n for n, _ in shapes}:
        return None
    model.eval()
    parts = {n: [] for n in fast}
    for i in range(0, len(idx), batch_size):
        xb, yb = data.batch(idx[i:i + batch_size])
        logits, cap = C.forward_capturing(model, fast, xb)
        loss = nn.functional.cross_entropy(logits.float(), yb, reduction="sum")   # per-sample CE, summed
        deltas = torch.autograd.grad(loss, [cap[n][1] for n in fast])
        for n, d in zip(fast, deltas):
            parts[n].append((cap[n][0].float(), d.float()))
    A = {n: torch.cat([a for a, _ in parts[n]]) for n in fast}
    D = {n: torch.cat([d for _, d in parts[n]]) for n in fast}
    vd, i = {}, 0
    for n, shape in shapes:
        k = math.prod(shape)
        vd[n] = v[i:i + k].view(shape)
        i += k
    m = len(idx)
    K = torch.zeros(m, m, dtype=torch.float64, device=v.device)
    Gv = torch.zeros(m, dtype=torch.float64, device=v.device)
    for n, mod in fast.items():
        a, d = A[n], D[n]
        has_b = mod.bias is not None
        K += ((d @ d.T) * (a @ a.T + (1.0 if has_b else 0.0))).double()
        gv = ((d @ vd[f"{n}.weight"]) * a).sum(1)
        if has_b:
            gv = gv + d @ vd[f"{n}.bias"]
        Gv += gv.double()
    lam = damping * float(torch.diagonal(K).sum()) / m
    if not lam > 0:
        raise ValueError("all per-sample gradients are zero; the relative damping is undefined")
    w = _solve_spd(K, Gv, m * lam).float()
    out = []
    for n, _ in shapes:
        mod_name, _, kind = n.rpartition(".")
        d, a = D[mod_name], A[mod_name]
        gtw = (d * w[:, None]).T @ a if kind == "weight" else d.T @ w
        out.append((vd[n] - gtw).reshape(-1))
    return torch.cat(out) / lam, lam


def influence_direction(model: nn.Module, exp, *, masks: dict | None = None, n_samples: int = 1000,
                        damping: float = 1e-3, chunk_size: int | None = None,
                        grad_memory_gb: float | None = None) -> tuple[torch.Tensor, dict]:
    """The flat IU direction d = F⁻¹ v (θ_u = θ0 + α d) and facts about it.

    v = (n_f / n)(ḡ_f − ḡ_r) (Jia et al.'s ``Wfisher``: ``forget_grad / n − retain_grad · n_f / (n · n_r)``).
    Sign: adding +α F⁻¹ v raises the loss on D_f and lowers it on D_r; this is the influence-function
    estimate of θ_{−f} − θ0 for removing D_f.  F is the WoodFisher damped empirical Fisher of
    ``n_samples`` retain per-sample gradients (a seeded random subset).  Pruned weights have no
    gradient (as with torch's pruning reparametrisation): their entries are masked to zero.
    """
    data, s = exp.data, exp.splits
    device = data.device
    check_range("n_samples", n_samples, 1, integer=True)
    check_range("damping", damping, 0, lo_open=True)
    names = C.param_names(model)
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
    idx = C.subsample(s.retain, n_samples, exp.seed + 7).to(device)
    m = len(idx)
    P = v.numel()
    if flat_mask is None and chunk_size is None and grad_memory_gb is None:
        closed = _linear_ihvp(model, data, idx, v, damping)
        if closed is not None:          # an MLP: exact, without the m × P gradients
            d, lam = closed
            return d, {"n_samples": m, "damping": damping, "lambda": lam, "closed_form": True,
                       "v_norm": float(v.norm()), "direction_norm": float(d.norm())}
    if grad_memory_gb is not None:
        check_range("grad_memory_gb", grad_memory_gb, 0, lo_open=True)
        budget = grad_memory_gb * 1e9
    elif device.type == "cuda":
        budget = 0.4 * torch.cuda.mem_get_info(device)[0]
    else:
        budget = 1e9
    chunk = C.auto_chunk(P, device, chunk_size)
    n_chunks = math.ceil(m / chunk)
    held = None if m * P * 4 <= budget else max(1, int(budget // (chunk * P * 4)) - 1)
    params, g_fn = C.per_sample_grad_fn(model)
    k = model.num_classes

    def grad_chunk(i: int) -> torch.Tensor:
        xb, yb = data.batch(idx[i * chunk:(i + 1) * chunk])
        w = -nn.functional.one_hot(yb, k).float()  # ∇ of −log p_y = per-sample CE gradient
        g = C.flat(g_fn(params, xb, w), names)
        return g * flat_mask if flat_mask is not None else g

    wf: dict = {}
    d = woodfisher_ihvp(grad_chunk, n_chunks, v, m, damping, max_held_chunks=held, relative=True, info=wf)
    if flat_mask is not None:
        d = d * flat_mask
    facts = {"n_samples": m, "damping": damping, "lambda": wf["lambda"], "closed_form": False,
             "hold_gradients": held is None,
             "chunk": chunk, "chunk_passes": wf["chunk_passes"], "v_norm": float(v.norm()),
             "direction_norm": float(d.norm())}
    return d, facts


@torch.no_grad()
def set_flat(model: nn.Module, base: dict, direction: torch.Tensor, scale: float, masks: dict | None) -> None:
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


def run(exp, **hparams):
    hp = {**DEFAULTS, **hparams}
    model, masks = C.start(exp)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    with C.Timer(exp.dev) as t:
        d, facts = influence_direction(model, exp, masks=masks, n_samples=hp["n_samples"], damping=hp["damping"],
                                       chunk_size=hp["chunk_size"], grad_memory_gb=hp["grad_memory_gb"])
        set_flat(model, base, d, hp["alpha"], masks)
    model.eval()
    return model, {"run_time_s": t.seconds, "hparams": {**hp, **facts}}
