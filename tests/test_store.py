import json
import os
import shutil

import pytest
import torch

from advunlearn import cli
from advunlearn.experiments.experiment import Experiment
from advunlearn.core.models import build_model
from advunlearn.core.prune import sparsity_of
from advunlearn.core.store import CheckpointError, Store, StoreError, atomic_write_json, load_model, save_model


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    atomic_write_json(tmp_path / "a.json", {"x": 2})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 2}
    assert os.listdir(tmp_path) == ["a.json"]


def test_cached_computes_once_and_ignores_unfinished(tmp_path):
    st = Store(tmp_path)
    calls = []

    def compute(d):
        calls.append(d)
        (d / "v.txt").write_text("7")
        return 7

    load = lambda d: int((d / "v.txt").read_text())  # noqa: E731
    assert st.cached("k", {"a": 1}, compute, load) == (7, False)
    assert st.cached("k", {"a": 1}, compute, load) == (7, True)
    assert len(calls) == 1
    # a different config is a different artifact
    st.cached("k", {"a": 2}, compute, load)
    assert len(calls) == 2
    # a folder without the marker (a crash mid-write) is recomputed, never loaded
    d = st.path("k", {"a": 3})
    d.mkdir(parents=True)
    (d / "v.txt").write_text("garbage")
    assert st.cached("k", {"a": 3}, compute, load) == (7, False)


def test_checkpoint_roundtrip_and_errors(tmp_path):
    m = build_model("mlp", 10, 1, 8)
    save_model(tmp_path / "m.safetensors", m, {"arch": "mlp", "dataset": "digits"})
    m2 = build_model("mlp", 10, 1, 8)
    load_model(tmp_path / "m.safetensors", m2, expect={"arch": "mlp", "dataset": "digits"})
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
    with pytest.raises(CheckpointError, match="dataset='digits'.*'cifar10' was expected"):
        load_model(tmp_path / "m.safetensors", m2, expect={"dataset": "cifar10"})
    with pytest.raises(CheckpointError, match="another architecture"):
        load_model(tmp_path / "m.safetensors", build_model("cnn", 10, 1, 8))
    blob = (tmp_path / "m.safetensors").read_bytes()
    for name in ("t", "g"):  # each with the checksum file of the good one
        shutil.copy(tmp_path / "m.json", tmp_path / f"{name}.json")
    (tmp_path / "t.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model(tmp_path / "t.safetensors", m2)
    (tmp_path / "g.safetensors").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(tmp_path / "g.safetensors", m2)


def test_read_only_results_folder_is_a_clear_error(tmp_path, monkeypatch):
    import errno

    import advunlearn.core.store as s

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.geteuid() == 0:  # root ignores file permissions: the OS's answer to a non-root user, simulated
        def denied(*a, **k):
            raise PermissionError(errno.EACCES, "Permission denied", str(ro))

        monkeypatch.setattr(s.tempfile, "mkstemp", denied)
    try:
        with pytest.raises(StoreError, match="not writable"):
            atomic_write_json(ro / "x.json", {})
        assert not (ro / "x.json").exists()
    finally:
        ro.chmod(0o700)


def test_write_error_messages(tmp_path, monkeypatch):
    import errno

    import advunlearn.core.store as s

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(s.tempfile, "mkstemp", full)
    with pytest.raises(StoreError, match="disk is full"):
        atomic_write_json(tmp_path / "x.json", {})
    assert not (tmp_path / "x.json").exists()


def test_experiment_reuses_pretrained_model(tmp_path):
    e1 = Experiment(dataset="digits", profile="tiny", results=tmp_path, device="cpu", progress=False)
    m1, meta1 = e1.original()
    files = sorted(p.name for p in (tmp_path / "pretrain").iterdir())
    e2 = Experiment(dataset="digits", profile="tiny", results=tmp_path, device="cpu", progress=False)
    m2, meta2 = e2.original()
    assert meta1 == meta2
    assert sorted(p.name for p in (tmp_path / "pretrain").iterdir()) == files
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))


def test_corrupt_stored_checkpoint_is_not_reused(tmp_path):
    e = Experiment(dataset="digits", profile="tiny", results=tmp_path, device="cpu", progress=False)
    e.original()
    (ck,) = (tmp_path / "pretrain").glob("*/model.safetensors")
    ck.write_bytes(ck.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="checksum.*delete its folder"):
        Experiment(dataset="digits", profile="tiny", results=tmp_path, device="cpu", progress=False).original()


def test_sparse_original_and_retrain(tmp_path):
    e = Experiment(dataset="digits", profile="tiny", sparsity=0.95, scheme="class", forget_class=3,
                   results=tmp_path, device="cpu", progress=False)
    m, _ = e.original()
    assert sparsity_of(m) == pytest.approx(0.95, abs=1e-4)
    acc = e.accuracies(m)
    assert acc["train"] > 90 and acc["test"] > 85
    r, meta = e.retrain()
    assert sparsity_of(r) >= 0.95 - 1e-4
    # same mask as the original model
    for (n, a), (_, b) in zip(m.named_parameters(), r.named_parameters()):
        if n.endswith("weight") and a.dim() > 1 and not n.startswith("fc"):
            assert torch.equal(a == 0, b == 0)
    assert e.accuracies(r)["forget"] < 5  # never saw class 3


