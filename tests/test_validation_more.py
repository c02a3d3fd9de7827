"""More bad input: the attacker's and the profile's settings, milestones, integer fields given as floats
or numpy scalars, and corrupt dataset files.  Each case is a clear exception naming the problem."""

import gzip
import pickle
import struct

import numpy as np
import pytest

from advunlearn.core.config import DATASETS, PROFILE_NAMES, AttackerConfig, ConfigError, TrainConfig, UnlearnConfig
from advunlearn.experiments.profiles import Profile, get_profile, profile_to_dict
from advunlearn.core.data import DatasetNotFoundError, load_dataset, make_splits
from test_data import _write_cifar10


def _match(s: str) -> str:
    return s.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")


# ---- 1. AttackerConfig ------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, needle", [
    (dict(d_model=0), "d_model=0 is out of range; allowed: [1, inf]"),
    (dict(d_model=64.5), "d_model=64.5 must be an integer"),
    (dict(d_model="64"), "d_model='64' must be a number"),
    (dict(ff=0), "ff=0 is out of range; allowed: [1, inf]"),
    (dict(ff=None), "ff=None must be a number"),
    (dict(momentum=1.0), "momentum=1.0 is out of range; allowed: [0, 1)"),
    (dict(momentum=-0.1), "momentum=-0.1 is out of range"),
    (dict(weight_decay=-1e-4), "weight_decay=-0.0001 is out of range; allowed: [0, inf]"),
    (dict(weight_decay=float("nan")), "weight_decay=nan must be finite"),
    (dict(d_model=30, heads=4), "d_model=30 must be divisible by heads=4"),
])
def test_attacker_config_bad_values(kw, needle):
    with pytest.raises(ConfigError, match=_match(needle)):
        AttackerConfig(**kw)


def test_attacker_config_integral_floats_become_ints():
    c = AttackerConfig(d_model=32.0, ff=np.int64(64), heads=np.int32(4))
    assert (c.d_model, c.ff, c.heads) == (32, 64, 4)
    assert type(c.d_model) is int and type(c.ff) is int and type(c.heads) is int


# ---- 2. Profile -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, needle", [
    (dict(rewind_epoch=-1), "rewind_epoch=-1 is out of range; allowed: [0, inf]"),
    (dict(rewind_epoch=1.5), "rewind_epoch=1.5 must be an integer"),
    (dict(rewind_epoch=None), "rewind_epoch=None must be a number"),
    (dict(max_train=1), "max_train=1 is out of range; allowed: [2, inf]"),
    (dict(max_train=100.5), "max_train=100.5 must be an integer"),
    (dict(max_train="all"), "max_train='all' must be a number"),
    (dict(model="vit"), "model='vit' is not allowed"),
])
def test_profile_bad_values(kw, needle):
    with pytest.raises(ConfigError, match=_match(needle)):
        get_profile("tiny", "digits", **kw)
    with pytest.raises(ConfigError, match=_match(needle)):
        Profile(**kw)


def test_profile_rewind_zero_and_max_train_none_are_valid():
    p = get_profile("cpu", "digits", rewind_epoch=0, max_train=None)
    assert p.rewind_epoch == 0 and p.max_train is None
    p = get_profile("cpu", "digits", rewind_epoch=2.0, max_train=np.int64(500))
    assert type(p.rewind_epoch) is int and type(p.max_train) is int and p.max_train == 500


def test_profile_nested_dicts_become_configs():
    p = get_profile("tiny", "digits", pretrain={"epochs": 2, "lr": 0.05}, ga={"epochs": 1},
                    attacker={"iterations": 10, "d_model": 32},
                    unlearn={"random-dense": {"lr": 0.02, "iterations": 5}, "class": UnlearnConfig(lr=0.03)})
    assert isinstance(p.pretrain, TrainConfig) and p.pretrain.epochs == 2
    assert isinstance(p.ga, TrainConfig) and p.ga.epochs == 1
    assert isinstance(p.attacker, AttackerConfig) and p.attacker.d_model == 32
    assert p.unlearn_for("random", 0.0) == UnlearnConfig(lr=0.02, iterations=5)
    assert p.unlearn_for("class", 0.5) == UnlearnConfig(lr=0.03)
    # the same profile written out and read back (JSON-like plain dicts) is the same profile
    d = profile_to_dict(p)
    assert Profile.from_dict(d) == p and profile_to_dict(Profile.from_dict(d)) == d


