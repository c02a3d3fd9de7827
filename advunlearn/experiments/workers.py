"""Worker pools: an experiment's tasks run here, in single-thread processes, or as Ray tasks.

A task is ``fn(exp_or_spec, *args)``: a worker process rebuilds the experiment from its spec
(:func:`experiment_spec`) once and shares the store with every other worker; the store's
per-artifact file lock makes concurrent workers compute each artifact once.  Used by the runner
(methods side by side), the shadow models, memorisation and the tuning studies.

Processes are started with ``spawn`` (a fork of a process that already runs torch threads can
hang); Ray tasks take one CPU each and need the store on shared storage mounted at the same path on
every node (:mod:`advunlearn.core.cluster`).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np
import torch

from ..core.config import ConfigError, check_choice, check_range
from .experiment import Experiment


def experiment_spec(exp) -> dict:
    """The keyword arguments that rebuild ``exp`` in another process (same data, splits, store)."""
    return {"dataset": exp.dataset, "scheme": exp.scheme, "sparsity": exp.sparsity, "seed": exp.seed,
            "profile": exp.profile, "forget_frac": exp.forget_frac, "forget_class": exp.forget_class,
            "val_frac": exp.val_frac, "device": exp.device, "results": str(exp.results), "data_root": exp.data_root,
            "progress": False, "profile_overrides": dict(exp.profile_overrides),
            "memorization_shadows": exp.memorization_shadows}


_WORKER_EXPS: dict[str, object] = {}


def _experiment(exp_or_spec):
    """An Experiment as is, or rebuilt from its spec once per process (the dataset is loaded once)."""
    import json

    if not isinstance(exp_or_spec, dict):
        return exp_or_spec
    key = json.dumps(exp_or_spec, sort_keys=True, default=str)
    if key not in _WORKER_EXPS:
        _WORKER_EXPS[key] = Experiment(**exp_or_spec)
    return _WORKER_EXPS[key]


def _init_worker(threads: int = 1) -> None:
    import signal

    os.environ["ADVUNLEARN_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    # Ctrl-C reaches the whole foreground group; the pool's owner alone handles it (and ends this
    # process with stop_pool), so a worker does not print a traceback of its own or take the next task.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def stop_pool(ex) -> None:
    """Cancel a process pool's queued tasks and terminate its workers now (not after their running tasks:
    ``shutdown`` alone would wait for them).  What they were computing is lost; the store keeps only
    finished artifacts, so a rerun computes it again."""
    if hasattr(ex, "terminate_workers"):  # public from Python 3.14
        ex.terminate_workers()
        return
    procs = getattr(ex, "_processes", None)
    if procs is None:  # neither: wait for the running tasks rather than leave workers behind
        ex.shutdown(wait=True, cancel_futures=True)
        return
    from multiprocessing.connection import wait

    procs = list(procs.values())  # shutdown forgets them
    ex.shutdown(wait=False, cancel_futures=True)
    for pr in procs:
        if pr.is_alive():
            pr.terminate()
    # A worker's sentinel is ready once it has exited (the pool's own thread may reap it first, so
    # is_alive() can go on saying True for a process that is gone).  One that outlives SIGTERM by
    # 10 s (a task that handles the signal) is killed.
    running = [pr for pr in procs if not wait([pr.sentinel], timeout=10)]
    for pr in running:
        pr.kill()
    if running:  # (an empty wait would sleep its whole timeout)
        wait([pr.sentinel for pr in running], timeout=10)


def run_tasks(exp, spec: dict, fn: Callable, arglist: Sequence[tuple], *, workers: int = 1, backend: str = "process",
              address: str | None = None, on_result: Callable[[dict], None] | None = None) -> list:
    """``fn(exp_or_spec, *args)`` for every args: here (``workers=1``), in a pool of single-thread
    processes, or as Ray tasks of one CPU each; a worker rebuilds the experiment from ``spec``.

    Stopping: Ctrl-C, SIGTERM or SIGHUP (:func:`advunlearn.core.stopping.stop_on_signals`) or a failed task
    cancels the queued tasks and ends the running ones with their processes (:func:`stop_pool`), then
    raises; what finished was handed to ``on_result`` and is kept."""
    from ..core.stopping import signals_held, stop_on_signals

    check_range("workers", workers, 1, integer=True)
    check_choice("backend", backend, ("process", "ray"))
    out = []

    def got(r):
        out.append(r)
        if on_result:
            on_result(r)

    if backend == "ray":
        try:
            import ray
        except ImportError as e:  # pragma: no cover
            raise ConfigError("backend='ray' needs the ray extra: pip install 'advunlearn[ray]'") from e
        if not ray.is_initialized():  # as the batch's Ray backend connects (token auth, task environment)
            from ..core.cluster import _STATE, _init, _resolve

            _init(ray, _resolve(address))
            _STATE.update(owned=True)  # opened here: core.cluster.shutdown() closes it (and gives SIGTERM back)
        remote = ray.remote(num_cpus=1, max_retries=2)(fn)
        refs = []
        with stop_on_signals():
            try:
                refs = [remote.remote(spec, *a) for a in arglist]
                while refs:
                    ready, refs = ray.wait(refs, num_returns=1)
                    got(ray.get(ready[0]))
            except BaseException:  # stopped, or a task failed: the other tasks are cancelled
                with signals_held():
                    for r in refs:
                        ray.cancel(r, force=True)
                raise
    elif workers > 1 and len(arglist) > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        import multiprocessing as mp

        ex = ProcessPoolExecutor(max_workers=min(workers, len(arglist)), mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker)
        with stop_on_signals():
            try:
                for f in as_completed([ex.submit(fn, spec, *a) for a in arglist]):
                    got(f.result())
            except BaseException:  # a task failed, or the user stopped us: end the others, leave nothing running
                with signals_held():  # (a second Ctrl-C or SIGTERM waits until the workers are gone)
                    stop_pool(ex)
                raise
            ex.shutdown()
    else:
        for a in arglist:
            got(fn(exp, *a))
    return out


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
    from .profiles import get_profile

    if exp.shadow is not None or exp.given_data is not None or exp.given_splits is not None:
        return False
    if exp.prof != get_profile(exp.profile, exp.dataset, **exp.profile_overrides):
        return False
    try:
        import fcntl  # noqa: F401
    except ImportError:  # without locks two workers could compute (and discard) the same artifact
        return False
    return True


__all__ = ["run_tasks", "experiment_spec", "stop_pool", "method_workers", "usable_cores", "MAX_AUTO_WORKERS"]
