"""run_experiment's method workers: the same records as one process, and nothing left running on an error."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from advunlearn.core.config import ConfigError
from advunlearn.experiments.experiment import Experiment
from advunlearn.experiments.runner import _worker_order, run_experiment
from advunlearn.experiments.workers import method_workers

METHODS = ["retrain", "ours", "ga", "ft", "ours_no_vss", "ssd"]
VOLATILE = ("run_time_s", "attacker", "records_time_s")


def _exp(root, **kw):
    return Experiment(dataset="digits", profile="tiny", scheme="random", seed=3, device="cpu", results=str(root),
                      progress=False, **kw)


def _stable(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in VOLATILE}


def test_two_workers_give_the_records_of_one_process(tmp_path, one_thread):
    one = run_experiment(_exp(tmp_path / "a"), METHODS, log=None, workers=1)
    lines = []
    two = run_experiment(_exp(tmp_path / "b"), METHODS, log=lines.append, workers=2)
    assert [r["method"] for r in two] == METHODS  # the order asked for, whatever order they finished in
    assert lines[0].strip().startswith("6 methods on 2 single-thread processes"), lines
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(METHODS)
    for a, b in zip(one, two):
        assert _stable(a) == _stable(b), a["method"]
    # Ours and its ablation, in two processes, used one pretrained attacker: the one whose training
    # time both records carry (two trainings would have taken two different times)
    by = {r["method"]: r for r in two}
    assert by["ours"]["attacker"]["time_s"] == by["ours_no_vss"]["attacker"]["time_s"]
    # asked again, everything is stored: the records are read here, no process is started
    lines.clear()
    again = run_experiment(_exp(tmp_path / "b"), METHODS, log=lines.append, workers=2)
    assert [json.dumps(r, sort_keys=True) for r in again] == [json.dumps(r, sort_keys=True) for r in two]  # NaN-safe
    assert not any("processes" in line for line in lines), lines


def test_the_ours_chain_starts_first_and_its_ablation_after_the_attacker():
    order = _worker_order(["retrain", "retrain_other", "ft", "ga", "ours", "ours_no_vss", "ssd"], 2)
    assert order == ["ours", "retrain", "retrain_other", "ours_no_vss", "ft", "ga", "ssd"]
    assert _worker_order(["ga", "ft"], 2) == ["ga", "ft"]
    assert sorted(_worker_order(METHODS, 4)) == sorted(METHODS)


def test_worker_counts(tmp_path, monkeypatch):
    exp = _exp(tmp_path)
    monkeypatch.setenv("ADVUNLEARN_THREADS", "1")  # a batch running one job per core
    assert method_workers(exp, "auto", 14) == 1
    monkeypatch.setenv("ADVUNLEARN_THREADS", "2")
    assert method_workers(exp, "auto", 14) == 2
    monkeypatch.setenv("ADVUNLEARN_THREADS", "64")
    assert method_workers(exp, "auto", 14) == 4  # MAX_AUTO_WORKERS
    assert method_workers(exp, 3, 2) == 2  # never more than the methods
    # a profile edited in memory would not reach a worker that rebuilds the experiment: one process
    exp.prof = dataclasses.replace(exp.prof, max_train=100)
    assert method_workers(exp, 2, 14) == 1
    for bad in (0, -1, "two", 1.5, True):
        with pytest.raises(ConfigError, match="workers=.*whole number >= 1 or 'auto'"):
            method_workers(exp, bad, 14)
    with pytest.raises(ConfigError, match="workers"):  # checked before any work
        run_experiment(exp, ["ga"], log=None, workers=0)
    assert not (tmp_path / "pretrain").exists()


def _fail_or_sleep(spec, i):
    if i == 0:
        raise ValueError("task 0 failed")
    time.sleep(60)
    return i


def test_a_failed_task_stops_the_other_workers_at_once():
    import psutil

    from advunlearn.experiments.workers import run_tasks

    def live_children() -> set[int]:  # processes that exist, not multiprocessing's bookkeeping of them
        return {c.pid for c in psutil.Process().children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE}

    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # the spawn context's helper process, started once per process
    before = live_children()
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="task 0 failed"):
        run_tasks(None, {}, _fail_or_sleep, [(i,) for i in range(4)], workers=2)
    # without stopping the pool the with-block would wait for the 60 s sleeps of the running tasks
    assert time.perf_counter() - t0 < 40
    assert live_children() - before == set()


_INTERRUPTED = r"""
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, whatever this test inherited
from advunlearn.experiments.experiment import Experiment
from advunlearn.experiments.runner import run_experiment

