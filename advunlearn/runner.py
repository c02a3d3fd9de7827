"""One experiment end to end: every method on one (dataset, scheme, sparsity, seed, profile).

Each method's evaluated result is an artifact in the store (keyed by everything that produced it),
so asking again costs nothing and a crashed run redoes only what is missing.  A result record is a
flat JSON-able dict::

    {"dataset", "scheme", "sparsity", "seed", "profile", "model", "forget_class", "method",
     "UA", "RA", "TA", "VA", "MIA_efficacy", "run_time_s", "mia": {...}, "hparams": {...}}

which :func:`advunlearn.report.build_report` turns into Table 1, Table 2 and Figure 2.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch

from .config import ConfigError, UnlearnConfig, check_choice
from .experiment import Experiment
from .metrics import DivergedError, failure
from .store import atomic_write_json, load_model, load_state, read_json, save_model, save_state

BASELINES = ("retrain", "ft", "ga", "ff", "iu")
OURS = ("ours", "ours_no_vss")
ALL_METHODS = BASELINES + OURS
DEFAULT_METHODS = ALL_METHODS


# A method's entry goes up when its code changes what it computes, so a store does not hand back
# results of the older code (they are part of the store keys).  ours 2: D_r-only BatchNorm
# statistics in the defender step, attacker pretrained on the loop part of D_v, run time without the
# records.  ff 2: the last layer's variance x10 and the class-wise row reset of the reference code.
RESULT_VERSION = {"ours": 2, "ours_no_vss": 2, "ff": 2}
# The same for the strong-attack evaluation. 2: RMIA's population is the held-out part of D_v, its
# ties are broken by ratio(x), and the attacks read fp32 logits on every device.
STRONG_VERSION = 2


def unlearn_config(exp: Experiment, **overrides) -> UnlearnConfig:
    """The profile's UnlearnConfig for this scheme/sparsity, with overrides (alpha=..., beta=...)."""
    cfg = exp.prof.unlearn_for(exp.scheme, exp.sparsity)
    return cfg.updated(**overrides) if overrides else cfg


def pretrained_attacker(exp: Experiment):
    """The attacker pretrained on θ0 (members D vs non-members: the loop part of D_v), from the store
    or trained now.  The held-out part of D_v (:func:`advunlearn.unlearn.split_validation`) stays
    unseen, so the history's attacker accuracy on it measures generalisation, as when
    :func:`advunlearn.unlearn.adversarial_unlearn` pretrains its own attacker."""
    from .attacker import Attacker, pretrain_attacker
    from .unlearn import split_validation

    model, _ = exp.original()
    cfg = exp.prof.attacker
    key = {**exp.data_key(), **exp.model_key(), "attacker": cfg.to_dict(), "nonmembers": "val-loop-part"}

    def compute(d: Path):
        loop_val, _ = split_validation(exp.splits.val, exp.seed)
        att, report = pretrain_attacker(model, exp.data, exp.splits.train, loop_val, cfg, seed=exp.seed,
                                        progress=exp.progress)
        save_state(d / "attacker.safetensors", att.state_dict(), {"kind": "attacker", "num_classes": exp.data.num_classes})
        atomic_write_json(d / "report.json", report)
        return att, report

    def load(d: Path):
        att = Attacker(exp.data.num_classes, cfg).to(exp.dev)
        state, _ = load_state(d / "attacker.safetensors", {"num_classes": exp.data.num_classes}, exp.dev)
        att.load_state_dict(state)
        return att, read_json(d / "report.json")

    (att, report), _ = exp.store.cached("attacker", key, compute, load)
    return att, report


