"""What Algorithm 1 records as it runs: its :class:`History` (one dict per record, the timings, the
settings) and the fixed sets the records are measured on (:class:`_EvalSets`).

The record's keys are listed in :mod:`advunlearn.dau.unlearn`'s docstring; notebooks 03 and 05 plot
them live through the loop's callbacks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.train import autocast
from .attacker import attack_features, balanced_pairs, binary_metrics, eval_mode
from .losses import attacker_loss, barlow_twins_loss, cross_correlation

MAX_EVAL_SAMPLES = 2000   # fixed subsamples of D_f and D_r for the history's accuracies
MAX_EVAL_PAIRS = 500      # held-out D_f / D_v pairs for the attacker accuracy and the heatmap
CORR_SIZE = 32            # the recorded cross-correlation matrix is at most CORR_SIZE x CORR_SIZE


@dataclass
class History:
    """What :func:`adversarial_unlearn` recorded: one dict per record, timings and settings."""

    records: list[dict] = field(default_factory=list)
    time_s: float = 0.0            # the whole call, attacker pretraining and record evaluation included
    pretrain_time_s: float = 0.0   # attacker pretraining inside the call (0 if an attacker was given)
    eval_time_s: float = 0.0       # spent computing records (not part of the method's cost)
    config: dict = field(default_factory=dict)
    attacker_report: dict | None = None
    info: dict = field(default_factory=dict)
    attacker: Any = None           # the final attacker (not serialised)

    @property
    def method_time_s(self) -> float:
        """Run time of the method itself: total minus the time spent on records."""
        return self.time_s - self.eval_time_s

    def series(self, key: str) -> list:
        """The values of ``key`` over the records (None where a record lacks it)."""
        return [r.get(key) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def to_dict(self) -> dict:
        """JSON-able copy: arrays become nested lists, NaN becomes None."""
        return _jsonable({"records": self.records, "time_s": self.time_s, "pretrain_time_s": self.pretrain_time_s,
                          "eval_time_s": self.eval_time_s, "method_time_s": self.method_time_s,
                          "config": self.config, "attacker_report": self.attacker_report, "info": self.info})


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, torch.Tensor):
        return _jsonable(o.detach().cpu().tolist())
    if isinstance(o, (np.floating, float)):
        f = float(o)
        return None if not math.isfinite(f) else f
    if isinstance(o, np.integer):
        return int(o)
    return o


@dataclass
class _EvalSets:
    """Fixed index sets for the records (all CPU index tensors)."""

    forget: torch.Tensor
    retain: torch.Tensor
    val: torch.Tensor
    pair_f: torch.Tensor
    pair_v: torch.Tensor
    corr_idx: torch.Tensor | None = None

    @classmethod
    def build(cls, splits, held_val: torch.Tensor, seed: int) -> "_EvalSets":
        g = torch.Generator().manual_seed(int(seed) + 104729)

        def sub(ix, n):
            ix = torch.as_tensor(ix).cpu()
            return ix if len(ix) <= n else ix[torch.randperm(len(ix), generator=g)[:n]].sort().values

        pf, pv = balanced_pairs(splits.forget, held_val, seed=seed + 31, max_n=MAX_EVAL_PAIRS)
        return cls(sub(splits.forget, MAX_EVAL_SAMPLES), sub(splits.retain, MAX_EVAL_SAMPLES),
                   torch.as_tensor(held_val).cpu(), pf, pv)

    @torch.no_grad()
    def evaluate(self, model, attacker, data, noise, n_noise, lambd, seed) -> dict:
        dev = data.device
        out = {}
        with eval_mode(model):
            for name, ix in (("forget_acc", self.forget), ("retain_acc", self.retain), ("val_acc", self.val)):
                xb, yb = data.batch(ix.to(dev))
                with autocast(dev):
                    pred = model(xb).argmax(1)
                out[name] = 100.0 * float((pred == yb).float().mean())
            # attacker on the fixed held-out pairs; the same noise draw at every record
            gen = torch.Generator(device=dev).manual_seed(int(seed) + 1299709)
            tf = attack_features(model, data, self.pair_f, noise, n_noise, generator=gen)
            tv = attack_features(model, data, self.pair_v, noise, n_noise, generator=gen)
            with eval_mode(attacker):
                lf, lv = attacker(tf), attacker(tv)
            m = binary_metrics(lf, lv)
            out["attacker_acc"], out["attacker_auc"] = m["acc"], m["auc"]
            out["attacker_loss_eval"] = float(attacker_loss(lf, lv, "minimax"))
            # features of the same pairs: the current cross-correlation matrix
            if len(self.pair_f) >= 2:
                zf = model.encoder(data.batch(self.pair_f.to(dev))[0]).float()
                zv = model.encoder(data.batch(self.pair_v.to(dev))[0]).float()
                c = cross_correlation(zf, zv)
                if self.corr_idx is None:
                    # the CORR_SIZE most variable features on held-out D_v, fixed for the whole run
                    var = zv.var(0)
                    k = min(CORR_SIZE, len(var))
                    self.corr_idx = torch.topk(var, k).indices.sort().values.cpu()
                ci = self.corr_idx.to(c.device)
                out["corr"] = c[ci][:, ci].cpu().numpy().astype(np.float32)
                diag = torch.diagonal(c)
                out["corr_diag_mean"] = float(diag.mean())
                out["vss_eval"] = float(barlow_twins_loss(zf, zv, lambd))
            else:
                out["corr"], out["corr_diag_mean"], out["vss_eval"] = np.zeros((0, 0), np.float32), float("nan"), float("nan")
        return out
