"""The papermill batch runner: a YAML grid expanded into notebook runs, resumable, then the report.

A config (see ``configs/``)::

    name: demo                   # results go to results/<name> unless `results:` says otherwise
    notebook: 04_evaluation      # the notebook every run executes (from notebooks/)
    timeout: 900                 # seconds per run; a run past it is killed and recorded as failed
    grid:                        # the cartesian product of these lists gives the runs
      dataset: [digits]
      scheme: [random, class]
      sparsity: [0.0, 0.95]
      seed: [0, 1, 2, 3, 4]
    params:                      # fixed notebook parameters for every run
      profile: cpu
    jobs: auto                   # runs side by side (local backend): N, or auto = one single-threaded
                                 # run per core without CUDA, one run at a time with a GPU (--jobs overrides)

Each run gets ``<results>/runs/<run-id>/`` with ``params.json``, the executed notebook,
``result.json`` (the records the notebook writes) and ``status.json`` written last.  Run again
after a crash or a kill: runs whose status is ``done`` are skipped, the others are redone.  A done
run also records a fingerprint of the package's profile settings (:func:`settings_fingerprint`);
when ``advunlearn.config`` has changed since, the run is redone rather than kept stale.  Models
and intermediate artifacts live in ``<results>/store`` and are shared by all runs, so a redone run
reuses whatever its killed predecessor had finished.  At the end ``results.csv`` and the report
(``report/``) are built from every finished run.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import DATASETS, PROFILE_NAMES, SCHEMES, ConfigError, check_choice, check_range, check_seed
from .store import atomic_write_json, config_hash, read_json

from .course import notebook_dir

NOTEBOOK_DIR = notebook_dir()  # the source tree's notebooks/, or the installed package's copy
TOP_KEYS = ("name", "notebook", "timeout", "grid", "params", "results", "report", "description", "backend", "jobs")
# What each notebook parameter accepts; the batch checks every value before any run starts.
# Classes per dataset, to check forget_class before any run starts (the loaders check it again).
NUM_CLASSES = {"digits": 10, "fashion-mnist": 10, "cifar10": 10, "cifar100": 100}

PARAM_CHECKS = {
    "dataset": lambda v: check_choice("dataset", v, DATASETS),
    "scheme": lambda v: check_choice("scheme", v, SCHEMES),
    "profile": lambda v: check_choice("profile", v, PROFILE_NAMES),
    "sparsity": lambda v: check_range("sparsity", v, 0, 1, hi_open=True),
    "seed": lambda v: check_seed(v),
    "alpha": lambda v: v is None or check_range("alpha", v, 0),
    "beta": lambda v: v is None or check_range("beta", v, 0),
    "lr": lambda v: v is None or check_range("lr", v, 0, lo_open=True),
    "iterations": lambda v: v is None or check_range("iterations", v, 1, integer=True),
    "forget_frac": lambda v: check_range("forget_frac", v, 0, 1, lo_open=True, hi_open=True),
    "forget_class": lambda v: v is None or check_range("forget_class", v, 0, integer=True),
    "device": lambda v: check_choice("device", v, ("auto", "cpu", "cuda")),
    "strong_eval": lambda v: check_choice("strong_eval", v, (True, False)),
    "methods": lambda v: _check_methods(v),
}


def _check_methods(v):
    from .methods import check_names

    check_names(v, where="methods")


@dataclass
class BatchConfig:
    name: str
    notebook: Path
    timeout: float
    grid: dict[str, list]
    params: dict[str, Any]
    results: Path
    report: bool = True
    jobs: int | str = 1   # runs side by side on the local backend: a number or "auto" (see resolve_jobs)

    def runs(self) -> list[dict]:
        keys = list(self.grid)
        return [{**self.params, **dict(zip(keys, combo))} for combo in itertools.product(*(self.grid[k] for k in keys))]


def notebook_parameters(nb_path: Path) -> dict[str, Any]:
    """Names and defaults of the notebook's ``parameters`` cell (read with papermill's own parser)."""
    try:
        import papermill as pm
    except ImportError:
        raise ConfigError("advunlearn batch runs the notebooks with papermill, which is not installed; "
                          "install the notebook extra: pip install -e '.[notebooks]'") from None

    return {k: v["default"] for k, v in pm.inspect_notebook(str(nb_path)).items()}


def load_config(path: str | os.PathLike, results: str | os.PathLike | None = None) -> BatchConfig:
    """Read and validate a batch YAML; every problem is a ConfigError before any run starts."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"batch config {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"batch config {path} is not a file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"batch config {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"batch config {path} is not valid YAML: {e}") from None
    if raw is None or raw == {}:
        raise ConfigError(f"batch config {path} is empty; give at least a grid or params, e.g. "
                          "grid: {seed: [0, 1]} and params: {dataset: digits, profile: tiny} (see configs/)")
    if not isinstance(raw, dict):
        raise ConfigError(f"batch config {path} must be a mapping with keys {', '.join(TOP_KEYS)}")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {path}; allowed keys: {', '.join(TOP_KEYS)}")
    name = raw.get("name") or path.stem
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ConfigError(f"name={name!r} in {path} is not allowed; use letters, digits, '.', '_' and '-' "
                          "(it names the results folder)")
    for key in ("results", "notebook"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ConfigError(f"{key}={raw[key]!r} in {path} must be a string")
    nb = NOTEBOOK_DIR / f"{raw.get('notebook', '04_evaluation')}.ipynb"
    if not nb.exists():
        allowed = sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9]*.ipynb"))
        raise ConfigError(f"notebook={raw.get('notebook')!r} does not exist; allowed: {', '.join(allowed)}")
    timeout = raw.get("timeout", 1800)
    check_range("timeout", timeout, 0, lo_open=True)
    grid = raw.get("grid") or {}
    params = raw.get("params") or {}
    if not isinstance(grid, dict) or not isinstance(params, dict):
        raise ConfigError("grid and params must be mappings of notebook parameter -> value(s)")
    if not grid and not params:  # one run of the notebook's defaults (profile cpu, every method)
        raise ConfigError(f"batch config {path} names no grid and no params, so it says nothing about what to "
                          "run; give at least one, e.g. grid: {seed: [0, 1]} and params: {dataset: digits}")
    for k, v in grid.items():
        if not isinstance(v, list):
            grid[k] = [v]
        if not grid[k]:
            raise ConfigError(f"grid.{k} is an empty list: the grid would have no runs")
    allowed = notebook_parameters(nb)
    for where, d in (("grid", grid), ("params", params)):
        bad = sorted(set(d) - set(allowed) - {"result_path", "results"})
        if bad:
            raise ConfigError(f"unknown notebook parameter(s) {bad} in {where} of {path}; "
                              f"{nb.stem} accepts: {', '.join(sorted(allowed))}")
    both = sorted(set(grid) & set(params))
    if both:
        raise ConfigError(f"{both} appear in both grid and params; put each in one place")
    jobs = check_jobs(raw.get("jobs", "auto"))
    cfg = BatchConfig(name=name, notebook=nb, timeout=float(timeout), grid=grid, params=params,
                      results=Path(results or raw.get("results") or Path("results") / name),
                      report=bool(raw.get("report", True)), jobs=jobs)
    runs = cfg.runs()
    if not runs:
        raise ConfigError(f"the grid of {path} is empty: no runs")
    for r in runs:
        for k, v in r.items():
            if k in PARAM_CHECKS:
                PARAM_CHECKS[k](v)
        ds, fc = r.get("dataset", allowed.get("dataset")), r.get("forget_class")
        if fc is not None and ds in NUM_CLASSES and fc >= NUM_CLASSES[ds]:
            raise ConfigError(f"forget_class={fc} is out of range for {ds}; allowed: 0..{NUM_CLASSES[ds] - 1}")
    return cfg


def check_jobs(jobs) -> int | str:
    """``jobs`` as given: "auto" or an integer >= 1 (ConfigError otherwise)."""
    if jobs == "auto":
        return jobs
    if isinstance(jobs, str) and jobs.isdigit():
        jobs = int(jobs)
    if isinstance(jobs, bool) or not isinstance(jobs, int):
        raise ConfigError(f"jobs={jobs!r} is not allowed; use 'auto' or a whole number >= 1")
    return check_range("jobs", jobs, 1, integer=True)


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


def run_id(params: dict) -> str:
    short = "_".join(str(params[k]) for k in ("dataset", "scheme") if k in params)
    extra = "_".join(f"{k}{params[k]}" for k in ("sparsity", "seed") if k in params)
    return f"{short}_{extra}_{config_hash(params)[:8]}".strip("_")


def run_status(run_dir: Path) -> dict | None:
    p = run_dir / "status.json"
    if not p.exists():
        return None
    try:
        return read_json(p)
    except Exception:
        return None


def settings_fingerprint() -> str:
    """A hash of every profile resolved for every dataset (``advunlearn.config``) and of the methods'
    result versions (``advunlearn.methods.versions()``, ``advunlearn.runner.STRONG_VERSION``).

    A run's parameters name a profile, not its values, so a run finished before a profile's defaults
    changed (say, the digits unlearning settings) or before a method's code changed what it computes
    would otherwise be skipped with stale results.
    """
    from .config import get_profile, profile_to_dict
    from .methods import versions
    from .runner import STRONG_VERSION

    profiles = {p: {d: profile_to_dict(get_profile(p, d)) for d in DATASETS} for p in PROFILE_NAMES}
    return config_hash({"profiles": profiles, "versions": {**versions(), "strong": STRONG_VERSION}})[:16]


def is_current(status: dict | None, run_dir: Path, fingerprint: str, threads: int | None = None) -> bool:
    """Whether a run is done, its records are there, and it ran under the current profile settings
    (and, given ``threads``, with that many CPU threads: results depend on the thread count)."""
    return bool(status and status.get("state") == "done" and (run_dir / "result.json").exists()
                and status.get("settings") == fingerprint
                and (threads is None or status.get("threads") == threads))


def run_threads(env: dict | None = None) -> int:
    """The CPU threads a run's notebook computes with in ``env`` (``ADVUNLEARN_THREADS``, else every
    core: what :func:`advunlearn.train.resolve_device` sets)."""
    env = os.environ if env is None else env
    return max(1, int(env.get("ADVUNLEARN_THREADS") or os.cpu_count() or 1))


def planned_threads(cfg: "BatchConfig", runs: list[dict], backend: str = "local") -> int:
    """The thread count every run of the batch computes with: fixed by the whole grid (not by how many
    runs are left), so a resumed batch computes its remaining runs as the first start did."""
    if backend == "ray":
        from .distributed import cpus_per_run

        return int(cpus_per_run())
    _, env = resolve_jobs(cfg.jobs, len(runs), runs)
    return run_threads({**os.environ, **env})


# The papermill processes of the runs in progress, so that a stopped batch running several side by
# side ends them all (their threads only wait on them).
_LIVE: set = set()
_LIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()


class RunStopped(Exception):
    """A run's notebook was ended because the batch was stopped."""


def execute_run(cfg_notebook: str, params: dict, run_dir: str, store: str, timeout: float) -> dict:
    """Execute one notebook run with papermill in its own process group; returns its status dict.

    Never raises for a failing notebook: the failure (error name and message, or the timeout) is
    recorded in ``status.json`` and returned.
    """
    run_dir = Path(run_dir)
    for stale in ("status.json", "result.json"):
        (run_dir / stale).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    nb_in = Path(cfg_notebook)
    nb_out = run_dir / nb_in.name
    full = {**params, "results": str(Path(store).resolve()), "result_path": str((run_dir / "result.json").resolve())}
    atomic_write_json(run_dir / "params.json", full)
    import yaml

    cmd = [sys.executable, "-m", "papermill", str(nb_in), str(nb_out), "-y", yaml.safe_dump(full),
           "--cwd", str(nb_in.parent), "--no-progress-bar", "--log-level", "ERROR"]
    env = {**os.environ, "ADVUNLEARN_PROGRESS": "0"}
    env.pop("ADVUNLEARN_STORE", None)  # a batch run always uses the batch's own store
    t0 = time.perf_counter()
    proc = subprocess.Popen(die_with_parent(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)
    with _LIVE_LOCK:
        _LIVE.add(proc)
    try:
        out, _ = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        out, _ = proc.communicate()
        timed_out = True
    except BaseException:  # Ctrl-C, SIGTERM or SIGHUP (see stop_on_signals): end the notebook, then go
        _end_notebook(proc)
        raise
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc)
    if _STOPPING.is_set():  # ended by a stopped batch (runs side by side): no status, so it is redone
        raise RunStopped(run_dir.name)
    wall = time.perf_counter() - t0
    text = out.decode(errors="replace") if out else ""
    ok = proc.returncode == 0 and not timed_out and (run_dir / "result.json").exists()
    status = {"state": "done" if ok else "failed", "wall_s": round(wall, 2), "params": params,
              "settings": settings_fingerprint(), "threads": run_threads(env)}
    if not ok:
        status["error"] = (f"timed out after {timeout:g} s" if timed_out else _error_summary(text, nb_out))
    atomic_write_json(run_dir / "status.json", status)
    return status


# Run as ``python -c`` in front of papermill: the new process asks Linux to SIGKILL it when the
# process that started it dies (PR_SET_PDEATHSIG, kept across exec), then execs papermill.  A wrapper
# instead of Popen's preexec_fn, which is unsafe in a process with threads (a Ray worker).
_PDEATHSIG_SRC = """\
import ctypes, os, signal, sys
if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL) != 0 or os.getppid() != int(sys.argv[1]):
    os._exit(70)  # prctl failed, or the parent died before it took effect
os.execv(sys.executable, [sys.executable] + sys.argv[2:])
"""


def die_with_parent(cmd: list[str]) -> list[str]:
    """``cmd`` (a ``python ...`` command line) made to die by SIGKILL when this process dies, however
    it dies (SIGKILL included), on Linux; unchanged elsewhere.

    Papermill's kernel follows papermill: jupyter_client tells it papermill's pid (``JPY_PARENT_PID``),
    and ipykernel exits within a second of that process going away.  So a batch killed outright
    leaves no notebook computing behind it; the signals it can catch end the notebook at once
    (:func:`stop_on_signals`).
    """
    if not sys.platform.startswith("linux") or cmd[0] != sys.executable:
        return cmd
    return [sys.executable, "-c", _PDEATHSIG_SRC, str(os.getpid()), *cmd[1:]]


# SIGTERM/SIGHUP raise Stopped in the main thread (one mechanism with tune's and ulira's worker pools)
from .stopping import Stopped, signals_held, stop_on_signals  # noqa: E402


def _end_notebook(proc: subprocess.Popen) -> None:
    """Kill papermill and its kernel, with further stop signals held off until they are gone."""
    with signals_held():
        _kill_tree(proc)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL papermill's process group and every descendant (jupyter_client starts the kernel in a
    session of its own, so killing the group alone would leave the kernel running)."""
    kids = []
    try:
        import psutil

        kids = psutil.Process(proc.pid).children(recursive=True)
    except Exception:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for k in kids:
        try:
            k.kill()
        except Exception:
            pass


def _error_summary(text: str, nb_out: Path) -> str:
    """The exception line papermill reports (or the notebook's error output)."""
    lines = [l for l in text.splitlines() if l.strip()]
    for l in reversed(lines):
        if "Error" in l or "Exception" in l:
            return l.strip()[:500]
    if nb_out.exists():
        try:
            nb = json.loads(nb_out.read_text())
            for c in nb.get("cells", []):
                for o in c.get("outputs", []):
                    if o.get("output_type") == "error":
                        return f"{o.get('ename')}: {o.get('evalue')}"[:500]
        except Exception:
            pass
    return (lines[-1] if lines else "the notebook run failed without output")[:500]


def _check_writable(folder: Path) -> None:
    from .store import StoreError, _write_error

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


def collect(cfg: BatchConfig) -> tuple[list[dict], list[dict]]:
    """(records of finished runs, status of every run) in grid order."""
    recs, statuses = [], []
    for params in cfg.runs():
        d = cfg.results / "runs" / run_id(params)
        st = run_status(d) or {"state": "pending", "params": params}
        st = {**st, "run": d.name}
        statuses.append(st)
        if st.get("state") == "done" and (d / "result.json").exists():
            data = read_json(d / "result.json")
            for r in data if isinstance(data, list) else [data]:
                recs.append({**r, "run": d.name})
    return recs, statuses


PUBLISHED_FILES = ("params.json", "result.json", "status.json")


def publish(src, dest, *, allow_partial: bool = False, log=None) -> dict:
    """Copy a batch's finished runs into ``dest`` (e.g. ``results/published/<name>``) for the README.

    Keeps, per finished run, only the small records (``params.json``, ``result.json`` and
    ``status.json``, which holds the settings fingerprint), not the executed notebook, and writes
    ``dest/results.csv``.  Refuses a batch with unfinished or failed runs unless ``allow_partial``.
    Runs already in ``dest`` that the batch no longer has are removed, so ``dest`` is exactly the batch;
    ``log`` (e.g. ``print``) is told each one before it goes.  Nothing in ``src`` is ever changed:
    ``dest`` may not be ``src`` (by any path), lie inside it or hold it.  Every check (the folders, each
    finished run's ``result.json``) comes before anything is written or removed.
    Returns ``{"runs": n, "rows": n, "skipped": [run, ...], "removed": [run, ...]}``.
    """
    src, dest = Path(src), Path(dest)
    if src.exists() and not src.is_dir():
        raise ConfigError(f"SRC {src} is a file; give the results folder of a batch "
                          "(the --results of `advunlearn batch`, e.g. results/fashion-mnist-table1)")
    runs = src / "runs"
    if not runs.is_dir():
        raise ConfigError(f"{src} has no runs/ folder; give the results folder of a batch "
                          "(the --results of `advunlearn batch`, e.g. results/fashion-mnist-table1)")
    _check_publish_dest(src, dest)
    done, skipped = [], []
    for d in sorted(p for p in runs.iterdir() if p.is_dir()):
        st = run_status(d)
        if st and st.get("state") == "done" and (d / "result.json").exists():
            done.append(d)
        else:
            skipped.append(d.name)
    if skipped and not allow_partial:
        raise ConfigError(f"{len(skipped)} run(s) of {src} are not done ({', '.join(skipped[:4])}"
                          f"{', ...' if len(skipped) > 4 else ''}); finish the batch, or pass --partial to "
                          "publish the finished runs only")
    if not done:
        raise ConfigError(f"{src} has no finished run to publish")
    recs = []
    for d in done:  # every record read before anything is written: a corrupt one stops the publishing here
        data = read_json(d / "result.json")
        recs += [{**r, "run": d.name} for r in (data if isinstance(data, list) else [data])]
    out_runs = dest / "runs"
    keep = {d.name for d in done}
    stale = sorted(p for p in out_runs.iterdir() if (p.is_dir() or p.is_symlink()) and p.name not in keep) \
        if out_runs.is_dir() else []
    out_runs.mkdir(parents=True, exist_ok=True)
    for old in stale:
        if log:
            log(f"removing {old}: not a finished run of {src}")
        if old.is_symlink():
            old.unlink()  # the link only, never what it points to
        else:
            shutil.rmtree(old)
    for d in done:
        target = out_runs / d.name
        if target.is_symlink():
            target.unlink()
        target.mkdir(exist_ok=True)
        for f in PUBLISHED_FILES:
            if (d / f).exists():
                if (target / f).is_symlink():
                    (target / f).unlink()
                shutil.copyfile(d / f, target / f)
    write_results_csv(recs, dest / "results.csv")
    return {"runs": len(done), "rows": len(recs), "skipped": skipped, "removed": [p.name for p in stale]}


def _check_publish_dest(src: Path, dest: Path) -> None:
    """ConfigError unless ``dest`` can be published into without touching ``src``."""
    rs, rd = src.resolve(), dest.resolve()
    same = rs == rd or (dest.exists() and os.path.samefile(src, dest))
    if same:
        raise ConfigError(f"SRC {src} and DEST {dest} are the same folder; publish into another folder, "
                          f"e.g. results/published/{rs.name}")
    if rs in rd.parents:
        raise ConfigError(f"DEST {dest} lies inside SRC {src}; publish into a folder outside the batch's, "
                          f"e.g. results/published/{rs.name}")
    if rd in rs.parents:
        raise ConfigError(f"SRC {src} lies inside DEST {dest}, whose old runs publish removes; publish into "
                          f"another folder, e.g. results/published/{rs.name}")
    for p, what in ((dest, "a folder"), (dest / "runs", "a folder")):
        if p.exists() and not p.is_dir():
            raise ConfigError(f"DEST {dest}: {p} is a file; DEST must be {what} (e.g. results/published/{rs.name})")
    if (dest / "results.csv").is_dir():
        raise ConfigError(f"DEST {dest}: {dest / 'results.csv'} is a folder; publish writes a file there")
    from .store import folder_to_write

    folder_to_write("DEST", dest, f"results/published/{rs.name}")

def write_results_csv(recs: list[dict], path: Path) -> None:
    import csv
    import io

    cols = ["run", "dataset", "scheme", "sparsity", "seed", "profile", "model", "method", "UA", "MIA_efficacy",
            "RA", "TA", "VA", "run_time_s"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in recs:
        w.writerow(r)
    from .store import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue().encode())


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
    from .config import get_profile
    from .unlearn import long_run_warning

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
            from .distributed import check_cluster

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
            from .distributed import run_on_ray

            run_on_ray(cfg, todo, store, address, log)
        else:
            _run_local(cfg, todo, store, log, threads)
    finally:
        if backend == "ray":
            from .distributed import shutdown

            shutdown()
    recs, statuses = collect(cfg)
    failed = [s for s in statuses if s.get("state") != "done"]
    atomic_write_json(cfg.results / "batch_status.json", {"name": cfg.name, "runs": statuses,
                                                           "failed": len(failed), "done": len(statuses) - len(failed)})
    if recs:
        write_results_csv(recs, cfg.results / "results.csv")
        if cfg.report:
            from .report import build_report

            build_report(cfg.results / "runs", cfg.results / "report")
    log(f"batch {cfg.name}: {len(statuses) - len(failed)} done, {len(failed)} failed "
        f"in {time.perf_counter() - t_all:.1f}s; results in {cfg.results}")
    for s in failed:
        log(f"  failed: {s['run']}: {s.get('error', s.get('state'))}")
    return 1 if failed else 0


__all__ = ["run_batch", "load_config", "execute_run", "collect", "run_id", "BatchConfig", "notebook_parameters"]
