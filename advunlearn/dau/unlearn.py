"""Algorithm 1 of the paper: adversarial unlearning as a min-max game plus the Barlow-Twins term.

Every iteration draws three batches of the same size B -- D_r, D_f and D_v -- from endless random
permutations (a ``torch.Generator`` seeded by ``seed``), then

1. ``cfg.attacker_steps`` attacker updates by gradient **ascent** on L_A (eq. 1, section 3.1): the
   attacker learns to tell the defender's outputs on D_f (members, label 1) from D_v (non-members,
   label 0); the defender's features are detached.  Each attacker step draws its own D_f/D_v pair
   of batches; the defender step reuses the last one (with ``attacker_steps=1`` this is exactly
   Algorithm 1: one evaluation of D(x_f), D(x_v) per iteration);
2. one defender update by gradient **descent** on
   ``CE(D_r) + alpha * attacker_loss(kind=cfg.loss) + beta * V_ss(enc(x_f), enc(x_v))``
   (eq. 3), with gradients flowing through the softmax ``p`` of the D_f and D_v batches into the
   (updated, frozen-for-this-step) attacker; OMP masks are re-applied after every step.

Choices the paper leaves open, stated here:

* the attacker's optimiser is SGD with ``cfg.attacker_lr``, momentum 0.9 and SAMIA's weight decay
  (``attacker_cfg.momentum`` / ``weight_decay``); the defender's is SGD with ``cfg.lr``,
  ``cfg.momentum``, ``cfg.weight_decay`` (the paper's "stochastic gradient descent");
* the defender is in train mode for its CE forward on the D_r batch only, so BatchNorm's running
  statistics are estimated from D_r and never from the data being forgotten (nor from D_v); the
  D_f/D_v batch goes through the defender in eval mode and fp32 (the deployed model): its encoder
  features feed V_ss and its softmax p the attacker term (so V_ss and the attacker see the same
  model the records and the evaluation see); the sensitivity is computed in eval mode too, see
  :mod:`advunlearn.dau.attacker`; the attacker is in eval mode (running BatchNorm statistics, no
  dropout) while it serves the defender's loss, in train mode for its own steps;
* with ``beta = 0`` (Table 2's ablation) V_ss is computed without gradients, for the records only;
* augmentation (``cfg.augment``) applies to the D_r batch only -- the attacker and V_ss see the
  samples as they are (an attacker queries the real sample);
* class-wise: after ``cfg.alpha_off_after`` iterations alpha is 0 (section 4.2), the attacker term
  is dropped and the attacker is no longer trained (it would not influence anything);
* D_v is split once (seeded) into a part the loop samples and a held-out part used only for the
  history's attacker accuracy, the validation accuracy and the cross-correlation heatmap, so those
  numbers are measured on samples the loop never touched.  D_f cannot be held out -- all of it must
  be forgotten -- so the pairs are a fixed subsample of D_f against the held-out part of D_v.  When
  this function pretrains the attacker itself, it uses D (members) vs the loop part of D_v.

History records (one dict each; made at iteration 0, every ``eval_every`` iterations and at the end):
``iteration``, ``alpha`` (in effect for the last iteration), the means since the previous record of
``attacker_loss`` (L_A at the attacker steps; NaN when none ran), ``defender_adv`` (the defender's
adversarial term), ``ce`` and ``vss`` (V_ss on the loop's batches); and, measured now in eval mode on
fixed sets: ``forget_acc``, ``retain_acc`` (fixed subsamples of at most 2,000), ``val_acc`` (held-out
D_v), ``attacker_acc`` / ``attacker_auc`` / ``attacker_loss_eval`` (the current attacker on the fixed
held-out D_f / D_v pairs, one fixed noise draw), ``corr`` (the cross-correlation matrix of those
pairs' encoder features restricted to the <= 32 features most variable on held-out D_v -- a
sub-matrix, so the diagonal stays visible -- as a float32 numpy array), ``corr_diag_mean``
(mean diagonal of the full matrix), ``vss_eval`` and ``time_s`` (loop time without the records);
:mod:`advunlearn.dau.history` keeps them.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Iterable, Mapping

import torch
from torch import nn

from ..core.config import AttackerConfig, ConfigError, UnlearnConfig, check_choice, check_range
from ..core.models import check_defender
from ..core.prune import apply_masks
from ..core.timing import phase
from ..core.train import autocast, make_sgd, prepare_model
from .attacker import (IndexCycler, _no_autocast, eval_mode, make_attacker_optimizer, make_tokens, pretrain_attacker,
                       probs_and_sensitivity)
from .history import History, _EvalSets
from .losses import attacker_loss, barlow_twins_loss

MAX_HELDOUT_VAL = 1000    # at most this many D_v samples are held out of the loop

Callback = Callable[[dict], None]


def split_validation(val_idx: torch.Tensor, seed: int = 0, frac: float = 0.5,
                     max_heldout: int = MAX_HELDOUT_VAL) -> tuple[torch.Tensor, torch.Tensor]:
    """Split D_v once into (loop part, held-out part): ``frac`` of it, at most ``max_heldout``, is held out."""
    val_idx = torch.as_tensor(val_idx).cpu()
    if len(val_idx) < 2:
        raise ConfigError(f"splits.val has {len(val_idx)} samples; allowed: at least 2 (one part is sampled by "
                          "the loop, the other held out for evaluation)")
    g = torch.Generator().manual_seed(int(seed) + 7919)
    perm = val_idx[torch.randperm(len(val_idx), generator=g)]
    n_hold = max(1, min(int(max_heldout), int(frac * len(val_idx)), len(val_idx) - 1))
    return perm[n_hold:].sort().values, perm[:n_hold].sort().values


# ---- validation -------------------------------------------------------------------------------
def _as_unlearn_config(cfg) -> UnlearnConfig:
    if cfg is None:
        return UnlearnConfig()
    if isinstance(cfg, UnlearnConfig):
        c = cfg
    elif isinstance(cfg, Mapping):
        c = UnlearnConfig.from_dict(cfg)
    else:
        raise ConfigError(f"cfg={cfg!r} is not allowed; pass an UnlearnConfig, a mapping of its fields, or None")
    # Re-check the fields a hand-built object could carry past __post_init__.
    check_range("alpha", c.alpha, 0)
    check_range("beta", c.beta, 0)
    check_range("lambd", c.lambd, 0)
    return c


def _as_attacker_config(cfg) -> AttackerConfig:
    if cfg is None:
        return AttackerConfig()
    if isinstance(cfg, AttackerConfig):
        return cfg
    if isinstance(cfg, Mapping):
        return AttackerConfig.from_dict(cfg)
    raise ConfigError(f"attacker_cfg={cfg!r} is not allowed; pass an AttackerConfig, a mapping, or None")


def _check_splits(splits, data) -> None:
    for name in ("train", "forget", "retain", "val"):
        if not hasattr(splits, name):
            raise ConfigError(f"splits has no field {name!r}; allowed: a Splits from advunlearn.core.data.make_splits "
                              "(fields train, forget, retain, val)")
    n_all = len(data.y)
    for name in ("train", "forget", "retain", "val"):
        ix = torch.as_tensor(getattr(splits, name)).cpu()
        if ix.dtype not in (torch.int64, torch.int32) or ix.dim() != 1:
            raise ConfigError(f"splits.{name} must be a 1-D integer index tensor; got dtype {ix.dtype}, shape "
                              f"{tuple(ix.shape)}")
        if len(ix) and (int(ix.min()) < 0 or int(ix.max()) >= n_all):
            raise ConfigError(f"splits.{name} has indices outside the dataset; allowed: 0..{n_all - 1}")
    forget = torch.as_tensor(splits.forget).cpu()
    train = torch.as_tensor(splits.train).cpu()
    if len(forget) == 0:
        raise ConfigError("splits.forget is empty; allowed: a non-empty subset of splits.train")
    outside = int((~torch.isin(forget, train)).sum())
    if outside:
        raise ConfigError(f"splits.forget has {outside} indices outside splits.train; allowed: a non-empty "
                          "subset of splits.train (D_f must be part of the training set D)")
    retain = torch.as_tensor(splits.retain).cpu()
    if len(retain) == 0:
        raise ConfigError("splits.retain is empty; allowed: a non-empty subset of splits.train")
    if bool(torch.isin(retain, forget).any()):
        raise ConfigError("splits.retain overlaps splits.forget; allowed: disjoint sets (D_r = D \\ D_f)")
    if bool(torch.isin(torch.as_tensor(splits.val).cpu(), train).any()):
        raise ConfigError("splits.val overlaps splits.train; allowed: validation samples never trained on")


def _check_masks(model: nn.Module, masks) -> dict | None:
    if masks is None:
        return None
    if not isinstance(masks, Mapping):
        raise ConfigError(f"masks={type(masks).__name__} is not allowed; pass None or a dict "
                          "{parameter name: bool tensor} from advunlearn.core.prune.omp")
    params = dict(model.named_parameters())
    for name, m in masks.items():
        if name not in params:
            raise ConfigError(f"masks has key {name!r}, which is not a parameter of the model; allowed keys: "
                              f"{sorted(params)[:8]}...")
        if tuple(m.shape) != tuple(params[name].shape):
            raise ConfigError(f"masks[{name!r}] has shape {tuple(m.shape)}; allowed: the parameter's shape "
                              f"{tuple(params[name].shape)}")
    return dict(masks)


# ---- the loop ---------------------------------------------------------------------------------
class AdversarialUnlearner:
    """Algorithm 1 as a steppable object (notebooks can drive it one iteration at a time).

    ``step()`` runs one iteration (attacker steps, then the defender step); ``record()`` evaluates
    and appends a history record; ``run()`` does all ``cfg.iterations``.  The constructor validates
    every input before any work and pretrains the attacker when none is given.
    """

    def __init__(self, model: nn.Module, data, splits, cfg: UnlearnConfig | Mapping | None = None,
                 attacker: nn.Module | None = None, attacker_cfg: AttackerConfig | Mapping | None = None,
                 masks: dict | None = None, seed: int = 0, callbacks: Iterable[Callback] = (),
                 progress: bool = True, eval_every: int | None = None):
        self.t_start = time.perf_counter()
        cfg = _as_unlearn_config(cfg)
        attacker_cfg = _as_attacker_config(attacker_cfg)
        check_defender(model)
        check_range("seed", seed, 0, integer=True)
        every = cfg.record_every if eval_every is None else eval_every
        check_range("eval_every", every, 1, integer=True)
        _check_splits(splits, data)
        masks = _check_masks(model, masks)
        k_classes = int(data.num_classes)
        if getattr(model, "num_classes", k_classes) != k_classes:
            raise ConfigError(f"model.num_classes={model.num_classes} is not allowed; it must equal the dataset's "
                              f"number of classes ({k_classes})")
        if attacker is not None and getattr(attacker, "num_classes", k_classes) != k_classes:
            raise ConfigError(f"attacker.num_classes={attacker.num_classes} is not allowed; it must equal the "
                              f"dataset's number of classes ({k_classes})")

        self.model, self.data, self.splits, self.cfg, self.attacker_cfg = model, data, splits, cfg, attacker_cfg
        self.masks, self.seed, self.every, self.k = masks, int(seed), int(every), k_classes
        self.callbacks = list(callbacks)
        self.progress = progress
        self.dev = dev = data.device
        prepare_model(model, dev)
        if masks:
            apply_masks(model, masks)
        self.noise, self.n_noise = cfg.sensitivity_noise, attacker_cfg.noise_samples
        self.loop_val, self.held_val = split_validation(splits.val, seed)
        self.history = History(config={"unlearn": cfg.to_dict(), "attacker": attacker_cfg.to_dict(),
                                       "seed": self.seed, "record_every": self.every})

        # attacker pretraining: D (members) vs the loop part of D_v, 1,000 iterations by default
        if attacker is None:
            acfg = attacker_cfg.updated(sensitivity_noise=self.noise)
            attacker, rep = pretrain_attacker(model, data, splits.train, self.loop_val, acfg, seed=seed,
                                              progress=progress)
            self.history.attacker_report, self.history.pretrain_time_s = rep, rep["time_s"]
        self.attacker = attacker.to(dev)
        self._att_params = list(attacker.parameters())

        self.eval_sets = _EvalSets.build(splits, self.held_val, seed)
        self.history.info.update({
            "n_forget": len(splits.forget), "n_retain": len(splits.retain), "n_val_loop": len(self.loop_val),
            "n_val_heldout": len(self.held_val), "n_eval_pairs": len(self.eval_sets.pair_f),
            "eval_forget": len(self.eval_sets.forget), "eval_retain": len(self.eval_sets.retain)})

        self.def_opt = make_sgd(model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
        # The paper does not name the attacker's optimiser: SGD, momentum 0.9 (SAMIA's), at cfg.attacker_lr.
        self.att_opt = make_attacker_optimizer(attacker.parameters(), cfg.attacker_lr, attacker_cfg.momentum,
                                               attacker_cfg.weight_decay)
        self.gen = torch.Generator().manual_seed(self.seed)                     # batch order
        self.dgen = torch.Generator(device=dev).manual_seed(self.seed + 1)     # noise, augmentation
        self.r_idx, self.f_idx, self.v_idx = (torch.as_tensor(t).to(dev)
                                              for t in (splits.retain, splits.forget, self.loop_val))
        self.cyc_r = IndexCycler(len(self.r_idx), self.gen)
        self.cyc_f = IndexCycler(len(self.f_idx), self.gen)
        self.cyc_v = IndexCycler(len(self.v_idx), self.gen)
        self.ce_fn = nn.CrossEntropyLoss()
        self.iteration = 0
        self._alpha_last = self.alpha_at(0)
        self._sums = {k: torch.zeros((), device=dev) for k in ("attacker_loss", "defender_adv", "ce", "vss")}
        self._counts = dict.fromkeys(self._sums, 0)
        self._t_eval = 0.0
        self._bar = None

    # -- pieces ---------------------------------------------------------------------------------
    def alpha_at(self, iteration: int) -> float:
        """alpha in effect at (0-based) ``iteration``: 0 from ``cfg.alpha_off_after`` on (None: always on)."""
        off = self.cfg.alpha_off_after
        return 0.0 if (off is not None and iteration >= off) else float(self.cfg.alpha)

    def next_batches(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next D_f and D_v index batches (size B each, on the device)."""
        B, dev = self.cfg.batch_size, self.dev
        return self.f_idx[self.cyc_f.next(B).to(dev)], self.v_idx[self.cyc_v.next(B).to(dev)]

    def attack_batch(self, fb: torch.Tensor, vb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images, labels and the detached sensitivity of [D_f batch; D_v batch] (one batched forward)."""
        x, y = self.data.batch(torch.cat([fb, vb]))
        with phase("sensitivity"):
            p, s = probs_and_sensitivity(self.model, x, self.noise, self.n_noise, self.dgen)
        return x, y, s, p

    def attacker_step(self, fb: torch.Tensor, vb: torch.Tensor):
        """One gradient-ascent step of the attacker on L_A (defender outputs detached); returns
        (L_A before the step, the batch for the defender step)."""
        with phase("attacker_step"):
            return self._attacker_step(fb, vb)

    def _attacker_step(self, fb, vb):
        x, y, s, p = self.attack_batch(fb, vb)
        self.attacker.train()
        logit = self.attacker(make_tokens(p, s, y, self.k))
        la = attacker_loss(logit[:len(fb)], logit[len(fb):], "minimax")
        self.att_opt.zero_grad(set_to_none=True)
        (-la).backward()  # descent on -L_A == ascent on L_A
        self.att_opt.step()
        return la.detach(), (x, y, s, len(fb))

    def defender_step(self, rb: torch.Tensor, batch, alpha: float) -> dict[str, torch.Tensor]:
        """One descent step on CE(D_r) + alpha * attacker_loss(cfg.loss) + beta * V_ss; masks re-applied.

        Two forwards: the D_r batch in train mode (its BatchNorm statistics, so running statistics are
        estimated from D_r alone -- never from the data being forgotten), and the D_f/D_v batch in eval
        mode, fp32, whose encoder features feed V_ss and whose softmax p feeds the attacker term.
        """
        with phase("defender_step"):
            return self._defender_step(rb, batch, alpha)

    def _defender_step(self, rb, batch, alpha):
        cfg, model = self.cfg, self.model
        x_fv, y_fv, s, nf = batch
        model.train()
        x_r, y_r = self.data.batch(rb, augment=cfg.augment, generator=self.dgen)
        with autocast(self.dev):
            logits_r = model(x_r)
        ce = self.ce_fn(logits_r.float(), y_r)
        loss = ce
        out = {"ce": ce.detach()}
        need_grad = alpha > 0 or cfg.beta > 0
        with eval_mode(model), _no_autocast(self.dev), torch.set_grad_enabled(need_grad):
            z = model.encoder(x_fv.float()).float()
            logits_fv = model.fc(z) if alpha > 0 else None
        if cfg.beta > 0:
            vss = barlow_twins_loss(z[:nf], z[nf:], cfg.lambd)
            loss = loss + cfg.beta * vss
            out["vss"] = vss.detach()
        else:  # the beta = 0 ablation: V_ss is only watched, not differentiated
            with torch.no_grad():
                out["vss"] = barlow_twins_loss(z[:nf].detach(), z[nf:].detach(), cfg.lambd)
        if alpha > 0:
            p_grad = torch.softmax(logits_fv, dim=-1)
            # p carries the gradient, s stays detached; the attacker is frozen and in eval mode.
            for q in self._att_params:
                q.requires_grad_(False)
            try:
                with eval_mode(self.attacker):
                    logit = self.attacker(make_tokens(p_grad, s, y_fv, self.k))
            finally:
                for q in self._att_params:
                    q.requires_grad_(True)
            adv = attacker_loss(logit[:nf], logit[nf:], cfg.loss)
            loss = loss + alpha * adv
            out["defender_adv"] = adv.detach()
        self.def_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.def_opt.step()
        if self.masks:
            apply_masks(model, self.masks)
        return out

    def step(self) -> None:
        """One iteration of Algorithm 1."""
        cfg = self.cfg
        alpha = self.alpha_at(self.iteration)
        batch = None
        if alpha > 0:
            for _ in range(cfg.attacker_steps):
                la, batch = self.attacker_step(*self.next_batches())
                self._sums["attacker_loss"] += la
                self._counts["attacker_loss"] += 1
        if batch is None:  # alpha off or attacker_steps == 0: the D_f/D_v batch still feeds V_ss (and L_A)
            fb, vb = self.next_batches()
            x, y, s, _ = self.attack_batch(fb, vb) if alpha > 0 else (*self.data.batch(torch.cat([fb, vb])), None, None)
            batch = (x, y, s, len(fb))
        rb = self.r_idx[self.cyc_r.next(cfg.batch_size).to(self.dev)]
        for key, v in self.defender_step(rb, batch, alpha).items():
            self._sums[key] += v
            self._counts[key] += 1
        self.iteration += 1
        self._alpha_last = alpha

    @torch.no_grad()
    def objective(self, fb: torch.Tensor, vb: torch.Tensor, seed: int = 0, kind: str = "minimax",
                  attacker_mode: str = "eval") -> float:
        """L_A (or the defender's ``kind`` term) of the current pair on fixed batches with the noise
        drawn from ``seed``; ``attacker_mode="train"`` evaluates what an attacker step optimises
        (batch statistics; BatchNorm buffers are restored afterwards).  For tests and inspection."""
        check_choice("attacker_mode", attacker_mode, ("eval", "train"))
        x, y = self.data.batch(torch.cat([fb, vb]))
        gen = torch.Generator(device=self.dev).manual_seed(int(seed))
        p, s = probs_and_sensitivity(self.model, x, self.noise, self.n_noise, gen)
        tokens = make_tokens(p, s, y, self.k)
        if attacker_mode == "eval":
            with eval_mode(self.attacker):
                logit = self.attacker(tokens)
        else:
            buffers = {n: b.clone() for n, b in self.attacker.named_buffers()}
            was = self.attacker.training
            self.attacker.train()
            logit = self.attacker(tokens)
            self.attacker.train(was)
            for n, b in self.attacker.named_buffers():
                b.copy_(buffers[n])
        return float(attacker_loss(logit[:len(fb)], logit[len(fb):], kind))

    def record(self) -> dict:
        """Evaluate now, append a record to the history and hand it to every callback."""
        with phase("records"):
            return self._record()

    def _record(self) -> dict:
        t0 = time.perf_counter()
        rec = {"iteration": self.iteration, "alpha": self._alpha_last}
        for key in self._sums:  # host syncs only here
            rec[key] = float(self._sums[key]) / self._counts[key] if self._counts[key] else float("nan")
            self._sums[key].zero_()
            self._counts[key] = 0
        rec.update(self.eval_sets.evaluate(self.model, self.attacker, self.data, self.noise, self.n_noise,
                                           self.cfg.lambd, self.seed))
        rec["time_s"] = time.perf_counter() - self.t_start - self._t_eval - self.history.pretrain_time_s
        self.history.records.append(rec)
        for cb in self.callbacks:
            cb(rec)
        if self._bar is not None:
            self._bar.set_postfix(forget=f"{rec['forget_acc']:.1f}", retain=f"{rec['retain_acc']:.1f}",
                                  att=f"{rec['attacker_acc']:.0f}")
        self._t_eval += time.perf_counter() - t0
        return rec

    def run(self) -> tuple[nn.Module, History]:
        """All ``cfg.iterations`` iterations with records at 0, every ``eval_every`` and at the end.

        The attacker's dropout draws from the global RNG; ``run`` seeds it from ``seed`` inside a
        forked RNG state, so one seed fixes the whole run and the caller's RNG is left untouched
        (driving ``step()`` by hand uses the caller's global RNG instead).
        """
        devices = [self.dev] if self.dev.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed + 2)
            with phase("loop_other"):  # what the loop spends outside the named phases (batches, bookkeeping)
                return self._run()

    def _run(self) -> tuple[nn.Module, History]:
        total = self.cfg.iterations
        self._bar = _progress(total - self.iteration, self.progress)
        if self.iteration == 0 and not self.history.records:
            self.record()
        while self.iteration < total:
            self.step()
            if self._bar is not None:
                self._bar.update(1)
            if self.iteration % self.every == 0 or self.iteration == total:
                self.record()
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        return self.finish()

    def finish(self) -> tuple[nn.Module, History]:
        """Put both networks in eval mode and fill in the history's timings."""
        self.model.eval()
        self.attacker.eval()
        if self.dev.type == "cuda":
            torch.cuda.synchronize()
        h = self.history
        h.eval_time_s = self._t_eval
        h.time_s = time.perf_counter() - self.t_start
        h.attacker = self.attacker
        return self.model, h


def adversarial_unlearn(model: nn.Module, data, splits, cfg: UnlearnConfig | Mapping | None = None,
                        attacker: nn.Module | None = None, attacker_cfg: AttackerConfig | Mapping | None = None,
                        masks: dict | None = None, seed: int = 0, callbacks: Iterable[Callback] = (),
                        progress: bool = True, eval_every: int | None = None) -> tuple[nn.Module, History]:
    """Run Algorithm 1 on ``model`` in place; return ``(model, history)``.

    ``attacker``: a pretrained :class:`~advunlearn.dau.attacker.Attacker` (trained further in place);
    None pretrains one with ``attacker_cfg`` on D (members) vs the loop part of D_v.
    ``masks``: OMP masks kept exact after every defender step.  ``callbacks`` receive every record
    dict.  Records are made before the first step (iteration 0), every ``eval_every`` iterations
    (default ``cfg.record_every``) and after the last one.  ``history.time_s`` is the whole call;
    ``history.method_time_s`` leaves out the records' evaluation.
    """
    return AdversarialUnlearner(model, data, splits, cfg, attacker, attacker_cfg, masks, seed, callbacks,
                                progress, eval_every).run()


# Seconds one Algorithm 1 iteration takes at the least, rounded down from benchmarks/RESULTS.md: the
# digits MLP on one idle CPU thread 85 ms (batch 128; this project's CPU profiles use 64), the small
# CNN on a CPU thread 6.7 s (Fashion-MNIST), ResNet-18 on an H100 74 ms.  Unmeasured settings (a
# GPU for the small models) get the smallest value.  Used only to warn before a run of absurd size.
SECONDS_PER_ITERATION = {("mlp", "cpu"): 0.04, ("cnn", "cpu"): 2.0, ("resnet18", "cpu"): 2.0,
                         ("resnet18", "cuda"): 0.05}
LONG_RUN_S = 3600.0


def long_run_warning(iterations: int, model: str, device: str) -> str | None:
    """A warning, with the least time it can take, when ``iterations`` of Algorithm 1 take over an hour."""
    dev = str(device).split(":")[0]
    known = [v for (m, d), v in SECONDS_PER_ITERATION.items() if m == model and dev in (d, "auto")]
    per = min(known) if known else min(SECONDS_PER_ITERATION.values())  # "auto": the faster device
    est = iterations * per
    if est < LONG_RUN_S:
        return None
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if est >= size or unit == "minutes":
            took = f"{est / size:,.1f} {unit}"
            break
    where = {"cpu": " on a CPU", "cuda": " on a GPU"}.get(dev, "")
    basis = f"the {model} model{where}" if known else "any model and device"
    return (f"iterations={iterations:,} of Algorithm 1 will take at least {took} (at {per * 1000:g} ms per "
            f"iteration, the least measured for {basis}); Ctrl-C stops it, and what it finished stays in the store")


def _progress(total: int, enabled: bool):
    if not enabled or os.environ.get("ADVUNLEARN_PROGRESS", "1") == "0":
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="unlearn", leave=False)


__all__ = ["adversarial_unlearn", "AdversarialUnlearner", "History", "split_validation", "long_run_warning"]