if __name__ == "__main__":
    exp = Experiment(dataset="digits", profile="tiny", scheme="random", seed=5, device="cpu", results=sys.argv[1],
                     progress=False)
    run_experiment(exp, ["ours", "retrain", "retrain_seed2", "ours_no_vss", "ft"], workers=2,
                   log=lambda s: print(s, flush=True))
"""


def test_ctrl_c_during_the_workers_stops_them_and_a_rerun_completes(tmp_path):
    """Ctrl-C (SIGINT to the foreground process group) while the workers run: the call ends with
    KeyboardInterrupt within seconds, no process of the group is left, and the store holds nothing
    half-written: the same call run again completes."""
    import os
    import signal
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(_INTERRUPTED)
    store = tmp_path / "store"
    p = subprocess.Popen([sys.executable, str(script), str(store)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True, env={**os.environ, "ADVUNLEARN_PROGRESS": "0"})
    try:
        line = p.stdout.readline()  # printed when the pool starts
        assert "methods on 2 single-thread processes" in line, line + p.stderr.read()
        first = p.stdout.readline()  # the first method done; Ours (attacker pretraining, then its loop) is not
        assert first.split()[0] in ("retrain", "retrain_seed2", "ft"), first + p.stderr.read()
        t0 = time.perf_counter()
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=60)
        stopped = time.perf_counter() - t0
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode != 0 and "KeyboardInterrupt" in err, out + err
    assert not any(w.split()[:1] == ["ours"] for w in out.splitlines()), out  # it was stopped, not finished
    assert stopped < 30, stopped
    left = ""
    for _ in range(50):  # nothing of the group is left running (allow exiting processes a moment)
        left = subprocess.run(["ps", "-o", "pid,stat,args", "-g", str(p.pid)], capture_output=True, text=True).stdout
        if len(left.strip().splitlines()) <= 1:
            break
        time.sleep(0.2)
    assert len(left.strip().splitlines()) <= 1, left
    r = subprocess.run([sys.executable, str(script), str(store)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "ADVUNLEARN_PROGRESS": "0"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(line.split()[0] for line in r.stdout.splitlines()[1:]) == \
        sorted(["ours", "retrain", "retrain_seed2", "ours_no_vss", "ft"]), r.stdout


def test_explorer_grid_in_two_workers_equals_the_grid_of_one_process(tmp_path, one_thread):
    from advunlearn.course.explorer import compute_grid

    alphas, betas = [0.0, 2.0], [0.0, 0.05]
    one = compute_grid({"random": _exp(tmp_path / "a")}, alphas, betas, iterations=12, progress=False)
    exps = {"random": _exp(tmp_path / "b")}
    two = compute_grid(exps, alphas, betas, iterations=12, progress=False, workers=2)
    assert list(two) == list(one) == [("random", a, b) for a in alphas for b in betas]  # the order asked for
    keys = ("UA", "RA", "TA", "MIA_efficacy", "iterations", "curve")
    for k in one:
        assert {m: one[k][m] for m in keys} == {m: two[k][m] for m in keys}, k
    assert len({two[k]["UA"] for k in two}) > 1  # the points differ: each is its own run
    # stored by the workers: a one-process call reads them back, nothing is written (recomputed) again
    def files():
        return {str(p): p.stat().st_mtime_ns for p in (tmp_path / "b").rglob("*") if p.is_file()
                and not p.name.endswith(".lock")}

    before = files()
    again = compute_grid(exps, alphas, betas, iterations=12, progress=False)
    assert {k: again[k]["UA"] for k in again} == {k: two[k]["UA"] for k in two}
    assert files() == before
    with pytest.raises(ConfigError, match="workers"):
        compute_grid(exps, alphas, betas, iterations=12, progress=False, workers=0)
