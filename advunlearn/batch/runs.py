"""One run of a batch: its id, its status, and its execution (papermill in a process of its own).

:func:`execute_run` is what the local backend runs side by side and what each Ray task runs
(:mod:`advunlearn.batch.ray_backend`).  A run's ``status.json`` is written last; a done run also
records the fingerprint of the package's settings (:func:`settings_fingerprint`) and its thread
count, so a resumed batch redoes runs that would otherwise be stale.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..core.config import DATASETS, PROFILE_NAMES
from ..core.stopping import signals_held
from ..core.store import atomic_write_json, config_hash, read_json


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
    """A hash of every profile resolved for every dataset (``advunlearn.core.config``) and of the methods'
    result versions (``advunlearn.methods.versions()``, ``advunlearn.evaluation.fresh.STRONG_VERSION``).

    A run's parameters name a profile, not its values, so a run finished before a profile's defaults
    changed (say, the digits unlearning settings) or before a method's code changed what it computes
    would otherwise be skipped with stale results.
    """
    from ..experiments.profiles import get_profile, profile_to_dict
    from ..methods import versions
    from ..evaluation.fresh import STRONG_VERSION

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
    core: what :func:`advunlearn.core.train.resolve_device` sets)."""
    env = os.environ if env is None else env
    return max(1, int(env.get("ADVUNLEARN_THREADS") or os.cpu_count() or 1))


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