@pytest.mark.parametrize("kw, needle", [
    (dict(pretrain={"epochs": 0}), "epochs=0 is out of range"),
    (dict(pretrain={"epoch": 3}), "unknown key(s) ['epoch'] in pretrain; allowed keys: ['epochs'"),
    (dict(finetune=5), "finetune=5 must be a TrainConfig or a mapping of its fields"),
    (dict(attacker={"ff": 0}), "ff=0 is out of range"),
    (dict(attacker=TrainConfig()), "attacker=TrainConfig("),
    (dict(unlearn={"random-dense": {"alpha": -1}}), "alpha=-1 is out of range"),
    (dict(unlearn={"random-dense": {"alpah": 1}}), "unknown key(s) ['alpah'] in unlearn['random-dense']"),
    (dict(unlearn={"dense": {}}), "unknown key(s) ['dense'] in unlearn; allowed keys: ['random-dense', "
                                  "'random-sparse', 'class-dense', 'class-sparse', 'random', 'class']"),
    (dict(unlearn=[("random", {})]), "must be a mapping of keys"),
    (dict(unlearn={"random": 0.1}), "unlearn['random']=0.1 must be a UnlearnConfig or a mapping"),
])
def test_profile_bad_nested_values(kw, needle):
    with pytest.raises(ConfigError, match=_match(needle)):
        get_profile("tiny", "digits", **kw)


def test_profile_from_dict_refuses_a_non_mapping():
    with pytest.raises(ConfigError, match="must be a mapping of field names"):
        TrainConfig.from_dict([("epochs", 3)])


def test_every_builtin_profile_still_resolves():
    for name in PROFILE_NAMES:
        for ds in DATASETS:
            p = get_profile(name, ds)
            assert all(isinstance(v, UnlearnConfig) for v in p.unlearn.values())


# ---- 3. TrainConfig.milestones ----------------------------------------------------------------------

@pytest.mark.parametrize("ms, needle", [
    (None, "milestones=None must be a list of fractions of training in (0, 1)"),
    (0.5, "milestones=0.5 must be a list"),
    ("0.5", "milestones='0.5' must be a list"),
    ((0.5, 1.0), "milestones[1]=1.0 is out of range; allowed: (0, 1)"),
    ((0.0,), "milestones[0]=0.0 is out of range"),
    ([91, 136], "milestones[0]=91 is out of range; allowed: (0, 1)"),
    ([0.5, "x"], "milestones[1]='x' must be a number"),
])
def test_bad_milestones(ms, needle):
    with pytest.raises(ConfigError, match=_match(needle)):
        TrainConfig(schedule="multistep", milestones=ms)


def test_good_milestones_are_a_tuple_of_floats():
    assert TrainConfig(milestones=[0.25, 0.5]).milestones == (0.25, 0.5)
    ms = TrainConfig(milestones=np.array([0.5, 0.75], dtype=np.float32)).milestones
    assert ms == (0.5, 0.75) and all(type(m) is float for m in ms)
    assert TrainConfig(milestones=()).milestones == ()


# ---- 4. integers given as floats or numpy scalars -----------------------------------------------------

def test_integral_floats_become_ints():
    u = UnlearnConfig(iterations=10.0, batch_size=np.int64(64), alpha_off_after=30.0)
    assert u.iterations == 10 and type(u.iterations) is int
    assert type(u.batch_size) is int and type(u.alpha_off_after) is int
    t = TrainConfig(epochs=3.0, batch_size=np.uint16(32), lr=np.float32(0.5))
    assert type(t.epochs) is int and t.epochs == 3 and type(t.batch_size) is int
    assert type(t.lr) is float and t.lr == 0.5
    # the stored value is what the store's keys hash, so 10.0 and 10 are one configuration
    assert UnlearnConfig(iterations=10.0).to_dict() == UnlearnConfig(iterations=10).to_dict()
    # Python ints given for float fields stay as they are (store keys of existing settings unchanged)
    assert type(TrainConfig(lr=1).lr) is int


@pytest.mark.parametrize("fn, needle", [
    (lambda: UnlearnConfig(iterations=10.5), "iterations=10.5 must be an integer"),
    (lambda: TrainConfig(epochs=2.5), "epochs=2.5 must be an integer"),
    (lambda: TrainConfig(epochs=float("inf")), "epochs=inf must be finite"),
    (lambda: UnlearnConfig(iterations=float("nan")), "iterations=nan must be finite"),
    (lambda: UnlearnConfig(iterations=True), "iterations=True must be a number"),
    (lambda: UnlearnConfig(iterations=np.bool_(True)), "must be a number"),
])
def test_fractional_or_odd_integers_refused(fn, needle):
    with pytest.raises(ConfigError, match=_match(needle)):
        fn()


def test_make_splits_accepts_numpy_integers(digits):
    a = make_splits(digits, "random", seed=3, max_train=500)
    b = make_splits(digits, "random", seed=np.int64(3), max_train=np.int32(500), forget_frac=np.float32(0.1))
    c = make_splits(digits, "random", seed=3.0, max_train=500.0)
    for k in ("train", "forget", "retain", "val"):
        assert getattr(a, k).tolist() == getattr(b, k).tolist() == getattr(c, k).tolist()
    assert type(b.seed) is int and b.seed == 3
    s = make_splits(digits, "class", forget_class=np.int64(4), seed=np.uint8(1))
    assert s.forget_class == 4 and type(s.forget_class) is int