def unlearn_ours(exp: Experiment, cfg: UnlearnConfig | None = None, *, vss: bool = True,
                 callbacks: Iterable[Callable[[dict], None]] = (), reuse: bool = True):
    """Adversarial unlearning (Algorithm 1) of θ0; returns ``(model, info, history_dict)``.

    ``vss=False`` is the Table 2 ablation (β = 0).  With ``reuse`` a stored result is loaded (its
    callbacks are not replayed); the run time includes attacker pretraining.
    """
    from .unlearn import adversarial_unlearn

    cfg = cfg or unlearn_config(exp)
    if not vss:
        cfg = cfg.updated(beta=0.0)
    original, _ = exp.original()
    key = {**exp.forget_key(), **exp.model_key(), "attacker": exp.prof.attacker.to_dict(), "unlearn": cfg.to_dict(),
           "v": RESULT_VERSION["ours"]}

    def compute(d: Path):
        t0 = time.perf_counter()
        attacker, att_report = pretrained_attacker(exp)
        att_time = att_report.get("time_s", time.perf_counter() - t0)
        model = copy.deepcopy(original)
        model, hist = adversarial_unlearn(model, exp.data, exp.splits, cfg, attacker=copy.deepcopy(attacker),
                                          attacker_cfg=exp.prof.attacker, masks=exp.masks(original), seed=exp.seed,
                                          callbacks=list(callbacks), progress=exp.progress)
        hd = hist.to_dict()
        # run time = attacker pretraining + the loop itself; the history's records (evaluation for the
        # plots) are left out, as every other method's run time leaves out its evaluation
        info = {"method": "ours" if vss else "ours_no_vss", "run_time_s": att_time + hd["method_time_s"],
                "hparams": cfg.to_dict(), "attacker": att_report, "unlearn_time_s": hd["method_time_s"],
                "records_time_s": hd["eval_time_s"]}
        save_model(d / "model.safetensors", model, {**_sig(exp, model), "info": info})
        atomic_write_json(d / "history.json", hd)
        return model, info, hd

    def load(d: Path):
        model = copy.deepcopy(original)
        meta = load_model(d / "model.safetensors", model, expect=_sig(exp, model))
        return model, meta["info"], read_json(d / "history.json")

    if not reuse and exp.store.done("unlearn", key):
        import shutil

        shutil.rmtree(exp.store.path("unlearn", key))
    out, _ = exp.store.cached("unlearn", key, compute, load)
    return out


def _sig(exp, model):
    from .models import model_signature

    return model_signature(model, exp.dataset)


def run_method(exp: Experiment, method: str, **overrides):
    """(model, info) for one method; ``overrides`` go to the baseline or to the UnlearnConfig."""
    check_choice("method", method, ALL_METHODS)
    if method in OURS:
        model, info, _ = unlearn_ours(exp, unlearn_config(exp, **overrides), vss=method == "ours")
        return model, info
    from .baselines import run_baseline

    return run_baseline(method, exp, **overrides)


def record_base(exp: Experiment) -> dict:
    return {"dataset": exp.dataset, "scheme": exp.scheme, "sparsity": exp.sparsity, "seed": exp.seed,
            "profile": exp.profile, "model": exp.prof.model, "forget_class": exp.splits.forget_class,
            "forget_frac": exp.forget_frac if exp.scheme == "random" else None}


def evaluate_method(exp: Experiment, method: str, *, strong_eval: bool = False, overrides: dict | None = None) -> dict:
    """The evaluated result record of ``method`` (computed once, then read from the store)."""
    from .metrics import evaluate

    overrides = overrides or {}
    key = {**exp.forget_key(), **exp.model_key(), "method": method, "overrides": overrides,
           "profile": _profile_key(exp, method), "strong": strong_eval and STRONG_VERSION, "v": RESULT_VERSION.get(method, 1)}

    def compute(d: Path):
        model, info = run_method(exp, method, **overrides)
        rec = {**record_base(exp), "method": method, **evaluate(model, exp, info.get("run_time_s")),
               "hparams": info.get("hparams", {})}
        if "attacker" in info:
            rec["attacker"] = info["attacker"]
        if strong_eval:
            rec["strong"] = strong_evaluation(model, exp)
        atomic_write_json(d / "result.json", rec)
        return rec

    rec, _ = exp.store.cached("result", key, compute, lambda d: read_json(d / "result.json"))
    return rec


def _profile_key(exp: Experiment, method: str) -> dict:
    p = exp.prof
    if method in OURS:
        return {"attacker": p.attacker.to_dict(), "unlearn": unlearn_config(exp).to_dict()}
    if method == "ft":
        return {"finetune": p.finetune.to_dict()}
    if method == "ga":
        return {"ga": p.ga.to_dict()}
    return {"pretrain": p.pretrain.to_dict()}


def strong_evaluation(model, exp: Experiment, n_refs: int = 4) -> dict:
    """LiRA/RMIA against shared reference models, plus a fresh post-hoc attacker."""
    from .strong import reference_models, strong_attack_report

    refs = reference_models(exp, n=n_refs)
    out = strong_attack_report(model, exp, refs)
    out["fresh_attacker"] = fresh_attacker(model, exp)
    return out


