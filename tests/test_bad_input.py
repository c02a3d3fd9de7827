"""Bad input, all the way through: the CLI, the batch YAML, notebook parameters and public functions.

Each case must fail with a message naming the field (and the allowed values), a non-zero exit
status where there is one, and nothing written.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from advunlearn.config import ConfigError, TrainConfig, UnlearnConfig, get_profile
from advunlearn.data import load_dataset, make_splits
from advunlearn.models import build_model
from advunlearn.store import CheckpointError, load_model, save_model

ROOT = Path(__file__).resolve().parents[1]

CLI_CASES = [
    (["run", "--dataset", "mnist"], "dataset='mnist'", "digits"),
    (["run", "--profile", "huge"], "profile='huge'", "tiny"),
    (["run", "--scheme", "class", "--forget-class", "10"], "forget_class=10", "0..9"),
    (["run", "--forget-frac", "0"], "forget_frac=0.0", "(0, 1)"),
    (["run", "--forget-frac", "1.5"], "forget_frac=1.5", "(0, 1)"),
    (["run", "--methods", "retrain,sgd"], "method='sgd'", "ours"),
    (["run", "--alpha", "-0.5", "--methods", "ours"], "alpha=-0.5", "[0, inf]"),
    (["run", "--beta", "-1", "--methods", "ours"], "beta=-1.0", "[0, inf]"),
    (["run", "--lr", "-0.1", "--methods", "ours"], "lr=-0.1", "(0, inf]"),
    (["run", "--sparsity", "1.0"], "sparsity=1.0", "[0, 1)"),
    (["pretrain", "--sparsity", "-0.1"], "sparsity=-0.1", "[0, 1)"),
    (["run", "--device", "tpu"], "device", "cpu"),
]


@pytest.mark.parametrize("args, field, allowed", CLI_CASES, ids=[" ".join(c[0]) for c in CLI_CASES])
def test_cli_bad_values(tmp_path, args, field, allowed):
    res = tmp_path / "results"
    r = subprocess.run([sys.executable, "-m", "advunlearn.cli", *args, "--results", str(res), "--no-progress"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0
    assert field in r.stderr and allowed in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not res.exists()


def test_cli_config_typo_in_batch_key(tmp_path):
    cfg = tmp_path / "b.yaml"
    cfg.write_text("name: x\nnotebok: 04_evaluation\ngrid: {seed: [0]}\n")
    r = subprocess.run([sys.executable, "-m", "advunlearn.cli", "batch", str(cfg), "--results", str(tmp_path / "r")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "unknown key(s) ['notebok']" in r.stderr and "notebook" in r.stderr
    assert not (tmp_path / "r").exists()


BATCH_CASES = [
    ("lr: -0.01", "lr=-0.01"), ("forget_frac: 0.0", "forget_frac=0.0"), ("forget_frac: 1", "forget_frac=1"),
    ("dataset: imagenet", "dataset='imagenet'"), ("iterations: 0", "iterations=0"), ("device: tpu", "device='tpu'"),
]


@pytest.mark.parametrize("line, needle", BATCH_CASES)
def test_batch_yaml_bad_values(tmp_path, line, needle):
    from advunlearn.batch import run_batch

    key = line.split(":")[0]
    params = {"dataset": "digits", "profile": "tiny", "seed": 0}
    params[key] = None
    body = "\n".join(f"  {k}: {v}" for k, v in params.items() if k != key)
    cfg = tmp_path / "b.yaml"
    cfg.write_text(f"name: x\nnotebook: 04_evaluation\ngrid:\n  scheme: [random]\nparams:\n{body}\n  {line}\n")
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        run_batch(cfg, results=tmp_path / "r", log=lambda *_: None)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
@pytest.mark.parametrize("params, needle", [
    (["-p", "dataset", "mnist"], "dataset='mnist'"),
    (["-p", "alpha", "-1.0"], "alpha=-1.0"),
    (["-p", "scheme", "class", "-p", "forget_class", "11"], "forget_class=11"),
])
def test_notebook_parameters_through_papermill(tmp_path, params, needle):
    store = tmp_path / "store"
    out = tmp_path / "out.ipynb"
    res = tmp_path / "result.json"
    env = {**os.environ, "ADVUNLEARN_FAST": "1"}
    env.pop("ADVUNLEARN_STORE", None)
    r = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "04_evaluation.ipynb"), str(out),
                        "-p", "results", str(store), "-p", "result_path", str(res), *params, "--cwd",
                        str(ROOT / "notebooks"), "--log-level", "ERROR"], capture_output=True, text=True, env=env)
    assert r.returncode != 0
    assert "ConfigError" in r.stdout + r.stderr and needle in r.stdout + r.stderr
    assert not store.exists() and not res.exists()


def test_public_functions(digits, tmp_path):
    cases = [
        (lambda: load_dataset("svhn"), "dataset='svhn'"),
        (lambda: make_splits(digits, "class", forget_class=42), "forget_class=42"),
        (lambda: make_splits(digits, forget_frac=0.0), "forget_frac=0.0"),
        (lambda: make_splits(digits, forget_frac=1.0), "forget_frac=1.0"),
        (lambda: build_model("vit", 10, 1, 8), "model='vit'"),
        (lambda: UnlearnConfig(alpha=-0.1), "alpha=-0.1"),
        (lambda: UnlearnConfig(beta=-1e-3), "beta=-0.001"),
        (lambda: UnlearnConfig(lr=-1.0), "lr=-1.0"),
        (lambda: TrainConfig(lr=0), "lr=0"),
        (lambda: get_profile("cpu", "digits", pretrain_epochs=3), "unknown key"),
    ]
    for fn, needle in cases:
        with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
            fn()
    from advunlearn.baselines import run_baseline

    with pytest.raises(ConfigError, match="method='sgd'"):
        run_baseline("sgd", None)


def test_checkpoint_of_another_architecture_and_truncated(tmp_path):
    save_model(tmp_path / "cnn.safetensors", build_model("cnn", 10, 1, 8), {"arch": "cnn", "dataset": "digits"})
    mlp = build_model("mlp", 10, 1, 8)
    before = [p.clone() for p in mlp.parameters()]
    with pytest.raises(CheckpointError, match="another architecture"):
        load_model(tmp_path / "cnn.safetensors", mlp)
    blob = (tmp_path / "cnn.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(blob[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(tmp_path / "cut.safetensors", build_model("cnn", 10, 1, 8))
    assert all(torch.equal(a, b) for a, b in zip(before, mlp.parameters()))  # the model is untouched
