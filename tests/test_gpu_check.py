"""The prepared GPU check must run on a bare CUDA machine: torch, torchvision, scikit-learn and
safetensors, none of the notebook packages.  Its ``--smoke`` mode (digits, ResNet-18, one epoch,
five iterations) runs here on the CPU with those packages blocked, so a change that breaks the check
or makes the core import a notebook package fails CI, not the one GPU session that runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_PACKAGES = ("plotly", "ipywidgets", "papermill", "nbformat", "nbclient", "jupyterlab", "IPython",
                     "ipykernel", "pandas", "ray")

SHIM = """
import importlib.abc, importlib.machinery, runpy, sys
BLOCKED = set({blocked!r})
class Hide(importlib.abc.MetaPathFinder):
    # the path finder, blind to the blocked packages: they look uninstalled (find_spec gives None)
    def __init__(self, inner):
        self.inner = inner
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return None
        return self.inner.find_spec(name, path, target)
    def invalidate_caches(self):
        self.inner.invalidate_caches()
sys.meta_path[:] = [Hide(f) if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
sys.argv = [{script!r}] + sys.argv[1:]
runpy.run_path({script!r}, run_name="__main__")
"""


def _shim(script: Path) -> str:
    return SHIM.format(blocked=NOTEBOOK_PACKAGES, script=str(script))


def test_the_core_imports_without_the_notebook_packages():
    code = SHIM.split("sys.argv")[0].format(blocked=NOTEBOOK_PACKAGES) + (
        "import advunlearn.experiments.runner, advunlearn.methods, advunlearn.evaluation.metrics, "
        "advunlearn.evaluation.mia, advunlearn.evaluation.strong, advunlearn.evaluation.fresh, advunlearn.dau.unlearn, "
        "advunlearn.dau.attacker, advunlearn.report, advunlearn.cli\nprint('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_section_without_the_notebook_packages(tmp_path):
    out = tmp_path / "check.json"
    env = {**os.environ, "ADVUNLEARN_PROGRESS": "0"}
    args = ["--smoke", "--device", "cpu", "--no-compile", "--max-train", "300", "--ff-samples", "4",
            "--iu-samples", "4", "--out", str(out)]
    r = subprocess.run([sys.executable, "-c", _shim(ROOT / "benchmarks" / "gpu_check.py"), *args],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert "errors" not in res, res.get("errors")
    assert res["throughput"]["ratio"] > 0 and res["pretrain"]["img_per_s"] > 0
    rows = res["methods"]
    assert set(rows) == {"retrain", "ft", "ga", "ours", "ff", "iu"}
    assert rows["retrain"]["fraction_of_retrain"] == 1.0
    for m, row in rows.items():
        assert row["run_time_s"] > 0 and 0 <= row["UA"] <= 100 and 0 <= row["TA"] <= 100, (m, row)
    assert rows["ours"]["attacker"]["iterations"] == 5


@pytest.mark.slow
def test_gpu_table_smoke_writes_json_and_markdown_without_the_notebook_packages(tmp_path):
    """benchmarks/gpu_table.py (the paper-scale Fashion-MNIST row) in smoke mode: a short method list
    (every method's code path is gpu_check's test above), both schemes, outputs in $OUT."""
    env = {**os.environ, "ADVUNLEARN_PROGRESS": "0", "OUT": str(tmp_path)}
    args = ["--smoke", "--device", "cpu", "--methods", "retrain,ga,ours", "--schemes", "random,class",
            "--budget-minutes", "30", "--method-limit-s", "1500"]
    r = subprocess.run([sys.executable, "-c", _shim(ROOT / "benchmarks" / "gpu_table.py"), *args],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "estimated θ0" in r.stdout
    res = json.loads((tmp_path / "gpu_table.json").read_text())
    assert "errors" not in res, res.get("errors")
    assert res["pretrain"]["epochs"] == 1 and res["estimate"]["fwd_gflop_per_image"] > 0
    for scheme in ("random", "class"):
        rows = res["schemes"][scheme]
        assert set(rows) == {"retrain", "ga", "ours"}
        assert rows["retrain"]["fraction_of_retrain"] == 1.0
        for m, row in rows.items():
            assert row["run_time_s"] > 0 and 0 <= row["UA"] <= 100, (m, row)
    md = (tmp_path / "gpu_table.md").read_text()
    assert "Ours / Retrain" in md and "| ours |" in md