def fresh_attacker(model, exp: Experiment) -> dict:
    """A new attacker of the same architecture trained post hoc on the frozen model.

    Members: D_r; non-members: half of D_v; evaluated on held-out D_f vs the other half of D_v
    (so it answers: can a fresh adversary still tell forgotten samples from unseen ones?).
    """
    from .attacker import evaluate_attacker, pretrain_attacker

    g = torch.Generator().manual_seed(exp.seed + 777)
    val = exp.splits.val[torch.randperm(len(exp.splits.val), generator=g)]
    half = len(val) // 2
    att, rep = pretrain_attacker(model, exp.data, exp.splits.retain, val[:half], exp.prof.attacker,
                                 seed=exp.seed + 777, progress=False)
    ev = evaluate_attacker(att, model, exp.data, exp.splits.forget, val[half:], seed=exp.seed)
    return {"train_report": rep, "forget_vs_val": ev}


def run_experiment(exp: Experiment, methods: Sequence[str] = DEFAULT_METHODS, *, strong_eval: bool = False,
                   ours_overrides: dict | None = None, out: str | Path | None = None,
                   log: Callable[[str], None] | None = print) -> list[dict]:
    """Run and evaluate ``methods`` on ``exp``; write the records to ``out`` (JSON) if given.

    ``ours_overrides`` (alpha, beta, lr, iterations, ...) change the UnlearnConfig of Ours and its ablation.
    """
    if ours_overrides:
        cfg = unlearn_config(exp, **ours_overrides)  # validate before any work
        _warn_if_long(exp, cfg, methods)
    for m in methods:
        check_choice("method", m, ALL_METHODS)
    if not methods:
        raise ConfigError(f"methods is empty; choose from {', '.join(ALL_METHODS)}")
    recs = []
    for m in methods:
        t0 = time.perf_counter()
        rec = evaluate_method(exp, m, strong_eval=strong_eval, overrides=ours_overrides if m in OURS else None)
        recs.append(rec)
        if log:
            log(f"  {m:12s} UA {rec['UA']:6.2f}  MIA {rec['MIA_efficacy']:6.2f}  RA {rec['RA']:6.2f}  "
                f"TA {rec['TA']:6.2f}  run {rec['run_time_s'] or 0:7.2f}s  ({time.perf_counter() - t0:.1f}s wall)"
                + (f"  FAILED: {failure(rec)}" if failure(rec) else ""))
    if out is not None:
        atomic_write_json(out, recs)
    if any(failure(r) for r in recs):  # the records are written, marked failed; the run is not a success
        raise DivergedError(recs, str(out) if out is not None else None)
    return recs


class LongRunWarning(UserWarning):
    """A run's size (iterations) makes it take hours or more."""


def _warn_if_long(exp: Experiment, cfg: UnlearnConfig, methods: Sequence[str]) -> None:
    import warnings

    from .unlearn import long_run_warning

    msg = long_run_warning(cfg.iterations, exp.prof.model, exp.dev.type) if set(methods) & set(OURS) else None
    if msg:
        warnings.warn(LongRunWarning(msg), stacklevel=3)


def records_markdown(recs: Sequence[dict]) -> str:
    """One experiment's records as a markdown table with Avg. Disparity against its Retrain."""
    from .metrics import avg_disparity

    ret = next((r for r in recs if r["method"] == "retrain"), None)
    lines = ["| method | UA | MIA-Efficacy | RA | TA | Avg. Disparity | run time (s) |", "|---|---|---|---|---|---|---|"]
    for r in recs:
        dis = f"{avg_disparity(r, ret):.2f}" if ret else "n/a"
        name = f"{r['method']} (FAILED: {failure(r).split(':')[0]})" if failure(r) else r["method"]
        lines.append(f"| {name} | {r['UA']:.2f} | {r['MIA_efficacy']:.2f} | {r['RA']:.2f} | {r['TA']:.2f} | "
                     f"{dis} | {r['run_time_s'] or 0:.2f} |")
    return "\n".join(lines)


__all__ = ["run_experiment", "records_markdown", "evaluate_method", "unlearn_ours", "pretrained_attacker", "run_method",
           "unlearn_config", "ALL_METHODS", "BASELINES", "OURS", "strong_evaluation", "fresh_attacker"]
