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

from advunlearn.core.config import ConfigError, TrainConfig, UnlearnConfig
from advunlearn.experiments.profiles import get_profile
from advunlearn.core.data import load_dataset, make_splits
from advunlearn.core.models import build_model
from advunlearn.core.store import CheckpointError, load_model, save_model

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
    (["run", "--methods", ","], "names no method", "ours"),
    (["run", "--forget-class", "3"], "--forget-class applies to --scheme class", "--forget-frac"),
    (["run", "--scheme", "class", "--forget-frac", "0.2"], "--forget-frac applies to --scheme random", "--forget-class"),
    (["pretrain", "--sparsity", "1.5"], "sparsity=1.5", "[0, 1)"),
    (["run", "--seed", "18446744073709551615"], "seed=18446744073709551615", "[0, 2146183938]"),
    (["run", "--seed", str(2**64)], f"seed={2**64}", "[0, 2146183938]"),
    (["pretrain", "--seed", "2146183939"], "seed=2146183939", "[0, 2146183938]"),
    (["run", "--seed", "-1"], "seed=-1", "[0, 2146183938]"),
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


@pytest.mark.parametrize("target, needle", [("missing", "does not exist"), ("file", "is a file, not a folder"),
                                            ("empty", "no result records found")])
def test_cli_report_of_a_wrong_folder(tmp_path, target, needle):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    r = subprocess.run([sys.executable, "-m", "advunlearn.cli", "report", str(tmp_path / target)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "empty" / "report").exists()


@pytest.mark.parametrize("body, needle", [
    (b"\x00\x01\xff\xfe", "not UTF-8"), (b"name: x\nresults: 5\ngrid: {seed: [0]}\n", "results=5"),
    (b"name: ../up\ngrid: {seed: [0]}\n", "name='../up'"), (b"name: [a, b]\ngrid: {seed: [0]}\n", "name=['a', 'b']"),
    (b"", "is empty"), (b"# nothing yet\n", "is empty"), (b"{}\n", "is empty"),
    (b"name: x\n", "names no grid and no params"), (b"name: x\ngrid: {}\nparams:\n", "names no grid and no params")])
def test_batch_config_that_is_not_text_or_has_wrong_types(tmp_path, body, needle):
    from advunlearn.batch import load_config

    cfg = tmp_path / "b.yaml"
    cfg.write_bytes(body)
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace(".", r"\.")):
        load_config(cfg, results=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_run_records_file_names_what_changes_the_records():
    """Two runs with other methods or values never write the same default records file."""
    from types import SimpleNamespace

    from advunlearn.cli import _run_name

    a = SimpleNamespace(dataset="digits", scheme="random", sparsity=0.0, seed=0, profile="tiny", forget_frac=0.1,
                        strong_eval=False)
    names = {_run_name(a, None, None, {}), _run_name(a, None, ["ours"], {}), _run_name(a, None, ["ours"], {"alpha": 9.0}),
             _run_name(SimpleNamespace(**{**vars(a), "strong_eval": True}), None, None, {}),
             _run_name(SimpleNamespace(**{**vars(a), "forget_frac": 0.2}), None, None, {})}
    assert len(names) == 5
    assert _run_name(a, None, None, {}) == "digits_random_s0_seed0_tiny"
    c = SimpleNamespace(**{**vars(a), "scheme": "class"})
    exp = SimpleNamespace(splits=SimpleNamespace(forget_class=3))
    assert _run_name(c, exp, ["ours", "ft"], {"alpha": 9.0}) == "digits_class_s0_seed0_tiny_class3_ours-ft_alpha9"


BATCH_CASES = [
    ("lr: -0.01", "lr=-0.01"), ("forget_frac: 0.0", "forget_frac=0.0"), ("forget_frac: 1", "forget_frac=1"),
    ("dataset: imagenet", "dataset='imagenet'"), ("iterations: 0", "iterations=0"), ("device: tpu", "device='tpu'"),
    ("forget_class: 10", "forget_class=10 is out of range for digits; allowed: 0..9"),
    ("seed: 18446744073709551616", "seed=18446744073709551616 is out of range; allowed: [0, 2146183938]"),
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
    from advunlearn.methods import run_method

    with pytest.raises(ConfigError, match="method='sgd'"):
        run_method(None, "sgd")


def test_checkpoint_of_another_architecture_and_truncated(tmp_path):
    save_model(tmp_path / "cnn.safetensors", build_model("cnn", 10, 1, 8), {"arch": "cnn", "dataset": "digits"})
    mlp = build_model("mlp", 10, 1, 8)
    before = [p.clone() for p in mlp.parameters()]
    with pytest.raises(CheckpointError, match="another architecture"):
        load_model(tmp_path / "cnn.safetensors", mlp)
    blob = (tmp_path / "cnn.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(blob[:-100])
    (tmp_path / "cut.json").write_bytes((tmp_path / "cnn.json").read_bytes())
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(tmp_path / "cut.safetensors", build_model("cnn", 10, 1, 8))
    assert all(torch.equal(a, b) for a, b in zip(before, mlp.parameters()))  # the model is untouched


def test_seed_bound_covers_every_offset_the_code_adds(tmp_path):
    """The largest seed allowed, plus every offset the code adds to a seed, fits every generator; one
    more is refused by the Python API before anything is loaded or written."""
    import re

    import numpy as np
    from sklearn.utils import check_random_state

    from advunlearn.core.config import MAX_SEED, MAX_SEED_OFFSET
    from advunlearn.experiments.experiment import Experiment

    offsets = set()
    for f in (ROOT / "advunlearn").rglob("*.py"):
        for m in re.finditer(r"seed\)?\s*\+\s*([0-9][0-9_]*)", f.read_text()):
            offsets.add(int(m.group(1)))
    assert 10_000 in offsets and max(offsets) == MAX_SEED_OFFSET, sorted(offsets)
    for off in (0, *offsets):
        s = MAX_SEED + off
        torch.Generator().manual_seed(s)
        np.random.default_rng(s)
        np.random.RandomState(s)
        check_random_state(s)
    torch.Generator().manual_seed(MAX_SEED * 1000 + 4)  # strong.py's reference models
    for bad in (MAX_SEED + 1, 2**64 - 1, 2**64, -1):
        with pytest.raises(ConfigError, match=rf"seed={bad} is out of range; allowed: \[0, {MAX_SEED}\]"):
            Experiment(dataset="digits", profile="tiny", seed=bad, results=tmp_path / "r", progress=False)
        with pytest.raises(ConfigError, match=rf"seed={bad} is out of range"):
            make_splits(load_dataset("digits"), seed=bad)
    assert not (tmp_path / "r").exists()


def test_largest_seed_runs(tmp_path):
    from advunlearn import cli
    from advunlearn.core.config import MAX_SEED

    res = tmp_path / "r"
    rc = cli.main(["run", "--profile", "tiny", "--methods", "retrain,ft", "--seed", str(MAX_SEED),
                   "--results", str(res), "--no-progress"])
    assert rc == 0
    assert len(list(res.glob("result/*/DONE"))) == 2


def test_empty_batch_config_runs_nothing(tmp_path, capsys):
    from advunlearn import cli

    cfg = tmp_path / "empty.yaml"
    cfg.write_text("")
    rc = cli.main(["batch", str(cfg), "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and f"batch config {cfg} is empty" in err, err
    assert not (tmp_path / "r").exists()


def test_absurd_iterations_warn_with_the_expected_time_before_any_work(tmp_path, monkeypatch, capsys):
    from advunlearn import cli
    from advunlearn.experiments import runner

    class FirstWork(Exception):
        pass

    def first_work(*a, **k):  # stand in for the first method: stop there
        raise FirstWork

    monkeypatch.setattr(runner, "evaluate_method", first_work)
    res = tmp_path / "r"
    with pytest.raises(FirstWork):
        cli.main(["run", "--profile", "tiny", "--methods", "ours", "--iterations", "1000000000", "--results", str(res),
                  "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert ("advunlearn: warning: iterations=1,000,000,000 of Algorithm 1 will take at least 463.0 days "
            "(at 40 ms per iteration, the least measured for the mlp model on a CPU)") in err, err
    assert not res.exists()  # nothing was computed before the warning
    # A size the profile could mean stays quiet.
    with pytest.raises(FirstWork):
        cli.main(["run", "--profile", "tiny", "--methods", "ours", "--iterations", "500", "--results", str(res),
                  "--no-progress", "--device", "cpu"])
    assert "warning" not in capsys.readouterr().err

    cfg = tmp_path / "b.yaml"
    cfg.write_text("name: big\ngrid: {seed: [0, 1]}\nparams: {dataset: digits, profile: tiny, methods: [ours], "
                   "iterations: 1000000000, device: cpu}\n")
    assert cli.main(["batch", str(cfg), "--results", str(tmp_path / "b"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("warning: iterations=1,000,000,000 of Algorithm 1 will take at least 463.0 days") == 1, out


def test_out_that_is_a_folder_fails_before_any_work_and_says_so(tmp_path, capsys):
    from advunlearn import cli
    from advunlearn.core.store import StoreError, atomic_write_json

    (tmp_path / "folder").mkdir()
    rc = cli.main(["run", "--profile", "tiny", "--methods", "ft", "--out", str(tmp_path / "folder"),
                   "--results", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and f"--out {tmp_path / 'folder'} is a folder; give the path of the JSON file" in err, err
    assert "Free space" not in err and not (tmp_path / "r").exists()
    # The store's own writes say the same: a folder in the way is not a full disk.
    with pytest.raises(StoreError) as e:
        atomic_write_json(tmp_path / "folder", [])
    assert "it is a folder" in str(e.value) and "Free space" not in str(e.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="a part of its path is a file, not a folder"):
        atomic_write_json(tmp_path / "file" / "x.json", [])
