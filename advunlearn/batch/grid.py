"""The batch runner: every unfinished run of a config's grid, on the local backend (runs side by side)
or on a Ray cluster (:mod:`advunlearn.batch.ray_backend`, a plugin this module calls), then
``results.csv`` and the report.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from ..core.config import check_choice
from ..core.stopping import stop_on_signals
from ..core.store import atomic_write_json
from .config import BatchConfig, check_jobs, load_config, notebook_parameters
from .publish import collect, write_results_csv
from .runs import (_LIVE, _LIVE_LOCK, _STOPPING, _end_notebook, execute_run, is_current, run_id, run_status,
                   run_threads, settings_fingerprint)


def resolve_jobs(jobs, n_runs: int, params: list[dict] | None = None) -> tuple[int, dict]:
    """(number of runs side by side, extra environment of each run) for the local backend.

    ``auto``: on a machine without CUDA, one run per core, each single-threaded -- on the 2-core
    testbed machine two single-threaded runs side by side finish a grid faster than one run with both
    threads after another (benchmarks/RESULTS.md, "Two cores, two runs"); where a run may use a GPU
    (CUDA present and its ``device`` is not ``cpu``) one run at a time.  With N > 1 runs, each gets
    ``cores // N`` threads (``ADVUNLEARN_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``); with one run
    the environment is left alone.
    """
    cores = os.cpu_count() or 1
    if jobs == "auto":
        gpu = any(p.get("device", "auto") != "cpu" for p in (params or [{}])) and _cuda_available()
        jobs = 1 if gpu else cores
    jobs = max(1, min(int(jobs), max(1, n_runs)))
    if jobs == 1:
        return 1, {}
    t = str(max(1, cores // jobs))
    return jobs, {"ADVUNLEARN_THREADS": t, "OMP_NUM_THREADS": t, "MKL_NUM_THREADS": t}


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def planned_threads(cfg: "BatchConfig", runs: list[dict], backend: str = "local") -> int:
    """The thread count every run of the batch computes with: fixed by the whole grid (not by how many
    runs are left), so a resumed batch computes its remaining runs as the first start did."""
    if backend == "ray":
        from ..core.cluster import cpus_per_run

        return int(cpus_per_run())
    _, env = resolve_jobs(cfg.jobs, len(runs), runs)
    return run_threads({**os.environ, **env})


def _check_writable(folder: Path) -> None:
    from ..core.store import StoreError, _write_error

    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as e:
        raise _write_error(folder, e) from None
    usage = shutil.disk_usage(folder)
    if usage.free < 50 * 2**20:
        raise StoreError(f"cannot write {folder}: the disk is full ({usage.free / 2**20:.0f} MiB free, "
                         "at least 50 MiB needed). Free space or choose another results folder.")


def _run_local(cfg: BatchConfig, todo: list, store: Path, log, threads: int | None = None) -> None:
    """The local backend: the runs in grid order, ``cfg.jobs`` of them side by side."""
    n_jobs, _ = resolve_jobs(cfg.jobs, len(todo), [p for p, _ in todo])
    # every run with the batch's planned thread count, however many are left (results depend on it)
    t = str(threads if threads is not None else run_threads())
    env = {"ADVUNLEARN_THREADS": t, "OMP_NUM_THREADS": t, "MKL_NUM_THREADS": t}
    if n_jobs > 1:
        log(f"{n_jobs} runs side by side, {t} thread(s) each")

    def one(i, p, d):
        log(f"[{i}/{len(todo)}] {d.name} ...")
        st = execute_run(str(cfg.notebook), p, str(d), str(store), cfg.timeout)
        msg = f"done in {st['wall_s']:.1f}s" if st["state"] == "done" else f"FAILED: {st['error']}"
        log(f"[{i}/{len(todo)}] {d.name} {msg}")

    from concurrent.futures import ThreadPoolExecutor

    # The runs' processes inherit this environment (execute_run copies os.environ); it is restored after.
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    # threads only wait on the papermill processes; each run is a process of its own
    pool = ThreadPoolExecutor(max_workers=n_jobs)
    try:
        if n_jobs == 1:
            for i, (p, d) in enumerate(todo, 1):
                one(i, p, d)
        for f in ([] if n_jobs == 1 else [pool.submit(one, i, p, d) for i, (p, d) in enumerate(todo, 1)]):
            f.result()
    except BaseException:  # stopped (a signal, Ctrl-C) or a run's error: end every notebook in progress
        _STOPPING.set()
        pool.shutdown(wait=False, cancel_futures=True)
        with _LIVE_LOCK:
            live = list(_LIVE)
        for proc in live:
            _end_notebook(proc)
        pool.shutdown(wait=True)
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        _STOPPING.clear()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _long_runs(cfg: BatchConfig, runs: list[dict]) -> list[str]:
    """Warnings for runs whose ``iterations`` make them take hours or more (before any run starts)."""
    if not any(r.get("iterations") for r in runs):
        return []
    from ..experiments.profiles import get_profile
    from ..dau.unlearn import long_run_warning

    defaults = notebook_parameters(cfg.notebook)
    out = []
    for r in runs:
        p = {**defaults, **r}
        if p.get("iterations") and set(p.get("methods") or ()) & {"ours", "ours_no_vss"}:
            msg = long_run_warning(int(p["iterations"]), get_profile(p["profile"], p["dataset"]).model,
                                   p.get("device", "auto"))
            if msg and msg not in out:
                out.append(msg)
    return out


def run_batch(config: str | os.PathLike, results: str | os.PathLike | None = None, backend: str = "local",
              address: str | None = None, dry_run: bool = False, log=print, jobs: int | str | None = None) -> int:
    """Run every unfinished run of ``config``; returns 0 when all runs are done, 1 otherwise.

    ``jobs`` (local backend): runs side by side, a number or "auto"; None takes the config's ``jobs``
    (default "auto", :func:`resolve_jobs`).  Results do not depend on it: each run is its own process
    with its own seed, and artifacts shared by runs are computed once under the store's lock.
    """
    check_choice("backend", backend, ("local", "ray"))
    cfg = load_config(config, results)
    if jobs is not None:
        cfg.jobs = check_jobs(jobs)
    runs = cfg.runs()
    for msg in _long_runs(cfg, runs):
        log(f"warning: {msg}")
    if dry_run:
        for p in runs:
            log(f"{run_id(p)}: {json.dumps(p, sort_keys=True)}")
        log(f"{len(runs)} run(s) of {cfg.notebook.name} -> {cfg.results}")
        return 0
    with stop_on_signals():  # around Ray's start too, so that shutdown() gives back the handler it found
        if backend == "ray":
            from .ray_backend import check_cluster

            check_cluster(address, runs)
        return _run_grid(cfg, runs, backend, address, log)


def _run_grid(cfg: BatchConfig, runs: list[dict], backend: str, address: str | None, log) -> int:
    t_all = time.perf_counter()
    try:
        _check_writable(cfg.results)
        store = cfg.results / "store"
        todo, fingerprint = [], settings_fingerprint()
        threads = planned_threads(cfg, runs, backend)
        for p in runs:
            d = cfg.results / "runs" / run_id(p)
            st = run_status(d)
            if is_current(st, d, fingerprint, threads):
                log(f"[skip] {d.name}: done earlier")
            else:
                if st and st.get("state") == "done":
                    why = ("profile settings or method versions (settings_fingerprint changed)"
                           if st.get("settings") != fingerprint else
                           f"{st.get('threads')} thread(s) per run, not {threads}")
                    log(f"[redo] {d.name}: done earlier under other {why}")
                todo.append((p, d))
        log(f"batch {cfg.name}: {len(runs)} run(s), {len(runs) - len(todo)} done, {len(todo)} to run "
            f"({cfg.notebook.name}, backend {backend})")
        if backend == "ray":
            from .ray_backend import run_on_ray

            run_on_ray(cfg, todo, store, address, log)
        else:
            _run_local(cfg, todo, store, log, threads)
    finally:
        if backend == "ray":
            from ..core.cluster import shutdown

            shutdown()
    recs, statuses = collect(cfg)
    failed = [s for s in statuses if s.get("state") != "done"]
    atomic_write_json(cfg.results / "batch_status.json", {"name": cfg.name, "runs": statuses,
                                                           "failed": len(failed), "done": len(statuses) - len(failed)})
    if recs:
        write_results_csv(recs, cfg.results / "results.csv")
        if cfg.report:
            from ..report import build_report

            build_report(cfg.results / "runs", cfg.results / "report")
    log(f"batch {cfg.name}: {len(statuses) - len(failed)} done, {len(failed)} failed "
        f"in {time.perf_counter() - t_all:.1f}s; results in {cfg.results}")
    for s in failed:
        log(f"  failed: {s['run']}: {s.get('error', s.get('state'))}")
    return 1 if failed else 0