@pytest.mark.parametrize("kw, needle", [
    (dict(seed=2.5), "seed=2.5 must be an integer"),
    (dict(max_train=1), "max_train=1 is out of range"),
    (dict(max_train=99.5), "max_train=99.5 must be an integer"),
    (dict(scheme="class", forget_class=float("nan")), "forget_class=nan is out of range"),
    (dict(scheme="class", forget_class="3"), "forget_class='3' is out of range"),
    (dict(scheme="class", forget_class=[3]), "forget_class=[3] is out of range"),
])
def test_make_splits_bad_numbers(digits, kw, needle):
    with pytest.raises(ConfigError, match=_match(needle)):
        make_splits(digits, **kw)


# ---- 5. corrupt dataset files ----------------------------------------------------------------------

def test_corrupt_cifar_pickle_names_the_file(tmp_path):
    _write_cifar10(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    bad.write_bytes(b"this is not a pickle at all")
    with pytest.raises(DatasetNotFoundError, match="data_batch_2 is corrupt") as e:
        load_dataset("cifar10", root=tmp_path, download=False)
    msg = str(e.value)
    assert "not a readable pickle" in msg and "To get a good copy" in msg and "cifar-10-batches-py" in msg


def test_truncated_cifar_pickle(tmp_path):
    _write_cifar10(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "test_batch"
    bad.write_bytes(bad.read_bytes()[:500])  # cut off mid-array: EOFError / UnpicklingError inside
    with pytest.raises(DatasetNotFoundError, match="test_batch is corrupt.*not a readable pickle"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_cifar_pickle_of_the_wrong_content(tmp_path):
    _write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(DatasetNotFoundError, match="data_batch_1 is corrupt.*expected a dict"):
        load_dataset("cifar10", root=tmp_path, download=False)
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}, f)
    with pytest.raises(DatasetNotFoundError, match="data_batch_1 is corrupt.*layout"):
        load_dataset("cifar10", root=tmp_path, download=False)
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DatasetNotFoundError, match="3 images but 2 labels"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_cifar_missing_file_does_not_blame_a_download(tmp_path):
    _write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    # the folder exists, so no download is tried, even with download=True
    with pytest.raises(DatasetNotFoundError, match="missing file .*data_batch_4") as e:
        load_dataset("cifar10", root=tmp_path, download=True)
    assert "download failed" not in str(e.value)


def _idx_bytes(arr: np.ndarray) -> bytes:
    hdr = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    return hdr + arr.astype(np.uint8).tobytes()


def _write_fashion(root, n_train=30, n_test=10, gz=True):
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test)}
    for name, arr in arrays.items():
        if gz:
            with gzip.open(root / (name + ".gz"), "wb") as f:
                f.write(_idx_bytes(arr))
        else:
            (root / name).write_bytes(_idx_bytes(arr))


def test_fashion_fake_files_load(tmp_path):
    _write_fashion(tmp_path)
    assert load_dataset("fashion-mnist", root=tmp_path, download=False).x.shape == (40, 1, 28, 28)


def test_fashion_truncated_gzip(tmp_path):
    _write_fashion(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:200])  # a cut-off download: gzip raises EOFError inside
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte.gz is corrupt.*gzip") as e:
        load_dataset("fashion-mnist", root=tmp_path, download=False)
    assert "To get a good copy" in str(e.value) and "dataset-fashion-mnist" in str(e.value)


def test_fashion_gz_that_is_not_gzip(tmp_path):
    _write_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"<html>404 not found</html>")
    with pytest.raises(DatasetNotFoundError, match="t10k-labels-idx1-ubyte.gz is corrupt.*not a readable gzip"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)


def test_fashion_not_an_idx_file(tmp_path):
    _write_fashion(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"<html>404 not found</html>")
    with pytest.raises(DatasetNotFoundError, match="train-labels-idx1-ubyte is corrupt.*not an IDX file") as e:
        load_dataset("fashion-mnist", root=tmp_path, download=False)
    assert "truncated" not in str(e.value)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError, match="not an IDX file"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)


def test_fashion_truncated_idx_body(tmp_path):
    _write_fashion(tmp_path, gz=False)
    p = tmp_path / "t10k-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DatasetNotFoundError, match="t10k-images-idx3-ubyte is corrupt.*truncated"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)
    p.write_bytes(p.read_bytes()[:10])  # the header itself cut off
    with pytest.raises(DatasetNotFoundError, match="truncated: the header ends"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)


def test_fashion_files_swapped(tmp_path):
    _write_fashion(tmp_path, gz=False)
    img = tmp_path / "train-images-idx3-ubyte"
    lab = tmp_path / "train-labels-idx1-ubyte"
    a, b = img.read_bytes(), lab.read_bytes()
    img.write_bytes(b)
    lab.write_bytes(a)
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte is corrupt.*not 28x28 images"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)
