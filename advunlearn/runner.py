"""One experiment end to end: every method on one (dataset, scheme, sparsity, seed, profile).

Each method's evaluated result is an artifact in the store (keyed by everything that produced it),
so asking again costs nothing and a crashed run redoes only what is missing.  A result record is a
flat JSON-able dict::

    {"dataset", "scheme", "sparsity", "seed", "profile", "model", "forget_class", "method",
     "UA", "RA", "TA", "VA", "MIA_efficacy", "run_time_s", "mia": {...}, "hparams": {...}}

which :func:`advunlearn.report.build_report` turns into Table 1, Table 2 and Figure 2.  The methods
are those of the registry (:mod:`advunlearn.methods`); a result's store key holds its resolved
hyperparameters, so a change of a profile's or a tuned value is never served a stale result.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from . import methods as M
from .config import ConfigError, UnlearnConfig
from .experiment import Experiment
from .metrics import DivergedError, failure
from .store import atomic_write_json, load_model, load_state, read_json, save_model, save_state


def __getattr__(name: str):
    """The method lists, read from the registry when asked (a method registered later is included):
    ``ALL_METHODS``/``DEFAULT_METHODS`` (every registered method), ``OURS`` (Ours and its variants),
    ``BASELINES`` (the others) and ``RESULT_VERSION`` (method -> its module's VERSION)."""
    if name in ("ALL_METHODS", "DEFAULT_METHODS"):
        return M.names()
    if name == "OURS":
        return _ours_names()
    if name == "BASELINES":
        return tuple(m for m in M.names() if m not in _ours_names())
    if name == "RESULT_VERSION":
        return M.versions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _ours_names() -> tuple[str, ...]:
    from .methods import ours

    return tuple(n for n, s in M.REGISTRY.items() if s.module is ours)


# The strong-attack evaluation's version (in its store keys). 2: RMIA's population is the held-out part of D_v, its
# ties are broken by ratio(x), and the attacks read fp32 logits on every device. 3: the fresh
# attacker's non-members come from the held-out part of D_v only, with a positive control on θ0;
# a TPR at an FPR below 1/n_neg is left unresolved.
STRONG_VERSION = 3


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
           "v": M.get("ours").version}

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
    """(model, info) for one registered method; ``overrides`` are hyperparameters (see
    :func:`advunlearn.methods.resolve_hparams`)."""
    return M.run_method(exp, method, **overrides)


def record_base(exp: Experiment) -> dict:
    from .experiment import compute_threads

    return {"dataset": exp.dataset, "scheme": exp.scheme, "sparsity": exp.sparsity, "seed": exp.seed,
            "profile": exp.profile, "model": exp.prof.model, "forget_class": exp.splits.forget_class,
            "forget_frac": exp.forget_frac if exp.scheme == "random" else None,
            "threads": compute_threads(exp.dev)}


def evaluate_method(exp: Experiment, method: str, *, strong_eval: bool = False, overrides: dict | None = None) -> dict:
    """The evaluated result record of ``method`` (computed once, then read from the store)."""
    from .metrics import evaluate

    key = _result_key(exp, method, strong_eval, overrides)  # hyperparameters checked before any work

    def compute(d: Path):
        model, info = run_method(exp, method, **(overrides or {}))
        rec = {**record_base(exp), "method": method, **evaluate(model, exp, info.get("run_time_s")),
               "hparams": info.get("hparams", {}),
               # the scheme whose tuned values the method ran with (memorized: the random scheme's)
               "hparams_scheme": M.FALLBACK_SCHEME.get(exp.scheme, exp.scheme)}
        if "attacker" in info:
            rec["attacker"] = info["attacker"]
        if strong_eval:
            rec["strong"] = strong_evaluation(model, exp)
        atomic_write_json(d / "result.json", rec)
        return rec

    rec, _ = exp.store.cached("result", key, compute, lambda d: read_json(d / "result.json"))
    return rec


def _result_key(exp: Experiment, method: str, strong_eval: bool, overrides: dict | None) -> dict:
    hparams = M.resolve_hparams(exp, method, overrides)
    return {**exp.forget_key(), **exp.model_key(), **M.store_key(exp, method, hparams),
            "strong": strong_eval and STRONG_VERSION}


def strong_evaluation(model, exp: Experiment, n_refs: int = 4) -> dict:
    """LiRA/RMIA against shared reference models, plus a fresh post-hoc attacker."""
    from .strong import reference_models, strong_attack_report

    refs = reference_models(exp, n=n_refs)
    out = strong_attack_report(model, exp, refs)
    out["fresh_attacker"] = fresh_attacker(model, exp)
    return out


