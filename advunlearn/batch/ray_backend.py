"""The batch runner's grid on a Ray cluster: every notebook run becomes one Ray task.

``advunlearn batch configs/X.yaml --backend ray [--address HEAD:6379]`` calls :func:`check_cluster`
before anything is written and :func:`run_on_ray` for the unfinished runs (see ``docs/ray.md``).

* A task calls :func:`advunlearn.batch.runs.execute_run` on whichever node Ray picks, so the results
  folder must be shared storage mounted at the same path on every node; the driver checks that
  every node sees it before submitting a run.
* A task asks for ``ADVUNLEARN_RAY_CPUS`` CPUs (default 1) and, when the run's ``device`` is
  ``cuda``, one GPU; its notebook runs with ``ADVUNLEARN_THREADS`` set to that CPU count, so runs
  sharing a machine do not oversubscribe it.  The driver's other ``ADVUNLEARN_*`` variables
  (``ADVUNLEARN_FAST``, ``ADVUNLEARN_DATA``, ...) are passed on to the tasks.
* A task whose worker process dies (killed, out of memory, node lost) is run again by Ray up to
  ``ADVUNLEARN_RAY_RETRIES`` times (default 2); past that the run is recorded as failed in its
  ``status.json`` and the batch goes on.  The notebook (papermill and its kernel) dies with its
  worker (:func:`advunlearn.batch.runs.die_with_parent`), and a watchdog process kills whatever of it is
  left, so a retry never races an orphaned predecessor.  A stopped driver (Ctrl-C, SIGTERM, SIGHUP)
  cancels its tasks, which kills their workers; a killed one leaves its workers to Ray, which ends
  the workers of a driver that is gone.
* Each attempt appends ``{"pid", "host", "node_id", "started"}`` to ``<run>/ray_worker.json``.
* Connecting, the tasks' resources and environment, token authentication:
  :mod:`advunlearn.core.cluster`.

The backend is a plugin of the batch runner (:mod:`advunlearn.batch.grid` calls it); it runs what one
run is (:mod:`advunlearn.batch.runs`) and never imports the runner.  Ray is imported lazily: the rest of
the package works without the ``ray`` extra.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..core.cluster import (ENV_CPUS, ENV_GPUS, ENV_PROBE_TIMEOUT, _STATE, _env_number, _import_ray, _init,
                            _node_list, _probe_address, _resolve, _tcp_check, cpus_per_run, gpus_per_run,
                            max_retries, run_resources, shutdown, task_env)
from ..core.config import ConfigError

if TYPE_CHECKING:
    from .config import BatchConfig

WORKER_FILE = "ray_worker.json"


def _check_resources(nodes: list[dict], runs: list[dict], where: str) -> None:
    alive = [n for n in nodes if n["alive"]]
    if not alive:
        raise ConfigError(f"{where} has no live node")
    cpus = cpus_per_run()
    res = [(float(n["resources"].get("CPU", 0)), float(n["resources"].get("GPU", 0))) for n in alive]
    total_cpu, total_gpu = sum(c for c, _ in res), sum(g for _, g in res)
    gpu_runs = [r for r in runs if run_resources(r)["num_gpus"]]
    cpu_runs = len(runs) - len(gpu_runs)
    summary = f"{len(alive)} node(s), {total_cpu:g} CPU(s), {total_gpu:g} GPU(s)"
    share = gpus_per_run() if gpu_runs else 1.0
    if gpu_runs and not any(g >= share and c >= cpus for c, g in res):
        why = ("no GPU" if total_gpu == 0 else f"no node with a GPU and {cpus} CPU(s)")
        each = "one GPU each" if share == 1 else f"{share:g} of a GPU each ({ENV_GPUS})"
        raise ConfigError(f"{len(gpu_runs)} run(s) ask for device='cuda' ({each}) but {where} has {why} "
                          f"({summary}); add GPU nodes (`ray start ... --num-gpus=N`) or set the "
                          "runs' device to 'auto' or 'cpu'")
    if cpu_runs and not any(c >= cpus for c, _ in res):
        raise ConfigError(f"each run asks for {cpus} CPU(s) ({ENV_CPUS}) but no node of {where} "
                          f"has that many ({summary}); lower {ENV_CPUS} or add larger nodes")


# ----------------------------------------------------------------------------- public API

def check_cluster(address: str | None, runs: list[dict]) -> None:
    """Raise ConfigError unless Ray is installed, the cluster answers and it can run every one of ``runs``.

    ``address`` None (or 'auto') means the cluster given by RAY_ADDRESS or started on this machine with
    ``ray start``, else a fresh local instance (which then stays up for :func:`run_on_ray`).
    """
    ray = _import_ray()
    cpus_per_run(), max_retries()  # validate the settings before connecting
    if ray.is_initialized():  # a connection the caller opened: use it, leave it open
        _check_resources(_node_list(ray), runs, "the connected Ray cluster")
        return
    target = _resolve(address)
    if target is None:
        _init(ray, None)
        _STATE.update(owned=True, target=None)
        try:
            _check_resources(_node_list(ray), runs, "the local Ray instance")
        except BaseException:
            shutdown()
            raise
        return
    _tcp_check(target)
    _check_resources(_probe_address(target), runs, f"the Ray cluster at {target!r}")


def _attempts(run_dir: Path) -> list[dict]:
    try:
        return json.loads((run_dir / WORKER_FILE).read_text()).get("attempts", [])
    except (OSError, ValueError, AttributeError):
        return []


_GUARD_SRC = r"""
import sys, threading, time, psutil
worker, marker, me = psutil.Process(int(sys.argv[1])), sys.argv[2], psutil.Process()
seen, done, got = {}, threading.Event(), []

