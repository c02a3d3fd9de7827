"""The membership-inference attacker A of section 3.1: SAMIA (Yuan & Zhang, USENIX Security 2022).

Per sample the attacker reads K tokens (K = classes), token k = (p_k, s_k, onehot_k):

* ``p``: the defender's softmax output;
* ``s``: the defender's *sensitivity*, the per-class mean over ``n_noise`` = 10 noisy copies of
  ``|p(x + eps*u) - p(x)| / eps`` with ``u ~ N(0, I)`` in the (normalised) input space and
  ``eps = 1e-3``.  This follows SAMIA's code; the paper writes the noise as N(0, 1) and the
  sensitivity as a norm of the output difference -- a per-class absolute value keeps one number per
  token, which is what a per-class token layout needs, and a unit-variance noise would not measure a
  local sensitivity at all (it would swamp normalised images), so we keep their eps;
* the one-hot label.

Gradients: ``p`` carries gradients to the defender when asked (``grad=True``); the sensitivity is
always computed without gradients (detached).  Reasons: (1) with eps = 1e-3 ``s`` is a
finite-difference Jacobian estimate whose gradient w.r.t. the weights would be a noisy
second-order quantity (catastrophic cancellation in ``p(x+eps u) - p(x)``), (2) back-propagating
through the 10 noisy copies would multiply the defender's backward cost by ~10, and (3) the
defender is meant to change what it *predicts* on D_f, which ``p`` carries; ``s`` still moves as the
defender changes because it is recomputed from the current weights at every iteration.

Mode: features are computed with the defender in **eval mode** (BatchNorm running statistics, no
dropout) -- the attacker queries the model as deployed, the 11x repeated batch does not pollute the
BatchNorm running statistics, and every sample's output is independent of its batch neighbours.
The previous train/eval mode is restored afterwards; autograd stays on when ``grad=True`` so the
defender's loss can flow through eval-mode BatchNorm (its affine parameters and all weights).
The noisy forward always runs in fp32 (autocast off): bf16 cannot resolve differences of ~1e-3.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.config import AttackerConfig, ConfigError, check_range
from ..core.timing import phase

# Samples per chunk of the noisy batched forward (each chunk runs (n_noise + 1) * chunk images;
# 512 keeps a ResNet-18's largest activation on 32x32 inputs near 1.5 GB).
FEATURE_CHUNK = 512


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Temporarily put ``module`` (and all children) in eval mode; restore every child's flag."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, t in flags:
            m.training = t


def _no_autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", enabled=False)
    return contextlib.nullcontext()


@torch.no_grad()
def probs_and_sensitivity(model: nn.Module, x: torch.Tensor, noise: float = 1e-3, n_noise: int = 10,
                          generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(p, s) for a batch of images ``x``, both (N, K) fp32 and detached, from ONE batched forward of
    the clean batch and ``n_noise`` noisy copies (the model is put in eval mode for the call)."""
    n = x.shape[0]
    u = torch.randn((n_noise, *x.shape), generator=generator, device=x.device if generator is None
                    else generator.device, dtype=torch.float32).to(x.device)
    xs = torch.cat([x.float().unsqueeze(0), x.float().unsqueeze(0) + noise * u]).reshape(-1, *x.shape[1:])
    with eval_mode(model), _no_autocast(x.device):
        out = torch.softmax(model(xs).float(), dim=-1).view(n_noise + 1, n, -1)
    p = out[0]
    s = (out[1:] - p.unsqueeze(0)).abs().mean(0) / noise
    return p, s


