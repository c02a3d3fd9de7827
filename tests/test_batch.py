"""The papermill batch runner: validation before any run, failures recorded, resume after SIGKILL."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advunlearn.batch import load_config, run_batch
from advunlearn.core.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text, name="b.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = """
name: t
notebook: 04_evaluation
timeout: 600
grid:
  scheme: [random, class]
params:
  dataset: digits
  profile: tiny
  methods: [retrain, ft]
"""


def test_good_config_expands_the_grid(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), results=tmp_path / "r")
    runs = cfg.runs()
    assert [r["scheme"] for r in runs] == ["random", "class"]
    assert all(r["dataset"] == "digits" and r["methods"] == ["retrain", "ft"] for r in runs)


@pytest.mark.parametrize("text, needle", [
    (GOOD.replace("timeout: 600", "timout: 600"), "unknown key(s) ['timout']"),
    (GOOD.replace("dataset: digits", "dataset: mnist"), "dataset='mnist'"),
    (GOOD.replace("profile: tiny", "profile: tiny\n  alpha: -1"), "alpha=-1"),
    (GOOD.replace("profile: tiny", "profile: tiny\n  beta: -0.5"), "beta=-0.5"),
    (GOOD.replace("[random, class]", "[]"), "grid.scheme is an empty list"),
    (GOOD.replace("scheme: [random, class]", "schem: [random, class]"), "unknown notebook parameter(s) ['schem']"),
    (GOOD.replace("[retrain, ft]", "[retrain, sgd]"), "methods='sgd'"),
    (GOOD.replace("04_evaluation", "99_nothing"), "notebook='99_nothing' does not exist"),
    (GOOD.replace("profile: tiny", "profile: tiny\n  sparsity: 1.0"), "sparsity=1.0"),
    ("- just\n- a list\n", "must be a mapping"),
])
def test_bad_config_fails_before_any_run(tmp_path, text, needle):
    res = tmp_path / "r"
    with pytest.raises(ConfigError) as e:
        run_batch(write(tmp_path, text), results=res, log=lambda *_: None)
    assert needle in str(e.value)
    assert not res.exists()  # nothing written


def test_cli_bad_config_exit_status(tmp_path):
    p = write(tmp_path, GOOD.replace("dataset: digits", "dataset: mnist"))
    r = subprocess.run([sys.executable, "-m", "advunlearn.cli", "batch", str(p), "--results", str(tmp_path / "r")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "dataset='mnist'" in r.stderr
    assert not (tmp_path / "r").exists()


def _env():
    return {**os.environ, "ADVUNLEARN_FAST": "1", "ADVUNLEARN_PROGRESS": "0", "PYTHONUNBUFFERED": "1"}


def _rows(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in ("run_time_s",)} for r in csv.DictReader(f)]


@pytest.mark.slow
def test_failed_run_is_recorded_and_others_go_on(tmp_path, monkeypatch):
    # forget_frac 0.0001 passes the batch's checks (a fraction in (0, 1)) but leaves digits' D_f
    # empty: the notebook raises, that run is failed, the other run finishes, the exit status says so.
    text = GOOD.replace("scheme: [random, class]", "forget_frac: [0.1, 0.0001]").replace(
        "dataset: digits", "dataset: digits\n  scheme: random")
    res = tmp_path / "r"
    monkeypatch.setenv("ADVUNLEARN_FAST", "1")
    rc = run_batch(write(tmp_path, text), results=res, log=lambda *_: None)
    assert rc == 1
    st = json.loads((res / "batch_status.json").read_text())
    assert st["done"] == 1 and st["failed"] == 1
    failed = [r for r in st["runs"] if r["state"] == "failed"][0]
    assert "forget_frac=0.0001 gives 0 forget samples" in failed["error"]
    assert {r["method"] for r in _rows(res / "results.csv")} == {"retrain", "ft"}


def _fake_execute(calls: list):
    """An execute_run that writes a done run at once and appends (run name, its thread count) to ``calls``."""
    from advunlearn.batch import runs

    def fake_execute(nb, params, run_dir, store, timeout):
        calls.append((Path(run_dir).name, runs.run_threads()))
        d = Path(run_dir)
        d.mkdir(parents=True, exist_ok=True)
        (d / "result.json").write_text(json.dumps([{"method": "retrain", "UA": 1.0}]))
        st = {"state": "done", "wall_s": 0.1, "params": params, "settings": runs.settings_fingerprint(),
              "threads": runs.run_threads()}
        (d / "status.json").write_text(json.dumps(st))
        return st

    return fake_execute


def test_done_runs_are_redone_when_the_profile_settings_changed(tmp_path, monkeypatch):
    # A run's params name its profile, not the profile's values: a run finished before a default
    # changed (here the tiny digits unlearning settings) must not be kept as if it were current.
    from advunlearn.batch import grid, runs
    from advunlearn.experiments import profiles

    calls = []

    def executed():
        return [name for name, _ in calls]

    monkeypatch.setattr(grid, "execute_run", _fake_execute(calls))
    cfg = write(tmp_path, GOOD + "report: false\n")
    res = tmp_path / "r"
    assert run_batch(cfg, results=res, log=lambda *_: None) == 0
    first = sorted(executed())
    assert len(first) == 2

    calls.clear()
    logs = []
    assert run_batch(cfg, results=res, log=logs.append) == 0
    assert executed() == [] and sum(l.startswith("[skip]") for l in logs) == 2

    before = runs.settings_fingerprint()
    changed = {k: v.updated(alpha=v.alpha + 1.0) for k, v in profiles.PROFILES["tiny"]["digits"]["unlearn"].items()}
    monkeypatch.setitem(profiles.PROFILES["tiny"]["digits"], "unlearn", changed)
    assert runs.settings_fingerprint() != before
    logs.clear()
    assert run_batch(cfg, results=res, log=logs.append) == 0
    assert sorted(executed()) == first
    assert sum(l.startswith("[redo]") and "other profile settings" in l for l in logs) == 2, logs

    # A status written before fingerprints existed cannot be trusted either.
    d = res / "runs" / first[0]
    st = json.loads((d / "status.json").read_text())
    del st["settings"]
    (d / "status.json").write_text(json.dumps(st))
    calls.clear()
    assert run_batch(cfg, results=res, log=lambda *_: None) == 0
    assert executed() == [first[0]]


@pytest.mark.slow
def test_sigkill_midway_then_resume(tmp_path):
    """Kill the batch (and its notebook) with SIGKILL during the second run; rerun; nothing lost."""
    cfg = write(tmp_path, GOOD)  # two runs: random, then class
    res = tmp_path / "r"
    # one run at a time, so that the kill lands while the first is done and the second runs
    cmd = [sys.executable, "-m", "advunlearn.cli", "batch", str(cfg), "--results", str(res), "--jobs", "1"]
    p = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True, text=True)
    lines = []
    for line in p.stdout:  # wait until the first run is done and the second has started
        lines.append(line)
        if line.startswith("[2/2]") and "..." in line:
            break
    time.sleep(3)  # well inside the second notebook
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    runs = sorted((res / "runs").iterdir())
    done = [d for d in runs if (d / "status.json").exists()]
    assert len(done) == 1, lines
    first_status = (done[0] / "status.json").stat().st_mtime_ns
    first_result = (done[0] / "result.json").read_text()
    # a killed run never leaves a status, so it cannot be mistaken for a finished one
    assert all(not (d / "status.json").exists() for d in runs if d != done[0])

    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"[skip] {done[0].name}" in r.stdout
    assert (done[0] / "status.json").stat().st_mtime_ns == first_status  # not recomputed
    assert (done[0] / "result.json").read_text() == first_result
    rows = _rows(res / "results.csv")
    assert len(rows) == 2 * 2  # 2 runs x 2 methods, each exactly once
    assert len({(r["run"], r["method"]) for r in rows}) == 4
    assert (res / "report" / "table1.md").exists()

    # the same grid run uninterrupted gives the same table
    res2 = tmp_path / "r2"
    r2 = subprocess.run([sys.executable, "-m", "advunlearn.cli", "batch", str(cfg), "--results", str(res2)],
                        cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert _rows(res2 / "results.csv") == rows


def test_batch_without_papermill_is_a_config_error_saying_what_to_install(monkeypatch, tmp_path):
    import sys

    from advunlearn.batch import notebook_parameters

    monkeypatch.setitem(sys.modules, "papermill", None)  # import papermill -> ImportError
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[notebooks\]'"):
        notebook_parameters(tmp_path / "x.ipynb")


def test_jobs_setting_is_checked_and_auto_gives_one_thread_per_run(tmp_path, monkeypatch):
    from advunlearn.batch import grid

    assert load_config(write(tmp_path, GOOD), results=tmp_path / "r").jobs == "auto"
    assert load_config(write(tmp_path, GOOD + "jobs: 2\n"), results=tmp_path / "r").jobs == 2
    for bad in ("0", "-1", "many", "1.5"):
        with pytest.raises(ConfigError, match="jobs"):
            load_config(write(tmp_path, GOOD + f"jobs: {bad}\n"), results=tmp_path / "r")
    monkeypatch.setattr(grid.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(grid, "_cuda_available", lambda: False)
    assert grid.resolve_jobs("auto", 4) == (2, {"ADVUNLEARN_THREADS": "1", "OMP_NUM_THREADS": "1",
                                                 "MKL_NUM_THREADS": "1"})
    assert grid.resolve_jobs("auto", 1) == (1, {})   # one run: its threads are left alone
    assert grid.resolve_jobs(1, 4) == (1, {})
    monkeypatch.setattr(grid, "_cuda_available", lambda: True)
    assert grid.resolve_jobs("auto", 4)[0] == 1                       # runs that may use the GPU: one at a time
    assert grid.resolve_jobs("auto", 4, [{"device": "cpu"}])[0] == 2


@pytest.mark.slow
def test_two_jobs_give_the_same_results_as_one(tmp_path):
    """The grid run two at a time (one thread each, sharing one store and its θ0) writes the same
    results.csv as the grid run one after another."""
    text = GOOD.replace("scheme: [random, class]", "scheme: [random, class]\n  seed: [0]") + "report: false\n"
    cfg = write(tmp_path, text)
    rows = {}
    for jobs in ("1", "2"):
        res = tmp_path / f"r{jobs}"
        r = subprocess.run([sys.executable, "-m", "advunlearn.cli", "batch", str(cfg), "--results", str(res),
                            "--jobs", jobs], cwd=ROOT, env={**_env(), "ADVUNLEARN_THREADS": "1"},
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        assert ("2 runs side by side" in r.stdout) == (jobs == "2"), r.stdout
        rows[jobs] = _rows(res / "results.csv")
    assert len(rows["1"]) == 4 and rows["2"] == rows["1"]


def test_a_run_done_with_another_thread_count_is_redone_and_every_run_gets_the_planned_count(tmp_path, monkeypatch):
    """Results depend on the CPU thread count: a batch gives every run the count its whole grid plans
    (also the last run of a resumed batch), records it in status.json, and redoes a run done with another."""
    from advunlearn.batch import grid

    seen = []
    monkeypatch.setattr(grid, "execute_run", _fake_execute(seen))
    monkeypatch.setattr(grid.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(grid, "_cuda_available", lambda: False)
    monkeypatch.delenv("ADVUNLEARN_THREADS", raising=False)
    cfg = write(tmp_path, GOOD + "report: false\njobs: auto\n")
    res = tmp_path / "r"
    assert run_batch(cfg, results=res, log=lambda *_: None) == 0
    assert [t for _, t in seen] == [1, 1]                     # two runs on two cores: one thread each
    # one run's status says two threads: it alone is redone, with one thread again (not two, though it is
    # the only run left)
    d = res / "runs" / seen[0][0]
    st = json.loads((d / "status.json").read_text())
    (d / "status.json").write_text(json.dumps({**st, "threads": 2}))
    seen.clear()
    logs = []
    assert run_batch(cfg, results=res, log=logs.append) == 0
    assert seen == [(d.name, 1)]
    assert any(l.startswith("[redo]") and "2 thread(s) per run, not 1" in l for l in logs), logs
    assert "ADVUNLEARN_THREADS" not in grid.os.environ          # restored after the batch
