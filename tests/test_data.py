import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from advunlearn.core.config import ConfigError
from advunlearn.core.data import DEBIAN_FASHION, DatasetNotFoundError, augment_batch, load_dataset, make_splits


def test_digits_tensor_layout(digits):
    assert digits.x.shape == (1797, 1, 8, 8)
    assert digits.x.dtype == torch.float32
    # a fixed 20% of each class is the test set
    counts = torch.bincount(digits.y, minlength=10)
    assert digits.n_pool == 1797 - sum(round(0.2 * int(c)) for c in counts)
    assert torch.equal(torch.bincount(digits.y[digits.n_pool:]), torch.tensor([round(0.2 * int(c)) for c in counts]))
    assert digits.num_classes == 10
    # normalised: overall mean ~0, std ~1
    assert abs(float(digits.x.mean())) < 0.05
    assert abs(float(digits.x.std()) - 1) < 0.05


def test_random_splits_sizes_and_disjoint(digits):
    s = make_splits(digits, "random", forget_frac=0.1, seed=3)
    sets = {k: set(getattr(s, k).tolist()) for k in ("train", "forget", "retain", "val", "test")}
    assert sets["forget"] | sets["retain"] == sets["train"]
    assert not sets["forget"] & sets["retain"]
    assert not sets["val"] & sets["train"]
    assert not sets["test"] & (sets["train"] | sets["val"])
    assert len(s.val) == round(0.1 * digits.n_pool)
    assert len(s.train) + len(s.val) == digits.n_pool
    assert len(s.forget) == round(0.1 * len(s.train))
    assert all(i >= digits.n_pool for i in sets["test"])


def test_class_split_is_the_class(digits):
    s = make_splits(digits, "class", forget_class=4, seed=1)
    y = digits.y
    assert set(s.forget.tolist()) == {i for i in s.train.tolist() if y[i] == 4}
    assert (y[s.retain] != 4).all()
    assert (y[s.test] != 4).all() and (y[s.test_forget] == 4).all()
    assert len(s.test) + len(s.test_forget) == len(s.test_all)


def test_splits_deterministic_under_seed(digits):
    a, b, c = (make_splits(digits, "random", seed=s) for s in (7, 7, 8))
    for k in ("train", "forget", "retain", "val"):
        assert torch.equal(getattr(a, k), getattr(b, k))
    assert not torch.equal(a.forget, c.forget)


def test_train_is_the_same_for_both_schemes(digits):
    # the split used for unlearning is the one the model was trained on, whatever the scheme
    r = make_splits(digits, "random", seed=5)
    c = make_splits(digits, "class", forget_class=2, seed=5)
    assert torch.equal(r.train, c.train) and torch.equal(r.val, c.val)


@pytest.mark.parametrize("kw, field", [
    (dict(forget_frac=0.0), "forget_frac"), (dict(forget_frac=1.0), "forget_frac"),
    (dict(forget_frac=-0.2), "forget_frac"), (dict(val_frac=1.5), "val_frac"),
    (dict(scheme="class", forget_class=10), "forget_class"), (dict(scheme="class", forget_class=-1), "forget_class"),
    (dict(scheme="sideways"), "scheme"), (dict(forget_frac=1e-5), "forget_frac"),
])
def test_bad_split_arguments(digits, kw, field):
    with pytest.raises(ConfigError, match=field):
        make_splits(digits, **kw)


def test_unknown_dataset():
    with pytest.raises(ConfigError, match="dataset='mnist3d'.*digits"):
        load_dataset("mnist3d")


def test_missing_dataset_offline_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVUNLEARN_DATA", str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("cifar10", root=tmp_path / "nothing", download=False)
    msg = str(e.value)
    assert "cifar10" in msg and "root=" in msg and "cifar-10-batches-py" in msg


def test_missing_fashion_names_debian_package(tmp_path, monkeypatch):
    import advunlearn.core.data as d

    monkeypatch.setattr(d, "DEBIAN_FASHION", tmp_path / "absent")
    monkeypatch.setenv("ADVUNLEARN_DATA", str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError, match="dataset-fashion-mnist"):
        load_dataset("fashion-mnist", download=False)


def _write_cifar10(root: Path, n_per_batch=20, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    expected = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n_per_batch).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels}, f)
        expected.append((data, labels))
    return expected


def test_cifar10_from_own_files(tmp_path):
    expected = _write_cifar10(tmp_path)
    ds = load_dataset("cifar10", root=tmp_path, download=False)
    assert ds.x.shape == (120, 3, 32, 32) and ds.n_pool == 100 and ds.num_classes == 10
    data0, labels0 = expected[0]
    # undo the normalisation and compare pixels of the first image
    from advunlearn.core.data import NORMALISATION
    mean = torch.tensor(NORMALISATION["cifar10"][0]).view(3, 1, 1)
    std = torch.tensor(NORMALISATION["cifar10"][1]).view(3, 1, 1)
    px = ((ds.x[0] * std + mean) * 255).round().to(torch.uint8)
    assert torch.equal(px, torch.from_numpy(data0[0].reshape(3, 32, 32)))
    assert ds.y[:20].tolist() == labels0
    assert ds.y[100:].tolist() == expected[-1][1]


