"""Faults: SIGKILL while a checkpoint is being written, then resume; results equal an uninterrupted run."""

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _terminal import popen

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
name: faults
notebook: 04_evaluation
timeout: 600
grid:
  scheme: [random]
params:
  dataset: digits
  profile: tiny
  methods: [ft]
"""

# Loaded at start-up by every Python process of the batch (driver, papermill, kernel): the first time
# a model checkpoint is renamed into place, SIGKILL the whole batch (its process group) and this
# process's own group instead -- the temporary file is written, the rename never happens.
HOOK = textwrap.dedent('''
    import os, signal
    _target = os.environ.get("FAULT_PGID_FILE")
    if _target:
        _orig = os.replace
        def _replace(src, dst, *a, **k):
            if str(dst).endswith("model.safetensors") and os.path.exists(_target):
                pgid = int(open(_target).read())
                os.unlink(_target)
                os.killpg(pgid, signal.SIGKILL)
                os.killpg(os.getpgid(0), signal.SIGKILL)
            return _orig(src, dst, *a, **k)
        os.replace = _replace
''')


def _rows(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k != "run_time_s"} for r in csv.DictReader(f)]


def _hooked_env(tmp_path, hook: str, **extra) -> dict:
    """The environment of a batch whose Python processes import ``hook`` first (as sitecustomize)."""
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(hook)
    env = {**os.environ, "ADVUNLEARN_FAST": "1", "PYTHONPATH": f"{hook_dir}{os.pathsep}{ROOT}", **extra}
    env.pop("ADVUNLEARN_STORE", None)
    return env


@pytest.mark.slow
def test_sigkill_while_writing_a_checkpoint(tmp_path):
    cfg = tmp_path / "b.yaml"
    cfg.write_text(CONFIG)
    res = tmp_path / "r"
    flag = tmp_path / "pgid"
    env = _hooked_env(tmp_path, HOOK, FAULT_PGID_FILE=str(flag))
    cmd = [sys.executable, "-m", "advunlearn.cli", "batch", str(cfg), "--jobs", "1", "--results", str(res)]
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    flag.write_text(str(p.pid))
    out, _ = p.communicate(timeout=600)
    assert p.returncode == -signal.SIGKILL, out.decode()
    assert not flag.exists()  # the hook fired
    tmps = list(res.rglob("*.tmp"))
    assert tmps, "the kill should have left a half-written temporary checkpoint"
    half = tmps[0].parent
    assert not (half / "DONE").exists() and not (half / "model.safetensors").exists()
    assert not (res / "runs").exists() or not list((res / "runs").rglob("status.json"))

    # Resume: the half-written artifact is discarded and recomputed, never loaded.
    r = subprocess.run(cmd, cwd=ROOT, env={**env, "FAULT_PGID_FILE": ""}, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not list(res.rglob("*.tmp"))
    assert (half / "DONE").exists() and (half / "model.safetensors").exists()

    # The results equal an uninterrupted run's.
    res2 = tmp_path / "r2"
    env2 = {k: v for k, v in env.items() if k not in ("FAULT_PGID_FILE",)}
    r2 = subprocess.run([*cmd[:-1], str(res2)], cwd=ROOT, env=env2, capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert _rows(res / "results.csv") == _rows(res2 / "results.csv")


def test_read_only_results_folder_fails_clearly(tmp_path, monkeypatch, capsys):
    import errno
    import pathlib

    from advunlearn import cli

    cfg = tmp_path / "b.yaml"
    cfg.write_text(CONFIG)
    real_mkdir = pathlib.Path.mkdir

    def ro_mkdir(self, *a, **k):
        if str(self).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(pathlib.Path, "mkdir", ro_mkdir)
    rc = cli.main(["batch", str(cfg), "--results", str(tmp_path / "ro" / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "not writable" in err and str(tmp_path / "ro") in err
    assert not (tmp_path / "ro").exists()


def test_full_disk_fails_clearly_before_any_run(tmp_path, monkeypatch, capsys):
    import shutil
    from collections import namedtuple

    from advunlearn import cli

    cfg = tmp_path / "b.yaml"
    cfg.write_text(CONFIG)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 * 2**30, 10 * 2**30 - 2**20, 2**20))
    rc = cli.main(["batch", str(cfg), "--results", str(tmp_path / "full")])
    err = capsys.readouterr().err
    assert rc == 2 and "disk is full" in err
    assert not (tmp_path / "full" / "runs").exists()


# ---------------------------------------------------------------------------------------------------
# Stopping a batch: no notebook (papermill, its kernel) may outlive it, however it is stopped.

STOP_CONFIG = """
name: stop
notebook: 04_evaluation
timeout: 600
grid:
  seed: [0, 1]
params:
  dataset: digits
  profile: tiny
  methods: [ft]