def read():
    got.append(sys.stdin.read())  # EOF when the worker closes the pipe or dies
    done.set()

def poll():
    try:
        for p in worker.children(recursive=True):
            if p.pid != me.pid:
                seen.setdefault(p.pid, p)
    except psutil.Error:
        pass

def in_live_worker(p):
    for a in p.parents():
        try:
            if (a.cmdline() or [""])[0].startswith("ray::"):
                return True
        except psutil.Error:
            pass
    return False

threading.Thread(target=read, daemon=True).start()
poll()
print("ready", flush=True)
while not done.wait(0.2):
    poll()
if "finished" not in got[0]:
    t0 = time.monotonic()  # the dead worker's children are re-parented only once it has fully exited
    while time.monotonic() - t0 < 10:
        try:
            if worker.status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.Error:
            break
        time.sleep(0.05)
    # Notebooks of this run started too shortly before the death to be polled (a retry's has a live
    # ray:: worker among its parents and is left alone).
    for p in psutil.process_iter():
        try:
            if p.pid == me.pid or p.pid in seen or marker not in " ".join(p.cmdline()) or in_live_worker(p):
                continue
            seen[p.pid] = p
            seen.update((c.pid, c) for c in p.children(recursive=True))
        except psutil.Error:
            pass
    for p in seen.values():
        try:
            p.kill()
        except psutil.Error:
            pass