def test_cifar100_from_own_files(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, n in (("train", 30), ("test", 10)):
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"fine_labels": rng.integers(0, 100, n).tolist(),
                         b"coarse_labels": rng.integers(0, 20, n).tolist()}, f)
    ds = load_dataset("cifar100", root=tmp_path, download=False)
    assert ds.x.shape == (40, 3, 32, 32) and ds.num_classes == 100 and ds.n_pool == 30


def test_truncated_cifar_file_is_an_error(tmp_path):
    _write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_3"):
        load_dataset("cifar10", root=tmp_path, download=False)


@pytest.mark.skipif(not DEBIAN_FASHION.exists(), reason="needs the Debian package dataset-fashion-mnist (.ci/run installs it)")
def test_fashion_mnist_from_debian_files():
    ds = load_dataset("fashion-mnist", download=False)
    assert ds.x.shape == (70000, 1, 28, 28) and ds.n_pool == 60000
    assert torch.bincount(ds.y[:60000]).tolist() == [6000] * 10
    assert torch.bincount(ds.y[60000:]).tolist() == [1000] * 10


def _write_fashion(folder: Path, n_train=50, n_test=20):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)

    def idx(path, arr):
        hdr = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
        with gzip.open(path, "wb") as f:
            f.write(hdr + arr.astype(np.uint8).tobytes())

    idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28)))
    idx(folder / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, n_train))
    idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28)))
    idx(folder / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, n_test))


def test_fashion_from_root_folder(tmp_path):
    # IDX files the test writes itself, given through root=
    _write_fashion(tmp_path)
    ds = load_dataset("fashion-mnist", root=tmp_path, download=False)
    assert ds.x.shape == (70, 1, 28, 28) and ds.n_pool == 50


@pytest.mark.parametrize("root", ["empty", "absent"])
def test_a_data_root_without_fashion_is_an_error_not_a_fall_back(tmp_path, monkeypatch, root):
    import advunlearn.core.data as d

    _write_fashion(tmp_path / "debian")  # a default copy that must not be used in its place
    monkeypatch.setattr(d, "DEBIAN_FASHION", tmp_path / "debian")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("fashion-mnist", root=tmp_path / root)
    msg = str(e.value)
    assert f"is not in the data root root='{tmp_path / root}'" in msg, msg
    assert all(f in msg for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                  "t10k-labels-idx1-ubyte")), msg
    assert "leave the data root (--data-root, data_root) out" in msg


def test_a_data_root_without_cifar_names_its_files_and_downloads_nothing(tmp_path, monkeypatch):
    import torchvision

    def no_download(*a, **k):
        raise AssertionError("a download was tried")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", no_download)
    monkeypatch.setenv("ADVUNLEARN_DATA", str(tmp_path / "cache"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("cifar10", root=tmp_path / "empty")
    msg = str(e.value)
    assert f"the folder {tmp_path / 'empty' / 'cifar-10-batches-py'} holding data_batch_1..5 and test_batch" in msg
    assert "download" not in msg.split("leave the data root")[0], msg  # no download into the root was promised
    assert f"a torchvision download (needs network access) into {tmp_path / 'cache'}" in msg
    _write_cifar10(tmp_path / "some")
    (tmp_path / "some" / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"is not in the data root .*\(missing file .*test_batch\)"):
        load_dataset("cifar10", root=tmp_path / "some")


def test_cli_data_root_without_the_dataset_fails_before_any_work(tmp_path, capsys):
    from advunlearn import cli

    (tmp_path / "empty").mkdir()
    rc = cli.main(["run", "--dataset", "fashion-mnist", "--profile", "tiny", "--data-root", str(tmp_path / "empty"),
                   "--results", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "is not in the data root" in err and "t10k-labels-idx1-ubyte" in err, err
    assert not (tmp_path / "r").exists()


def test_augmentation_is_a_shifted_crop():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6) + 1
    g = torch.Generator().manual_seed(0)
    out = augment_batch(x, pad=2, flip=True, generator=g)
    assert out.shape == x.shape
    for i in range(2):
        # every output pixel is either padding (0) or a pixel of the same image
        vals = set(out[i].flatten().tolist()) - {0.0}
        assert vals <= set(x[i].flatten().tolist())
        assert len(vals) >= 16  # at least a 4x4 window of the original survives
    assert not torch.equal(augment_batch(x, 0, False, g), x * 0)
    assert torch.equal(augment_batch(x, 0, False, g), x)
