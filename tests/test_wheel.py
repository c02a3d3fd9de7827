"""The course installs: a wheel built from the repo carries the notebooks and configs, and an installed
advunlearn (away from the source tree) copies them out, runs a notebook and a one-run batch.

The fresh venv gets the wheel alone (``--no-deps``); torch and the notebook stack come from this
interpreter's site-packages through a path file added after the install, so nothing is downloaded
and this environment's own advunlearn (editable or not) is never on the new venv's path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    # --no-build-isolation: the build uses this environment's setuptools (no index on the CI machines)
    _run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(dist)],
         cwd=tmp)
    (whl,) = dist.glob("advunlearn-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(whl)], cwd=tmp)
    # now (not before the install: pip would see this environment's advunlearn) this interpreter's packages
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "zz_parent_site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ADVUNLEARN_STORE", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", ADVUNLEARN_FAST="1", ADVUNLEARN_PROGRESS="0")
    work = tmp / "work"
    work.mkdir()
    return {"whl": whl, "venv": venv, "py": py, "env": env, "work": work}


def test_the_wheel_holds_the_course(installed):
    names = zipfile.ZipFile(installed["whl"]).namelist()
    nbs = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    sols = sorted(p.name for p in (ROOT / "notebooks" / "solutions").glob("*.ipynb"))
    cfgs = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
    for n in nbs:
        assert f"advunlearn/course/notebooks/{n}" in names
    for n in sols:
        assert f"advunlearn/course/notebooks/solutions/{n}" in names
    for n in cfgs:
        assert f"advunlearn/course/configs/{n}" in names


def test_installed_package_copies_and_runs_the_course(installed):
    py, env, work = installed["py"], installed["env"], installed["work"]
    # the package imported in the new venv is the wheel's, not the source tree
    where = _run([str(py), "-c", "import advunlearn, advunlearn.course as c; print(advunlearn.__file__); print(c.notebook_dir())"],
                 env=env, cwd=work).stdout.split()
    assert all(str(installed["venv"]) in w for w in where), where
    argv = json.loads(_run([str(py), "-c", "import json, jupyter_client.kernelspec as k; "
                                           "print(json.dumps(k.KernelSpecManager().get_kernel_spec('python3').argv))"],
                           env=env, cwd=work).stdout)
    assert argv[0] in ("python", "python3", str(py)) or argv[0].startswith(str(installed["venv"])), argv

    course = work / "course"
    out = _run([str(installed["venv"] / "bin" / "advunlearn"), "notebooks", str(course)], env=env, cwd=work).stdout
    assert "copied" in out
    assert (course / "notebooks" / "00_start_here.ipynb").is_file()
    assert (course / "notebooks" / "solutions" / "03_adversarial_unlearning_solutions.ipynb").is_file()
    assert (course / "configs" / "demo.yaml").is_file()

    # one notebook, in fast mode, from the copied folder (its store: course/results/store)
    nbdir = course / "notebooks"
    _run([str(py), "-m", "papermill", str(nbdir / "01_pretraining.ipynb"), str(work / "01_out.ipynb"),
          "--cwd", str(nbdir), "--log-level", "ERROR"], env=env, cwd=work)
    assert (course / "results" / "store" / "pretrain").is_dir()

    # a one-run batch: the batch finds 01_pretraining inside the installed package
    cfg = work / "one.yaml"
    cfg.write_text("name: one\nnotebook: 01_pretraining\ntimeout: 900\ngrid:\n  seed: [0]\n"
                   "report: false\nparams:\n  dataset: digits\n  profile: tiny\n")
    _run([str(installed["venv"] / "bin" / "advunlearn"), "batch", str(cfg), "--results", str(work / "batch")],
         env=env, cwd=work)
    (status,) = (work / "batch" / "runs").glob("*/status.json")
    assert json.loads(status.read_text())["state"] == "done"