def fresh_attacker_split(exp: Experiment) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(training non-members, evaluation non-members, evaluation members) of the post-hoc attacker.

    Non-members come from the held-out part of D_v only (:func:`advunlearn.unlearn.split_validation`),
    which Algorithm 1's loop never samples (Ours pulls the loop part toward D_f's outputs, so an
    attacker scored on it would be judged on data the defender trained against).  It is split in two
    halves: one trains the attacker (members: D_r), the other is what D_f is told apart from.  In the
    class scheme D_f is one class, so its evaluation negatives are never-trained samples of that class
    (D_t's forgotten class); otherwise the attacker would only detect the class.
    """
    from .unlearn import split_validation

    held = split_validation(exp.splits.val, exp.seed)[1]
    g = torch.Generator().manual_seed(exp.seed + 777)
    held = held[torch.randperm(len(held), generator=g)]
    half = len(held) // 2
    train_neg, eval_neg = held[:half].sort().values, held[half:].sort().values
    if exp.splits.scheme == "class" and len(exp.splits.test_forget):
        eval_neg = exp.splits.test_forget
    return train_neg, eval_neg, exp.splits.forget


def _fresh_attack(model, exp: Experiment) -> dict:
    from .attacker import evaluate_attacker, pretrain_attacker

    train_neg, eval_neg, pos = fresh_attacker_split(exp)
    att, rep = pretrain_attacker(model, exp.data, exp.splits.retain, train_neg, exp.prof.attacker,
                                 seed=exp.seed + 777, progress=False)
    ev = evaluate_attacker(att, model, exp.data, pos, eval_neg, seed=exp.seed)
    return {"train_report": rep, "forget_vs_val": ev, "n_train_nonmembers": len(train_neg),
            "n_eval_nonmembers": len(eval_neg), "eval_nonmembers": "test_forget" if exp.splits.scheme == "class"
            else "val-heldout-half"}


def fresh_attacker(model, exp: Experiment) -> dict:
    """A new attacker of the same architecture trained post hoc on the frozen model.

    Members: D_r; non-members: half of the held-out part of D_v; evaluated on D_f against the other
    half (:func:`fresh_attacker_split`).  It answers: can a fresh adversary still tell forgotten
    samples from unseen ones?  ``positive_control`` is the same attack on θ0, which trained on D_f: it
    must find them (AUC above 0.5), or the attack is too weak for its verdict on ``model`` to mean
    anything.  The control is stored once per experiment.
    """
    out = _fresh_attack(model, exp)
    original, _ = exp.original()
    key = {**exp.forget_key(), **exp.model_key(), "attacker": exp.prof.attacker.to_dict(), "what": "fresh-control",
           "v": 1}
    ctrl, _ = exp.store.cached("fresh-attacker-control", key,
                               lambda d: _write_json(d / "control.json", _fresh_attack(original, exp)),
                               lambda d: read_json(d / "control.json"))
    out["positive_control"] = ctrl
    return out


def _write_json(path: Path, obj: dict) -> dict:
    atomic_write_json(path, obj)
    return obj


def run_experiment(exp: Experiment, methods: Sequence[str] | None = None, *, strong_eval: bool = False,
                   ours_overrides: dict | None = None, out: str | Path | None = None,
                   log: Callable[[str], None] | None = print, workers: int | str = 1) -> list[dict]:
    """Run and evaluate ``methods`` (default: every registered method) on ``exp``; write the records to
    ``out`` (JSON) if given.

    ``ours_overrides`` (alpha, beta, lr, iterations, ...) change the UnlearnConfig of Ours and its ablation.
    ``workers``: the methods whose results are not stored yet run side by side in that many
    single-thread processes (``"auto"``: :func:`method_workers`; with fewer than two to compute, none
    is started).  They share ``exp``'s store, so θ0, the pretrained attacker and every result are
    computed once, and the records come back in the order of ``methods``.  A method's result does not
    depend on the order or the process it ran in (every method seeds its own generators from the
    experiment's seed), but it does depend on the thread count, as any float computation does: workers
    compute with one thread each, so their records equal those of a one-thread process, not those of a
    process with several threads.  Workers are started with ``spawn``: a script that calls this with
    ``workers`` > 1 needs the usual ``if __name__ == "__main__":`` guard.
    """
    if ours_overrides:
        M.resolve_hparams(exp, "ours", ours_overrides)  # validate before any work, even without Ours
    methods = M.names() if methods is None else methods
    if len(methods) == 0:
        raise ConfigError(f"methods is empty; choose from {', '.join(M.names())}")
    M.check_names(list(methods))
    _warn_if_long(exp, unlearn_config(exp, **(ours_overrides or {})), methods)
    ours = _ours_names()
    over = {m: ours_overrides if m in ours else None for m in methods}
    for m in methods:  # every method's hyperparameters, checked before any work
        M.resolve_hparams(exp, m, over[m])
    n_workers = method_workers(exp, workers, len(methods))

    def show(m: str, rec: dict, wall: float) -> None:
        if log:
            log(f"  {m:12s} UA {rec['UA']:6.2f}  MIA {rec['MIA_efficacy']:6.2f}  RA {rec['RA']:6.2f}  "
                f"TA {rec['TA']:6.2f}  run {rec['run_time_s'] or 0:7.2f}s  ({wall:.1f}s wall)"
                + (f"  FAILED: {failure(rec)}" if failure(rec) else ""))

    if n_workers > 1:  # every artifact of this run computed with one thread, here and in the workers
        from .experiment import one_thread_if

        with one_thread_if(True):
            return _run_with_workers(exp, methods, strong_eval, over, n_workers, out, show, log)
    return _finish(exp, methods, strong_eval, over, {}, out, show)


def _run_with_workers(exp, methods, strong_eval, over, n_workers, out, show, log) -> list[dict]:
    got = {}
    # processes only for what is not stored yet (starting one costs seconds)
    todo = [m for m in methods if not exp.store.done("result", _result_key(exp, m, strong_eval, over[m]))]
    if len(todo) > 1:
        from .shadows import experiment_spec, run_tasks

        exp.original()  # θ0 once, here, before the workers load it
        n_workers = min(n_workers, len(todo))
        if log:
            log(f"  {len(todo)} methods on {n_workers} single-thread processes")
        run_tasks(exp, experiment_spec(exp), _method_task,
                  [(m, strong_eval, over[m]) for m in _worker_order(todo, n_workers)],
                  workers=n_workers, on_result=lambda r: (got.__setitem__(r[0], r[1]), show(*r)))
    return _finish(exp, methods, strong_eval, over, got, out, show)


def _finish(exp, methods, strong_eval, over, got, out, show) -> list[dict]:
    for m in methods:
        if m not in got:
            t0 = time.perf_counter()
            got[m] = evaluate_method(exp, m, strong_eval=strong_eval, overrides=over[m])
            show(m, got[m], time.perf_counter() - t0)
    recs = [got[m] for m in methods]
    if out is not None:
        atomic_write_json(out, recs)
    if any(failure(r) for r in recs):  # the records are written, marked failed; the run is not a success
        raise DivergedError(recs, str(out) if out is not None else None)
    return recs


MAX_AUTO_WORKERS = 4


def method_workers(exp: Experiment, workers: int | str = "auto", n_methods: int | None = None) -> int:
    """How many processes :func:`run_experiment` runs methods in.

    ``"auto"``: 1 on CUDA (one device, and runs there are already fast); on the CPU the cores this
    run may use -- ``ADVUNLEARN_THREADS`` when set (a batch running N runs side by side gives each
    ``cores // N``), else every core -- at most ``MAX_AUTO_WORKERS`` (each process holds its own copy of
    the dataset, and beyond a few the Ours chain, attacker pretraining then its loop, bounds the wall
    time anyway).  Never more than there are methods.
    """
    if workers == "auto":
        if exp.dev.type == "cuda":
            n = 1
        else:
            n = min(MAX_AUTO_WORKERS, int(os.environ.get("ADVUNLEARN_THREADS") or usable_cores()))
    elif isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ConfigError(f"workers={workers!r} is not allowed; use a whole number >= 1 or 'auto'")
    else:
        n = int(workers)
    if n > 1 and not _rebuildable(exp):
        n = 1
    return max(1, min(n, n_methods if n_methods is not None else n))


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's limit), else ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _rebuildable(exp: Experiment) -> bool:
    """Whether a worker process rebuilding ``exp`` from its constructor arguments gets the same experiment
    and can share its store safely: not a shadow experiment (its data and splits are given, not built), a
    profile not edited in memory after construction, and POSIX file locks for the store's artifacts."""
    from .config import get_profile

    if exp.shadow is not None or exp.given_data is not None or exp.given_splits is not None:
        return False
    if exp.prof != get_profile(exp.profile, exp.dataset, **exp.profile_overrides):
        return False
    try:
        import fcntl  # noqa: F401
    except ImportError:  # without locks two workers could compute (and discard) the same artifact
        return False
    return True


def _worker_order(methods: Sequence[str], n_workers: int) -> list[str]:
    """The order in which the workers take the methods: the first Ours-family method first (the longest
    chain: attacker pretraining, then the loop), the other Ours-family methods after two others per
    further worker, by when the first has stored the shared pretrained attacker (so they load it
    instead of waiting on its lock while a core idles), the rest in the order given."""
    ours = [m for m in methods if m in _ours_names()]
    rest = [m for m in methods if m not in ours]
    if not ours:
        return list(methods)
    k = 2 * (n_workers - 1)
    return ours[:1] + rest[:k] + ours[1:] + rest[k:]


def _method_task(spec: dict, method: str, strong_eval: bool, overrides: dict | None) -> tuple[str, dict, float]:
    """One method's evaluated record in a worker process: ``(method, record, wall seconds)``."""
    from .shadows import _experiment

    t0 = time.perf_counter()
    rec = evaluate_method(_experiment(spec), method, strong_eval=strong_eval, overrides=overrides)
    return method, rec, time.perf_counter() - t0


class LongRunWarning(UserWarning):
    """A run's size (iterations) makes it take hours or more."""


def _warn_if_long(exp: Experiment, cfg: UnlearnConfig, methods: Sequence[str]) -> None:
    import warnings

    from .unlearn import long_run_warning

    msg = long_run_warning(cfg.iterations, exp.prof.model, exp.dev.type) if set(methods) & set(_ours_names()) else None
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
           "unlearn_config", "method_workers", "usable_cores", "strong_evaluation", "fresh_attacker", "fresh_attacker_split"]