"""


def _start_guard(marker: str) -> subprocess.Popen | None:
    """Watchdog: when this worker process dies mid-run, kill the notebook processes it started.

    ``marker`` is a string of the run's papermill command line (its output notebook path).
    """
    try:
        import psutil  # noqa: F401  (ipykernel, which papermill needs, depends on it)
    except ImportError:
        return None
    guard = subprocess.Popen([sys.executable, "-c", _GUARD_SRC, str(os.getpid()), marker], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    import select

    if select.select([guard.stdout], [], [], 30)[0]:  # watching before the notebook starts
        guard.stdout.readline()
    return guard


def _stop_guard(guard: subprocess.Popen | None) -> None:
    if guard is None:
        return
    try:
        guard.stdin.write(b"finished")
        guard.stdin.close()
        guard.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        guard.kill()
    finally:
        guard.stdout.close()


def run_task(notebook: str, params: dict, run_dir: str, store: str, timeout: float, threads: int) -> dict:
    """Body of one Ray task: record the attempt, then :func:`advunlearn.batch.runs.execute_run` under a watchdog."""
    from .runs import execute_run
    from ..core.store import atomic_write_json

    os.environ["ADVUNLEARN_THREADS"] = str(threads)
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    try:
        import ray

        node_id = ray.get_runtime_context().get_node_id()
    except Exception:
        node_id = None
    me = {"pid": os.getpid(), "host": socket.gethostname(), "node_id": node_id, "started": time.time()}
    attempts = _attempts(d) + [me]
    atomic_write_json(d / WORKER_FILE, {"attempts": attempts})
    guard = _start_guard(str(d / Path(notebook).name))
    try:
        status = execute_run(notebook, params, run_dir, store, timeout)
    finally:
        _stop_guard(guard)
    return {"status": status, "host": me["host"], "attempt": len(attempts)}


def _probe_node(results: str, marker: str, wait_s: float) -> dict:
    """Runs on one node: can it import the project and papermill, and does it see the results folder?"""
    import importlib.util

    seen = False
    t0 = time.monotonic()
    while True:
        try:
            seen = marker in os.listdir(results)
        except OSError:
            seen = False
        if seen or time.monotonic() - t0 > wait_s:
            break
        time.sleep(1.0)
    return {"host": socket.gethostname(), "python": sys.executable, "sees_results": seen,
            "papermill": importlib.util.find_spec("papermill") is not None}


def _check_nodes(ray, results: Path, task_opts: dict, log: Callable[[str], None]) -> None:
    """Before any run: every live node must see the results folder and have papermill."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    results.mkdir(parents=True, exist_ok=True)
    marker = f".ray-probe-{uuid.uuid4().hex}"
    (results / marker).write_text("advunlearn: a Ray node that can read this sees the shared results folder\n")
    probe = ray.remote(_probe_node)
    wait_s = _env_number(ENV_PROBE_TIMEOUT, 180, 1, integer=False)
    try:
        nodes = [n for n in _node_list(ray) if n["alive"]]
        refs = {probe.options(num_cpus=0, max_retries=0, **task_opts,
                              scheduling_strategy=NodeAffinitySchedulingStrategy(n["node_id"], soft=False))
                .remote(str(results.resolve()), marker, 30.0): n for n in nodes}
        ready, pending = ray.wait(list(refs), num_returns=len(refs), timeout=wait_s)
        for ref in pending:
            log(f"ray: node {refs[ref]['host']} did not answer the storage check within {wait_s:g} s; going on")
            ray.cancel(ref, force=True)
        for ref in ready:
            host = refs[ref]["host"]
            try:
                r = ray.get(ref)
            except Exception as e:  # e.g. the node cannot import advunlearn
                raise ConfigError(f"Ray node {host} cannot run the batch: {_short(e)}; start Ray on every node "
                                  "from the project's environment (`.venv/bin/ray start ...`) with advunlearn "
                                  "installed at the same path") from None
            if not r["sees_results"]:
                raise ConfigError(f"Ray node {host} does not see the results folder {results.resolve()} (a file the "
                                  "driver wrote there is missing on that node); the results folder must be shared "
                                  "storage (e.g. NFS) mounted at the same path on every node, see docs/ray.md")
            if not r["papermill"]:
                raise ConfigError(f"Ray node {host} ({r['python']}) has no papermill; install the project with "
                                  "its notebooks extra there: pip install 'advunlearn[notebooks,ray]'")
    finally:
        (results / marker).unlink(missing_ok=True)


def _short(e: BaseException) -> str:
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    for l in reversed(lines):
        if "Error" in l or "Exception" in l:
            return l[:400]
    return f"{type(e).__name__}: {lines[-1][:400] if lines else ''}"