"""


def _batch(cfg, res, jobs=1):
    env = {**os.environ, "ADVUNLEARN_FAST": "1", "ADVUNLEARN_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("ADVUNLEARN_STORE", None)
    cmd = [sys.executable, "-m", "advunlearn.cli", "batch", str(cfg), "--results", str(res), "--jobs", str(jobs)]
    # As a terminal starts a command: a session of its own (its process group is its pid) and the stop
    # signals at their defaults, even when this suite runs with SIGINT or SIGHUP ignored (nohup, `&`).
    return popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _notebook_of(run_dir, proc, timeout=120):
    """(papermill, kernel) of the run whose output goes to ``run_dir``, once the kernel is executing."""
    import psutil

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, proc.communicate()
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "papermill" in cmd and str(run_dir) in cmd:
                try:
                    kids = [k for k in p.children() if "ipykernel" in " ".join(k.cmdline())]
                except psutil.Error:
                    continue
                if kids:
                    time.sleep(1.5)  # into the notebook's cells
                    return p, kids[0]
        time.sleep(0.2)
    raise AssertionError(f"no kernel for {run_dir} within {timeout} s")


def _gone(procs, timeout=10.0):
    """Whether every process of ``procs`` has exited (a zombie awaiting its reaper counts as gone)."""
    import psutil

    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        alive = []
        for p in procs:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            return True
        time.sleep(0.2)
    for p in alive:  # do not leave them to the next test
        p.kill()
    return False


def _left_behind(res):
    """Processes still running whose command line names the results folder (papermill, its wrapper)."""
    import psutil

    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        if p.info["status"] != psutil.STATUS_ZOMBIE and str(res) in " ".join(p.info["cmdline"] or []):
            out.append(p)
    return out


@pytest.mark.slow
def test_batch_stopped_by_sigkill_of_its_group_and_by_ctrl_c_leaves_no_notebook(tmp_path):
    from advunlearn.batch import load_config, run_id

    cfg = tmp_path / "b.yaml"
    cfg.write_text(STOP_CONFIG)
    res = tmp_path / "r"
    second = res / "runs" / run_id(load_config(cfg).runs()[1])

    # SIGKILL to the whole process group once the first run is done and the second one computes.
    p = _batch(cfg, res)
    nb = _notebook_of(second, p)
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    assert p.returncode == -signal.SIGKILL
    assert _gone(nb), f"left running after SIGKILL of the batch's group: {nb}"
    assert not _left_behind(res)
    assert not (second / "status.json").exists()

    # Ctrl-C (SIGINT to the foreground group) during the resumed batch: a short message, no traceback.
    p = _batch(cfg, res)
    nb = _notebook_of(second, p)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 128 + signal.SIGINT, out + err
    assert "stopped by SIGINT" in err and "run the same command again to resume" in err
    assert "Traceback" not in err + out, err
    assert "[skip]" in out  # the first run was kept
    assert _gone(nb), f"left running after Ctrl-C: {nb}"
    assert not _left_behind(res)

    # Resumed to the end, the tables equal an uninterrupted run's.
    p = _batch(cfg, res)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, out + err
    p = _batch(cfg, tmp_path / "whole")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, out + err
    assert _rows(res / "results.csv") == _rows(tmp_path / "whole" / "results.csv")
    assert len(_rows(res / "results.csv")) == 2


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "SIGKILL-of-the-batch-alone"])
def test_batch_stopped_otherwise_leaves_no_notebook(tmp_path, how):
    from advunlearn.batch import load_config, run_id

    cfg = tmp_path / "b.yaml"
    cfg.write_text(STOP_CONFIG)
    res = tmp_path / "r"
    first = res / "runs" / run_id(load_config(cfg).runs()[0])
    p = _batch(cfg, res)
    nb = _notebook_of(first, p)
    sig = signal.SIGKILL if how.startswith("SIGKILL") else getattr(signal, how)
    os.kill(p.pid, sig)  # the batch's process only (a lost terminal sends SIGHUP to it)
    out, err = p.communicate(timeout=30)
    if sig == signal.SIGKILL:
        assert p.returncode == -signal.SIGKILL
    else:
        assert p.returncode == 128 + sig and f"stopped by {how}" in err and "Traceback" not in err, out + err
    assert _gone(nb), f"left running after {how}: {nb}"
    assert not _left_behind(res)
    assert not (first / "status.json").exists()  # redone when the batch is resumed


@pytest.mark.slow
def test_a_batch_running_runs_side_by_side_stops_them_all(tmp_path):
    """With --jobs 2 both notebooks run at once; SIGTERM ends both, the batch exits, neither run is
    recorded (both are redone on resume)."""
    from advunlearn.batch import load_config, run_id

    cfg = tmp_path / "b.yaml"
    cfg.write_text(STOP_CONFIG)
    res = tmp_path / "r"
    dirs = [res / "runs" / run_id(r) for r in load_config(cfg).runs()]
    p = _batch(cfg, res, jobs=2)
    nbs = [_notebook_of(d, p) for d in dirs]
    os.kill(p.pid, signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM" in err and "Traceback" not in err, out + err
    for nb in nbs:
        assert _gone(nb), f"left running: {nb}"
    assert not _left_behind(res)
    assert not any((d / "status.json").exists() for d in dirs)


# ---------------------------------------------------------------------------------------------------
# A run that diverges is a failed run, not a row of numbers.

# Loaded by the notebook's kernel in the batch test below: FT hands back a model with NaN weights,
# as a method whose loss overflowed would.
NAN_HOOK = textwrap.dedent('''
    import os
    if os.environ.get("FAULT_NAN_FT"):
        import advunlearn.methods.ft as _ft
        _orig = _ft.run
        def run(exp, **kw):
            model, info = _orig(exp, **kw)
            import torch
            with torch.no_grad():
                model.fc.weight.fill_(float("nan"))
            return model, info
        _ft.run = run
''')


def _nan_ft(monkeypatch):
    import torch

    import advunlearn.methods.ft as ft

    orig = ft.run

    def run(exp, **kw):  # FT as registered, its weights then made non-finite
        model, info = orig(exp, **kw)
        with torch.no_grad():
            model.fc.weight.fill_(float("inf"))
        return model, info

    monkeypatch.setattr(ft, "run", run)


def test_diverged_method_fails_the_run_command(tmp_path, monkeypatch, capsys):
    import json

    from advunlearn import cli

    _nan_ft(monkeypatch)
    out = tmp_path / "recs.json"
    rc = cli.main(["run", "--profile", "tiny", "--methods", "ft", "--results", str(tmp_path / "r"), "--out", str(out),
                   "--no-progress"])
    o, err = capsys.readouterr()
    assert rc == 1, o + err
    assert "error: the run failed: a method diverged (ft: diverged: non-finite weights in fc.weight)" in err, err
    assert "| ft (FAILED: diverged) |" in o and "Traceback" not in err
    (rec,) = json.loads(out.read_text())
    assert rec["diverged"] is True and rec["failed"] == "diverged: non-finite weights in fc.weight"
    # Asked again, the stored result is the same failure, not a success.
    assert cli.main(["run", "--profile", "tiny", "--methods", "ft", "--results", str(tmp_path / "r"),
                     "--out", str(out), "--no-progress"]) == 1


def test_report_shows_failed_runs_as_failed(tmp_path):
    import json

    from advunlearn.report import build_report

    base = {"dataset": "digits", "scheme": "random", "sparsity": 0.0, "UA": 1.0, "RA": 99.0, "TA": 97.0,
            "MIA_efficacy": 5.0, "run_time_s": 1.0}
    recs = [{**base, "method": m, "seed": s} for m in ("retrain", "ft") for s in (0, 1)]
    recs.append({**base, "method": "ga", "seed": 0, "UA": 100.0, "RA": 0.0, "TA": 0.0, "MIA_efficacy": float("nan"),
                 "diverged": True, "failed": "diverged: non-finite weights in fc.weight"})
    recs.append({**base, "method": "ga", "seed": 1, "UA": 3.0})
    recs.append({**base, "method": "iu", "seed": 0, "MIA_efficacy": float("nan"), "diverged": True})  # older record
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "result.json").write_text(json.dumps(recs))
    paths = build_report(tmp_path / "runs", tmp_path / "rep")
    md = paths["table1.md"].read_text()
    ga = next(l for l in md.splitlines() if l.startswith("| GA"))
    assert ga.startswith("| GA (1 failed) | 3.00 |"), ga  # seed 1 alone in the numbers
    iu = next(l for l in md.splitlines() if l.startswith("| IU"))
    assert iu.startswith("| IU (1 failed) | failed | failed |"), iu
    assert "Failed runs, left out of the numbers: GA Dense seed 0: diverged: non-finite weights in fc.weight" in md
    failed = paths["failed.md"].read_text()
    assert "GA Dense seed 0: diverged: non-finite weights in fc.weight" in failed and "IU Dense seed 0" in failed
    assert "Failed runs" in paths["report.html"].read_text()


@pytest.mark.slow
def test_diverged_run_fails_the_batch_and_shows_in_its_report(tmp_path):
    import json

    cfg = tmp_path / "b.yaml"
    cfg.write_text(CONFIG)
    res = tmp_path / "r"
    env = _hooked_env(tmp_path, NAN_HOOK, ADVUNLEARN_THREADS="1", FAULT_NAN_FT="1")
    r = subprocess.run([sys.executable, "-m", "advunlearn.cli", "batch", str(cfg), "--results", str(res)], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr
    (st,) = [json.loads(p.read_text()) for p in res.glob("runs/*/status.json")]
    assert st["state"] == "failed" and "DivergedError" in st["error"] and "ft: diverged: non-finite weights" in st["error"]
    assert "0 done, 1 failed" in r.stdout
    r = subprocess.run([sys.executable, "-m", "advunlearn.cli", "report", str(res / "runs"), "--out", str(tmp_path / "rep")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "| FT (1 failed) | failed |" in (tmp_path / "rep" / "table1.md").read_text()