def make_tokens(p: torch.Tensor, s: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Stack per-class tokens: (N, K, 3) with token k = (p_k, s_k, onehot(y)_k)."""
    onehot = torch.nn.functional.one_hot(y.long(), num_classes).to(p.dtype)
    return torch.stack([p, s.to(p.dtype), onehot], dim=-1)


def probs_with_grad(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax output with autograd on, the model in eval mode (see the module docstring), fp32."""
    with eval_mode(model), _no_autocast(x.device):
        return torch.softmax(model(x.float()).float(), dim=-1)


def attack_features(model: nn.Module, data, idx: torch.Tensor, noise: float = 1e-3, n_noise: int = 10,
                    grad: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """The attacker's input for samples ``idx`` of ``data``: (N, K, 3) tokens (p_k, s_k, onehot_k).

    ``grad=True`` keeps the graph from ``p`` back to the defender's weights (``s`` is detached);
    ``generator`` draws the noise (on ``data.device``; None -> the global RNG).
    """
    check_range("noise", noise, 0, lo_open=True)
    check_range("n_noise", n_noise, 1, integer=True)
    idx = torch.as_tensor(idx).to(data.device)
    k = int(getattr(model, "num_classes", 0)) or None
    out = []
    for i in range(0, len(idx), FEATURE_CHUNK):
        xb, yb = data.batch(idx[i:i + FEATURE_CHUNK])
        p, s = probs_and_sensitivity(model, xb, noise, n_noise, generator)
        if grad:
            p = probs_with_grad(model, xb)
        out.append(make_tokens(p, s, yb, k or p.shape[1]))
    if not out:
        kk = k or int(data.num_classes)
        return torch.zeros(0, kk, 3, device=data.device)
    return torch.cat(out)


def fast_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout with masks from random *bytes* (8 per 64-bit draw).

    Same role as ``F.dropout``; the drop probability is quantised to ``round(256 p) / 256``
    (0.2 -> 0.1992) and kept values are scaled by the exact inverse keep rate, so the layer stays
    unbiased.  Reason: on CPU ``torch.bernoulli_`` draws one Mersenne-Twister number per element and
    cost as much as all the attacker's matrix products together; this needs an eighth of the draws.
    On CUDA the standard ``F.dropout`` is used.
    """
    if not training or p <= 0:
        return x
    if x.is_cuda:
        return F.dropout(x, p, True)
    return x * _dropout_mask(x.shape, p, x.dtype, x.device)


def _dropout_mask(shape, p: float, dtype, device) -> torch.Tensor:
    """:func:`fast_dropout`'s scaled keep mask of ``shape`` (CPU)."""
    thr = round(p * 256)
    n = math.prod(shape)
    r = torch.randint(-2 ** 63, 2 ** 63 - 1, ((n + 7) // 8,), dtype=torch.int64, device=device)
    return (r.view(torch.uint8)[:n].view(shape) >= thr).to(dtype).mul_(256.0 / (256 - thr))


class EncoderLayer(nn.TransformerEncoderLayer):
    """``nn.TransformerEncoderLayer(norm_first=False, activation="gelu", batch_first=True)`` with the
    same parameters and the same computation, written out so that it runs fast on tiny inputs
    (K = 10 tokens of width 64): attention written out (two batched matmuls and a softmax; faster
    here than ``scaled_dot_product_attention``, whose dropout path draws Bernoulli masks), all
    dropout via :func:`fast_dropout`.  In eval mode it equals the parent's forward (a test checks this)."""

    def forward(self, src: torch.Tensor, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        if src_mask is not None or src_key_padding_mask is not None or is_causal:
            raise ConfigError("the attacker's encoder layer takes no masks (every token attends to every token)")
        n, k, d = src.shape
        attn = self.self_attn
        h = attn.num_heads
        p, tr = self.dropout.p, self.training
        dh = d // h
        # unbind, not qkv[0..2]: indexing's backward zero-fills a full-size gradient three times per layer
        q, kk, v = (t.transpose(1, 2) for t in
                    F.linear(src, attn.in_proj_weight, attn.in_proj_bias).view(n, k, 3, h, dh).unbind(2))
        # The scores are formed transposed, (n, h, key, query), and normalised over dim -2: a softmax
        # over a strided dim of 10 runs vectorised along the contiguous one (forward + backward ~2.5x
        # faster on the CPU than over the last dim of 10).  Same values as softmax(q k^T) over keys
        # (float rounding aside); the dropout mask is drawn in the (query, key) layout as before and
        # transposed, so a seed drops the same attention weights.
        scores_t = torch.matmul(kk, q.transpose(-1, -2)).mul_(dh ** -0.5)            # (n, h, key, query)
        weights_t = torch.softmax(scores_t, dim=-2)
        if tr and attn.dropout > 0:
            if weights_t.is_cuda:
                weights_t = F.dropout(weights_t, attn.dropout, True)
            else:
                weights_t = weights_t * _dropout_mask(weights_t.shape, attn.dropout, weights_t.dtype,
                                                      weights_t.device).transpose(-1, -2)
        o = torch.matmul(weights_t.transpose(-1, -2), v)                              # (n, h, query, dh)
        o = attn.out_proj(o.transpose(1, 2).reshape(n, k, d))
        x = self.norm1(src + fast_dropout(o, p, tr))
        f = self.linear2(fast_dropout(F.gelu(self.linear1(x)), p, tr))
        return self.norm2(x + fast_dropout(f, p, tr))


class Attacker(nn.Module):
    """SAMIA's transformer: BN over the flat 3K input, per-token Linear(3, d)+GELU, post-norm encoder
    layers without positional encoding or CLS token, flatten, Linear(K*d, 64)+ReLU, Linear(64, 1)."""

    def __init__(self, num_classes: int, cfg: AttackerConfig | None = None):
        super().__init__()
        cfg = cfg or AttackerConfig()
        check_range("num_classes", num_classes, 2, integer=True)
        self.num_classes = int(num_classes)
        self.cfg = cfg
        d = cfg.d_model
        self.norm = nn.BatchNorm1d(3 * num_classes)
        self.embed = nn.Sequential(nn.Linear(3, d), nn.GELU())
        layer = EncoderLayer(d, cfg.heads, cfg.ff, cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=False)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        # SAMIA ends in Linear(64, 2) + softmax; one logit + sigmoid is the same model family.
        self.head = nn.Sequential(nn.Linear(num_classes * d, 64), nn.ReLU(inplace=True), nn.Linear(64, 1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, K, 3) tokens -> (N,) member logits."""
        n, k, f = tokens.shape
        if k != self.num_classes or f != 3:
            raise ConfigError(f"tokens shape {tuple(tokens.shape)} does not fit an attacker for "
                              f"num_classes={self.num_classes}; expected (N, {self.num_classes}, 3)")
        h = self.norm(tokens.reshape(n, k * 3)).view(n, k, 3)
        h = self.embed(h)
        # The layers of self.encoder applied in turn: what nn.TransformerEncoder does without masks
        # or final norm, minus its per-call mask and fast-path checks.
        for layer in self.encoder.layers:
            h = layer(h)
        return self.head(h.reshape(n, -1)).squeeze(-1)

    def prob(self, tokens: torch.Tensor) -> torch.Tensor:
        """Member probability A(tokens) in [0, 1]."""
        return torch.sigmoid(self(tokens))


def make_attacker_optimizer(params, lr: float, momentum: float, weight_decay: float, kind: str = "sgd"):
    """SGD (SAMIA's recipe) or Adam for the attacker.  ``foreach=True`` on every device: the same
    numbers as the per-tensor loop (bit for bit), a third less time per step for ~40 small tensors."""
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, foreach=True)


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC of scores ``pos`` (members) vs ``neg`` (non-members): the Mann-Whitney U statistic with
    average ranks for ties (equals sklearn's ``roc_auc_score``; no sklearn import on the hot path)."""
    pos, neg = np.asarray(pos, np.float64).ravel(), np.asarray(neg, np.float64).ravel()
    n_p, n_n = len(pos), len(neg)
    if n_p == 0 or n_n == 0:
        return float("nan")
    scores = np.concatenate([pos, neg])
    order = np.argsort(scores, kind="mergesort")
    _, inv, counts = np.unique(scores[order], return_inverse=True, return_counts=True)
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank of each distinct value
    ranks = np.empty(len(scores))
    ranks[order] = avg_rank[inv]
    return float((ranks[:n_p].sum() - n_p * (n_p + 1) / 2.0) / (n_p * n_n))


def binary_metrics(logit_pos: torch.Tensor, logit_neg: torch.Tensor) -> dict[str, float]:
    """Accuracy in percent (threshold: logit 0, i.e. A = 0.5) and ROC AUC of member vs non-member logits."""
    lp = logit_pos.detach().float().cpu().numpy()
    ln = logit_neg.detach().float().cpu().numpy()
    if len(lp) == 0 or len(ln) == 0:
        return {"acc": float("nan"), "auc": float("nan")}
    acc = 100.0 * (float((lp > 0).sum()) + float((ln <= 0).sum())) / (len(lp) + len(ln))
    return {"acc": acc, "auc": roc_auc(lp, ln)}


@torch.no_grad()
def _logits(attacker: Attacker, tokens: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    with eval_mode(attacker):
        return torch.cat([attacker(tokens[i:i + batch_size]) for i in range(0, len(tokens), batch_size)]) \
            if len(tokens) else torch.zeros(0, device=tokens.device)


def balanced_pairs(pos_idx: torch.Tensor, neg_idx: torch.Tensor, seed: int = 0,
                   max_n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Equal-size random subsets of ``pos_idx`` and ``neg_idx`` (n = the smaller size, capped at max_n)."""
    pos_idx = torch.as_tensor(pos_idx).cpu()
    neg_idx = torch.as_tensor(neg_idx).cpu()
    n = min(len(pos_idx), len(neg_idx))
    if max_n is not None:
        n = min(n, max_n)
    g = torch.Generator().manual_seed(int(seed))
    return (pos_idx[torch.randperm(len(pos_idx), generator=g)[:n]],
            neg_idx[torch.randperm(len(neg_idx), generator=g)[:n]])


def evaluate_attacker(attacker: Attacker, model: nn.Module, data, pos_idx: torch.Tensor, neg_idx: torch.Tensor,
                      noise: float | None = None, n_noise: int | None = None, seed: int = 0) -> dict[str, float]:
    """Attacker accuracy (%) and AUC on balanced member (``pos_idx``) / non-member (``neg_idx``) pairs."""
    noise = attacker.cfg.sensitivity_noise if noise is None else noise
    n_noise = attacker.cfg.noise_samples if n_noise is None else n_noise
    pos, neg = balanced_pairs(pos_idx, neg_idx, seed)
    gen = torch.Generator(device=data.device).manual_seed(int(seed))
    tp = attack_features(model, data, pos, noise, n_noise, generator=gen)
    tn = attack_features(model, data, neg, noise, n_noise, generator=gen)
    out = binary_metrics(_logits(attacker, tp), _logits(attacker, tn))
    out["n_pairs"] = len(pos)
    return out


class IndexCycler:
    """Endless batches drawn from successive random permutations of ``n`` items (every item once per
    pass; a batch may straddle two passes, so any batch size works for any set size >= 1)."""

    def __init__(self, n: int, generator: torch.Generator):
        if n < 1:
            raise ConfigError("IndexCycler needs a non-empty set")
        self.n, self.g = int(n), generator
        self.perm = torch.randperm(self.n, generator=self.g)
        self.pos = 0

    def next(self, b: int) -> torch.Tensor:
        """The next ``b`` positions (CPU int64)."""
        parts, need = [], b
        while need > 0:
            if self.pos >= self.n:
                self.perm = torch.randperm(self.n, generator=self.g)
                self.pos = 0
            take = min(need, self.n - self.pos)
            parts.append(self.perm[self.pos:self.pos + take])
            self.pos += take
            need -= take
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def pretrain_attacker(model: nn.Module, data, members_idx: torch.Tensor, nonmembers_idx: torch.Tensor,
                      cfg: AttackerConfig | None = None, seed: int = 0, progress: bool = True,
                      heldout_frac: float = 0.2, max_samples: int | None = 10_000,
                      curve_every: int | None = None) -> tuple[Attacker, dict]:
    """Train a fresh attacker to tell the frozen defender's outputs on members from non-members.

    The defender does not change here, so the tokens are computed ONCE (one noise draw per sample)
    and the ``cfg.iterations`` steps run on the cached tokens.  Each batch holds ``batch_size // 2``
    members and as many non-members (cycling random permutations).  ``heldout_frac`` of each set is
    held out; the report gives accuracy (%) and AUC on balanced held-out pairs, sizes and ``time_s``.
    A set larger than ``max_samples`` is replaced by a seeded random subset of that size (1,000
    batches of 64 members see at most 64,000 draws, so e.g. 10,000 of Fashion-MNIST's 54,000 training
    images serve as well and the cached features cost a fifth); None uses every sample.
    ``curve_every``: also record the held-out accuracy and AUC every that many iterations
    (``report["curve"]``, for choosing the iteration count; the training itself is unchanged).
    """
    with phase("attacker_pretrain"):
        return _pretrain_attacker(model, data, members_idx, nonmembers_idx, cfg, seed, progress, heldout_frac,
                                  max_samples, curve_every)


def _pretrain_attacker(model, data, members_idx, nonmembers_idx, cfg, seed, progress, heldout_frac, max_samples,
                       curve_every=None):
    cfg = cfg or AttackerConfig()
    if not isinstance(cfg, AttackerConfig):
        cfg = AttackerConfig.from_dict(cfg)
    check_range("heldout_frac", heldout_frac, 0, 1, lo_open=True, hi_open=True)
    if max_samples is not None:
        check_range("max_samples", max_samples, 2, integer=True)
    members_idx = torch.as_tensor(members_idx).cpu()
    nonmembers_idx = torch.as_tensor(nonmembers_idx).cpu()
    for name, ix in (("members_idx", members_idx), ("nonmembers_idx", nonmembers_idx)):
        if len(ix) < 2:
            raise ConfigError(f"{name} has {len(ix)} samples; allowed: at least 2 (some are held out)")
    t0 = time.perf_counter()
    dev = data.device
    g = torch.Generator().manual_seed(int(seed))
    m_perm = members_idx[torch.randperm(len(members_idx), generator=g)][:max_samples]
    n_perm = nonmembers_idx[torch.randperm(len(nonmembers_idx), generator=g)][:max_samples]
    m_ho = min(len(m_perm) - 1, max(1, round(heldout_frac * len(m_perm))))
    n_ho = min(len(n_perm) - 1, max(1, round(heldout_frac * len(n_perm))))
    m_test, m_train = m_perm[:m_ho], m_perm[m_ho:]
    n_test, n_train = n_perm[:n_ho], n_perm[n_ho:]

    noise_gen = torch.Generator(device=dev).manual_seed(int(seed))
    feats = attack_features(model, data, torch.cat([m_train, n_train]), cfg.sensitivity_noise,
                            cfg.noise_samples, generator=noise_gen)
    f_mem, f_non = feats[:len(m_train)], feats[len(m_train):]
    # Held-out balanced pairs, the next noise draw of the same generator (nothing else draws from it).
    k = min(len(m_test), len(n_test))
    tp = attack_features(model, data, m_test[:k], cfg.sensitivity_noise, cfg.noise_samples, generator=noise_gen)
    tn = attack_features(model, data, n_test[:k], cfg.sensitivity_noise, cfg.noise_samples, generator=noise_gen)
    t_feat = time.perf_counter() - t0
    curve = []

    devices = [dev] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        attacker = Attacker(int(feats.shape[1]), cfg).to(dev)
        opt = make_attacker_optimizer(attacker.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay, cfg.optimizer)
        half = max(1, cfg.batch_size // 2)
        cm, cn = IndexCycler(len(f_mem), g), IndexCycler(len(f_non), g)
        target = torch.cat([torch.ones(half, device=dev), torch.zeros(half, device=dev)])
        bce = nn.BCEWithLogitsLoss()
        bar = _progress(cfg.iterations, "attacker", progress)
        attacker.train()
        running = torch.zeros((), device=dev)
        for it in range(cfg.iterations):
            tok = torch.cat([f_mem[cm.next(half).to(dev)], f_non[cn.next(half).to(dev)]])
            loss = bce(attacker(tok), target)  # = -L_A: descending it is ascent on L_A
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += loss.detach()
            if curve_every and ((it + 1) % curve_every == 0 or it + 1 == cfg.iterations):
                curve.append({"iteration": it + 1, **binary_metrics(_logits(attacker, tp), _logits(attacker, tn))})
            if bar is not None:
                bar.update(1)
                if (it + 1) % 100 == 0:
                    bar.set_postfix(loss=f"{float(running) / 100:.3f}")
                    running.zero_()
        if bar is not None:
            bar.close()
        attacker.eval()
        held = binary_metrics(_logits(attacker, tp), _logits(attacker, tn))
        k_tr = min(len(f_mem), len(f_non))
        train = binary_metrics(_logits(attacker, f_mem[:k_tr]), _logits(attacker, f_non[:k_tr]))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    report = {"acc": held["acc"], "auc": held["auc"], "train_acc": train["acc"], "train_auc": train["auc"],
              "n_heldout_pairs": k, "n_members": len(m_train), "n_nonmembers": len(n_train),
              "iterations": cfg.iterations, "feature_time_s": t_feat, "time_s": time.perf_counter() - t0}
    if curve_every:
        report["curve"] = curve
    return attacker, report


def _progress(total: int, desc: str, enabled: bool):
    import os

    if not enabled or os.environ.get("ADVUNLEARN_PROGRESS", "1") == "0" or total <= 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


__all__ = ["Attacker", "attack_features", "pretrain_attacker", "evaluate_attacker", "make_tokens",
           "probs_and_sensitivity", "probs_with_grad", "binary_metrics", "roc_auc", "balanced_pairs", "IndexCycler",
           "eval_mode", "make_attacker_optimizer"]