def run_on_ray(cfg: BatchConfig, todo: list[tuple[dict, Path]], store: Path, address: str | None,
               log: Callable[[str], None] = print) -> None:
    """Run every ``(params, run_dir)`` of ``todo`` as a Ray task; statuses land in each run_dir."""
    ray = _import_ray()
    threads = cpus_per_run()
    env = task_env(threads)
    if ray.is_initialized():
        owned = bool(_STATE.get("owned"))
    else:
        _init(ray, _resolve(address))
        _STATE.update(owned=True)
        owned = True
    # Our own connection carries env as its job runtime_env; a caller's connection gets it per task.
    task_opts = {} if owned else {"runtime_env": {"env_vars": env}}
    try:
        nodes = [n for n in _node_list(ray) if n["alive"]]
        res = ray.cluster_resources()
        log(f"ray: {len(todo)} run(s) on {len(nodes)} node(s) ({res.get('CPU', 0):g} CPU(s), {res.get('GPU', 0):g} "
            f"GPU(s)); {threads} CPU(s) per run, up to {max_retries()} retries when a worker dies")
        if not todo:
            return
        _check_nodes(ray, Path(cfg.results), task_opts, log)
        log(f"ray: every node sees {Path(cfg.results).resolve()} and can run notebooks; submitting")
        task = ray.remote(run_task)
        pending: dict[Any, tuple[dict, Path, float]] = {}
        for params, run_dir in todo:
            run_dir = Path(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / WORKER_FILE).unlink(missing_ok=True)  # attempts of this batch only
            ref = task.options(**run_resources(params), max_retries=max_retries(), retry_exceptions=False,
                               name=f"advunlearn:{run_dir.name}", **task_opts).remote(
                str(cfg.notebook), params, str(run_dir), str(store), cfg.timeout, threads)
            pending[ref] = (params, run_dir, time.time())
        n, i = len(pending), 0
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    params, run_dir, t_submit = pending.pop(ref)
                    i += 1
                    try:
                        out = ray.get(ref)
                        st, note = out["status"], (f" (attempt {out['attempt']}: an earlier worker died)"
                                                   if out["attempt"] > 1 else "")
                    except Exception as e:  # the worker died more often than max_retries, or the task raised
                        st, note = _record_failure(run_dir, params, e, t_submit), ""
                    msg = f"done in {st['wall_s']:.1f}s" if st["state"] == "done" else f"FAILED: {st['error']}"
                    log(f"[{i}/{n}] {run_dir.name} {msg}{note}")
        except BaseException:
            for ref in pending:  # Ctrl-C: stop the remaining runs (the watchdogs end their notebooks)
                ray.cancel(ref, force=True)
            raise
    finally:
        if owned:
            shutdown()


def _record_failure(run_dir: Path, params: dict, e: BaseException, t_submit: float) -> dict:
    """status.json of a run Ray gave up on (same schema as execute_run's), unless it had finished."""
    from .runs import run_status, settings_fingerprint
    from ..core.store import atomic_write_json

    st = run_status(run_dir)
    if st and st.get("state") == "done" and (run_dir / "result.json").exists():
        return st  # the notebook had finished before its worker went away
    from ray.exceptions import RayTaskError

    attempts = _attempts(run_dir)
    t0 = attempts[0]["started"] if attempts else t_submit
    if isinstance(e, RayTaskError):  # the task itself raised (e.g. the run folder became unwritable)
        error = f"the Ray task raised {_short(e)}"
    else:  # its worker or node died on every attempt
        error = f"Ray gave up after {len(attempts)} attempt(s): {_short(e)}"
    status = {"state": "failed", "wall_s": round(time.time() - t0, 2), "params": params,
              "settings": settings_fingerprint(), "error": error}
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "status.json", status)
    return status


__all__ = ["check_cluster", "run_on_ray", "run_task", "shutdown", "cpus_per_run", "max_retries", "run_resources",
           "task_env", "WORKER_FILE"]
