"""Faults: SIGKILL while a checkpoint is being written, then resume; results equal an uninterrupted run."""

import csv
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_sigkill_while_writing_a_checkpoint(tmp_path):
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(HOOK)
    cfg = tmp_path / "b.yaml"
    cfg.write_text(CONFIG)
    res = tmp_path / "r"
    flag = tmp_path / "pgid"
    env = {**os.environ, "ADVUNLEARN_FAST": "1", "PYTHONPATH": f"{hook_dir}{os.pathsep}{ROOT}",
           "FAULT_PGID_FILE": str(flag)}
    env.pop("ADVUNLEARN_STORE", None)
    cmd = [sys.executable, "-m", "advunlearn.cli", "batch", str(cfg), "--results", str(res)]
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
