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

import time
from pathlib import Path
from typing import Callable, Sequence

from .. import methods as M
from ..core.config import ConfigError, UnlearnConfig
from ..core.store import atomic_write_json, read_json
from ..evaluation.fresh import STRONG_VERSION, strong_evaluation
from ..evaluation.metrics import DivergedError, failure
from ..methods.ours import unlearn_config
from .experiment import Experiment
from .workers import _experiment, experiment_spec, method_workers, run_tasks


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
    from ..methods import ours

    return tuple(n for n, s in M.REGISTRY.items() if s.module is ours)


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
    from ..evaluation.metrics import evaluate

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


def run_experiment(exp: Experiment, methods: Sequence[str] | None = None, *, strong_eval: bool = False,
                   ours_overrides: dict | None = None, out: str | Path | None = None,
                   log: Callable[[str], None] | None = print, workers: int | str = 1) -> list[dict]:
    """Run and evaluate ``methods`` (default: every registered method) on ``exp``; write the records to
    ``out`` (JSON) if given.

    ``ours_overrides`` (alpha, beta, lr, iterations, ...) change the UnlearnConfig of Ours and its ablation.
    ``workers``: the methods whose results are not stored yet run side by side in that many
    single-thread processes (``"auto"``: :func:`~advunlearn.experiments.workers.method_workers`; with
    fewer than two to compute, none is started).  They share ``exp``'s store, so θ0, the pretrained attacker and every result are
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
    t0 = time.perf_counter()
    rec = evaluate_method(_experiment(spec), method, strong_eval=strong_eval, overrides=overrides)
    return method, rec, time.perf_counter() - t0


class LongRunWarning(UserWarning):
    """A run's size (iterations) makes it take hours or more."""


def _warn_if_long(exp: Experiment, cfg: UnlearnConfig, methods: Sequence[str]) -> None:
    import warnings

    from ..dau.unlearn import long_run_warning

    msg = long_run_warning(cfg.iterations, exp.prof.model, exp.dev.type) if set(methods) & set(_ours_names()) else None
    if msg:
        warnings.warn(LongRunWarning(msg), stacklevel=3)


__all__ = ["run_experiment", "evaluate_method", "run_method", "record_base", "LongRunWarning"]