def test_cli_pretrain_prints_accuracies(tmp_path, capsys):
    rc = cli.main(["pretrain", "--dataset", "digits", "--profile", "tiny", "--results", str(tmp_path),
                   "--no-progress", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    data = json.loads(out[out.index("{"):])
    assert data["dense"]["train_acc"] >= 99 and data["dense"]["test_acc"] >= 90
    assert data["sparse0.95"]["sparsity"] == pytest.approx(0.95, abs=1e-3)


def test_cli_bad_dataset_exits_nonzero_and_writes_nothing(tmp_path, capsys):
    rc = cli.main(["pretrain", "--dataset", "imagenet", "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "dataset='imagenet'" in err and "fashion-mnist" in err
    assert not (tmp_path / "r").exists()


def test_changed_checkpoint_bytes_fail_the_checksum(tmp_path):
    """Bytes garbled after the header keep a loadable file; the sha256 written beside it catches them."""
    m = build_model("mlp", 10, 1, 8)
    path = tmp_path / "m.safetensors"
    save_model(path, m, {"arch": "mlp"})
    blob = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(blob[:8], "little")
    blob[header:header + 64] = bytes(range(64))
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match=rf"checksum.*delete its folder {tmp_path}"):
        load_model(path, build_model("mlp", 10, 1, 8))


def test_a_missing_json_of_a_done_artifact_names_the_folder_to_delete(tmp_path):
    from advunlearn.core.store import read_json

    with pytest.raises(CheckpointError, match=rf"missing; delete its folder {tmp_path}"):
        read_json(tmp_path / "result.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        read_json(tmp_path / "bad.json")


def test_checkpoint_without_its_checksum_file_is_never_loaded(tmp_path):
    m = build_model("mlp", 10, 1, 8)
    path = tmp_path / "m.safetensors"
    save_model(path, m, {"arch": "mlp"})
    side = tmp_path / "m.json"
    good = side.read_text()
    side.unlink()
    with pytest.raises(CheckpointError, match=rf"lost its metadata file m\.json.*delete its folder {tmp_path} "):
        load_model(path, build_model("mlp", 10, 1, 8))
    side.write_text(good[:40])  # cut short: the message names the JSON file, not the weights
    with pytest.raises(CheckpointError, match=rf"^{side} \(the checksum of m\.safetensors\) is corrupt or truncated"):
        load_model(path, build_model("mlp", 10, 1, 8))
    side.write_text(json.dumps({"arch": "mlp"}))
    with pytest.raises(CheckpointError, match="holds no sha256 checksum"):
        load_model(path, build_model("mlp", 10, 1, 8))


def test_run_refuses_a_stored_model_whose_checksum_file_is_gone(tmp_path, capsys):
    """The sidecar deleted and bytes near the end flipped: the model must not be used."""
    res = tmp_path / "r"
    assert cli.main(["pretrain", "--profile", "tiny", "--sparsity", "0", "--results", str(res), "--no-progress"]) == 0
    (ck,) = (res / "pretrain").glob("*/model.safetensors")
    ck.with_suffix(".json").unlink()
    blob = bytearray(ck.read_bytes())
    for i in range(1, 5):
        blob[-4 * i] ^= 0xFF
    ck.write_bytes(bytes(blob))
    capsys.readouterr()
    rc = cli.main(["run", "--profile", "tiny", "--methods", "ft", "--results", str(res), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "model.json" in err and f"delete its folder {ck.parent} " in err, err
    assert not (res / "result").exists() or not list((res / "result").glob("*/DONE"))  # FT never ran


def test_the_thread_count_is_part_of_every_cpu_artifact_key(tmp_path):
    """One and two threads split float sums differently, so their models differ slightly: each thread
    count gets its own store keys (and its records say which), never the other's artifacts."""
    from advunlearn.experiments.runner import evaluate_method

    before = torch.get_num_threads()
    try:
        exp = Experiment(dataset="digits", profile="tiny", seed=3, results=tmp_path, device="cpu", progress=False)
        torch.set_num_threads(1)
        k1 = exp.data_key()
        m1, _ = exp.original()
        rec1 = evaluate_method(exp, "ft")
        torch.set_num_threads(2)
        k2 = exp.data_key()
        assert k1["threads"] == 1 and k2["threads"] == 2
        assert exp.store.path("pretrain", {**k1}) != exp.store.path("pretrain", {**k2})
        n_before = len(list((tmp_path / "pretrain").iterdir()))
        exp.original()                            # two threads: its own θ0, trained now
        assert len(list((tmp_path / "pretrain").iterdir())) > n_before
        rec2 = evaluate_method(exp, "ft")
        assert rec1["threads"] == 1 and rec2["threads"] == 2
        assert len(list((tmp_path / "result").iterdir())) >= 2
    finally:
        torch.set_num_threads(before)
