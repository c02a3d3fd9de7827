"""Datasets as device-resident tensors, on-device augmentation, and the experiment splits.

A :class:`Dataset` holds every image of a dataset (its training pool first, then its official test
set) as one normalised float tensor ``x`` with labels ``y``.  Splits are index tensors into it, so
a batch is ``x[idx]`` and nothing ever goes through a DataLoader.
"""

from __future__ import annotations

import gzip
import math
import numbers
import os
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import DATASETS, ConfigError, check_choice, check_range, check_seed

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")

# Per-dataset normalisation (mean, std per channel) on [0, 1] pixel values.
NORMALISATION = {
    "digits": ((0.3051,), (0.3770,)),  # sklearn digits scaled from 0..16 to 0..1
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
# On-device augmentation per dataset: (crop padding, horizontal flip).
AUGMENT = {"digits": (1, False), "fashion-mnist": (2, False), "cifar10": (4, True), "cifar100": (4, True)}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not on disk and cannot be downloaded; the message says how to get them."""


@dataclass
class Dataset:
    """All images of one dataset on one device.

    ``x``: (N, C, H, W) float32, normalised; ``y``: (N,) int64; indices ``< n_pool`` form the
    training pool (train + validation), the rest the official test set.
    """

    name: str
    x: torch.Tensor
    y: torch.Tensor
    n_pool: int
    num_classes: int

    @property
    def in_channels(self) -> int:
        return self.x.shape[1]

    @property
    def image_size(self) -> int:
        return self.x.shape[-1]

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device) -> "Dataset":
        return Dataset(self.name, self.x.to(device), self.y.to(device), self.n_pool, self.num_classes)

    def batch(self, idx: torch.Tensor, augment: bool = False, generator: torch.Generator | None = None):
        """Images and labels at ``idx`` (a tensor on any device), augmented on the device if asked."""
        idx = idx.to(self.x.device)
        xb = self.x[idx]
        if augment:
            pad, flip = AUGMENT[self.name]
            xb = augment_batch(xb, pad, flip, generator)
        return xb, self.y[idx]


def augment_batch(x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop with zero padding (in normalised space: padding value 0 = the mean) and optional flip.

    Fully vectorised on the tensor's device: one padded copy, one gather of shifted windows.
    """
    n, c, h, w = x.shape
    dev = x.device
    gen_dev = generator.device if generator is not None else torch.device("cpu")
    if pad > 0:
        xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=gen_dev).to(dev)
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=gen_dev).to(dev)
        rows = (dy[:, None] + torch.arange(h, device=dev)[None, :])  # n, h
        cols = (dx[:, None] + torch.arange(w, device=dev)[None, :])  # n, w
        xp = xp.gather(2, rows[:, None, :, None].expand(n, c, h, xp.shape[3]))
        x = xp.gather(3, cols[:, None, None, :].expand(n, c, h, w))
    if flip:
        f = torch.rand(n, generator=generator, device=gen_dev).to(dev) < 0.5
        x = torch.where(f[:, None, None, None], x.flip(3), x)
    return x


def _finish(name: str, x_pool: np.ndarray, y_pool: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
            num_classes: int, device) -> Dataset:
    """uint8/float NHWC or NCHW arrays in [0, 1] -> normalised Dataset on ``device``."""
    x = torch.from_numpy(np.concatenate([x_pool, x_test]).astype(np.float32))
    y = torch.from_numpy(np.concatenate([y_pool, y_test]).astype(np.int64))
    mean, std = NORMALISATION[name]
    mean = torch.tensor(mean).view(1, -1, 1, 1)
    std = torch.tensor(std).view(1, -1, 1, 1)
    x = (x - mean) / std
    return Dataset(name, x.contiguous().to(device), y.to(device), len(x_pool), num_classes)


def _load_digits(device) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0)[:, None].astype(np.float32)
    y = d.target.astype(np.int64)
    # digits has no official test set: a fixed 20% per class (seed independent of experiments).
    rng = np.random.default_rng(20240101)
    test = np.zeros(len(y), bool)
    for c in range(10):
        ids = np.flatnonzero(y == c)
        test[rng.choice(ids, size=round(0.2 * len(ids)), replace=False)] = True
    return _finish("digits", x[~test], y[~test], x[test], y[test], 10, device)


def _read_idx(path: Path, name: str = "fashion-mnist") -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped if ``path`` ends in .gz) as an array of its shape.

    A file that cannot be read as one is a :class:`DatasetNotFoundError` naming the file and how to
    get a good copy of dataset ``name``.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:  # a cut-off download, or not gzip at all
        raise _corrupt(name, path, f"not a readable gzip file: {e}") from None
    # IDX header: two zero bytes, a type byte (0x08: unsigned byte), the number of dimensions, then
    # one big-endian uint32 size per dimension.
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08 or not 1 <= data[3] <= 4:
        raise _corrupt(name, path, f"not an IDX file of unsigned bytes (magic number {data[:4].hex() or 'missing'}, "
                                   "expected 0000080N with N = 1..4 dimensions)")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise _corrupt(name, path, f"truncated: the header ends after {len(data)} bytes")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    want = int(np.prod(shape))
    if arr.size != want:
        what = "truncated" if arr.size < want else "too long"
        raise _corrupt(name, path, f"{what}: the header {shape} promises {want} values, the file holds {arr.size}")
    return arr.reshape(shape)


FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _find_fashion(root: Path | None) -> Path | None:
    """The folder holding the four files: under ``root`` only when one is given (a data root that
    lacks them is an error, never a silent fall-back), else the Debian copy or the download cache."""
    if root is not None:
        candidates = [root, root / "fashion-mnist", root / "FashionMNIST" / "raw"]
    else:
        candidates = [DEBIAN_FASHION, _cache_dir() / "FashionMNIST" / "raw"]
    for c in candidates:
        if all((c / f).exists() or (c / (f + ".gz")).exists() for f in FASHION_FILES):
            return c
    return None


def _cache_dir() -> Path:
    return Path(os.environ.get("ADVUNLEARN_DATA", Path.home() / ".cache" / "advunlearn" / "data"))


def _load_fashion(root, device, download: bool) -> Dataset:
    where = _find_fashion(Path(root) if root else None)
    if where is None and root:
        raise _not_in_root("fashion-mnist", root)
    if where is None and download:
        try:
            import torchvision

            torchvision.datasets.FashionMNIST(str(_cache_dir()), train=True, download=True)
            torchvision.datasets.FashionMNIST(str(_cache_dir()), train=False, download=True)
        except Exception as e:  # no network, mirror down, ...
            raise _missing("fashion-mnist", root, e) from None
        where = _find_fashion(None)
    if where is None:
        raise _missing("fashion-mnist", root, None)

    def rd(f):
        p = where / f
        p = p if p.exists() else where / (f + ".gz")
        return p, _read_idx(p)

    (pxtr, xtr), (pytr, ytr), (pxte, xte), (pyte, yte) = (rd(f) for f in FASHION_FILES)
    for (px, x), (py, y) in (((pxtr, xtr), (pytr, ytr)), ((pxte, xte), (pyte, yte))):
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise _corrupt("fashion-mnist", px, f"holds an array of shape {x.shape}, not 28x28 images")
        if y.ndim != 1 or len(y) != len(x):
            raise _corrupt("fashion-mnist", py, f"holds an array of shape {y.shape}, not {len(x)} labels for {px.name}")
        if y.size and y.max() >= 10:
            raise _corrupt("fashion-mnist", py, f"holds label {int(y.max())}; Fashion-MNIST has classes 0..9")
    return _finish("fashion-mnist", xtr[:, None] / 255.0, ytr, xte[:, None] / 255.0, yte, 10, device)


CIFAR_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def _load_cifar(name, root, device, download: bool) -> Dataset:
    base = Path(root) if root else _cache_dir()
    folder = base / CIFAR_DIRS[name]
    if not folder.exists() and (base.name == CIFAR_DIRS[name]):
        folder = base
    if not folder.is_dir() and root:  # a given data root is where the files are, never a download target
        raise _not_in_root(name, root)
    if not folder.exists() and download:
        try:
            import torchvision

            cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
            cls(str(base), train=True, download=True)
        except Exception as e:
            raise _missing(name, root, e) from None
    if not folder.exists():
        raise _missing(name, root, None)
    if name == "cifar10":
        train_files = [folder / f"data_batch_{i}" for i in range(1, 6)]
        test_files = [folder / "test_batch"]
        key = b"labels"
        k = 10
    else:
        train_files, test_files, key, k = [folder / "train"], [folder / "test"], b"fine_labels", 100

    def rd1(f: Path):
        with open(f, "rb") as fh:
            try:
                d = pickle.load(fh, encoding="bytes")
            except Exception as e:  # unpickling garbage can raise almost anything (see pickle's docs)
                raise _corrupt(name, f, f"not a readable pickle: {type(e).__name__}: {e}") from None
        if not isinstance(d, dict) or b"data" not in d or key not in d:
            raise _corrupt(name, f, f"not a {name} batch: expected a dict with keys b'data' and {key!r}")
        try:
            x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            y = np.asarray(d[key], dtype=np.int64).reshape(-1)
        except (ValueError, TypeError, OverflowError) as e:
            raise _corrupt(name, f, f"its arrays do not have the {name} layout: {e}") from None
        if len(x) != len(y):
            raise _corrupt(name, f, f"it holds {len(x)} images but {len(y)} labels")
        if y.size and (y.min() < 0 or y.max() >= k):
            raise _corrupt(name, f, f"it holds labels outside 0..{k - 1}")
        return x, y

    # Every file must be there before any is read.
    for f in train_files + test_files:
        if not f.exists():
            raise _not_in_root(name, root, f"missing file {f}") if root else _missing(name, None, None, f"missing file {f}")

    def rd(files):
        xs, ys = zip(*(rd1(f) for f in files))
        return np.concatenate(xs), np.concatenate(ys)

    xtr, ytr = rd(train_files)
    xte, yte = rd(test_files)
    return _finish(name, xtr / 255.0, ytr, xte / 255.0, yte, k, device)


def _how(name: str) -> str:
    return {
        "fashion-mnist": ("install the Debian package `dataset-fashion-mnist` (files under "
                          f"{DEBIAN_FASHION}), or let torchvision download it with network access into "
                          f"{_cache_dir()}, or pass root= a folder holding {', '.join(FASHION_FILES)} (optionally .gz)"),
        "cifar10": (f"download it with network access (torchvision.datasets.CIFAR10(root, download=True)) into "
                    f"{_cache_dir()}, or pass root= a folder containing {CIFAR_DIRS['cifar10']}/ "
                    "(data_batch_1..5, test_batch)"),
        "cifar100": (f"download it with network access (torchvision.datasets.CIFAR100(root, download=True)) into "
                     f"{_cache_dir()}, or pass root= a folder containing {CIFAR_DIRS['cifar100']}/ (train, test)"),
    }[name]


def _missing(name: str, root, cause: Exception | None, detail: str | None = None) -> DatasetNotFoundError:
    """Dataset ``name`` is not on disk; ``cause``: why the download that was tried failed (None when
    none was tried); ``detail``: what exactly is missing."""
    looked = f" (looked in root={root!r})" if root else ""
    what = f": {detail}" if detail else ""
    why = f"; the download failed: {cause}" if cause else ""
    return DatasetNotFoundError(f"dataset {name!r} is not available{looked}{what}{why}. To get it: {_how(name)}")


def _not_in_root(name: str, root, detail: str | None = None) -> DatasetNotFoundError:
    """The data root the caller gave does not hold dataset ``name``: say which files belong there."""
    root = Path(root)
    if name == "fashion-mnist":
        expected = (f"{', '.join(FASHION_FILES)} (each may end in .gz) in {root}, {root / 'fashion-mnist'} or "
                    f"{root / 'FashionMNIST' / 'raw'}")
        default = (f"the Debian package `dataset-fashion-mnist` ({DEBIAN_FASHION}) or a torchvision download "
                   f"into {_cache_dir()}")
    else:
        inside = "data_batch_1..5 and test_batch" if name == "cifar10" else "train and test"
        expected = f"the folder {root / CIFAR_DIRS[name]} holding {inside} (CIFAR's Python version)"
        default = f"a torchvision download (needs network access) into {_cache_dir()}"
    what = f" ({detail})" if detail else ""
    return DatasetNotFoundError(f"dataset {name!r} is not in the data root root={str(root)!r}{what}: expected "
                                f"{expected}. Put the files there, or leave the data root (--data-root, "
                                f"data_root) out to use {default}")


def _corrupt(name: str, path: Path, problem: str) -> DatasetNotFoundError:
    """File ``path`` of dataset ``name`` is unreadable; the message says what is wrong and how to replace it."""
    return DatasetNotFoundError(f"{path} is corrupt ({problem}); dataset {name!r} cannot be loaded from it. "
                                f"To get a good copy, delete it (or its folder) and {_how(name)}")


def load_dataset(name: str, root: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 download: bool = True) -> Dataset:
    """Load ``name`` (one of ``digits``, ``fashion-mnist``, ``cifar10``, ``cifar100``) onto ``device``."""
    check_choice("dataset", name, DATASETS)
    device = torch.device(device)
    if name == "digits":
        return _load_digits(device)
    if name == "fashion-mnist":
        return _load_fashion(root, device, download)
    return _load_cifar(name, root, device, download)


@dataclass
class Splits:
    """Index tensors (CPU, int64) into a :class:`Dataset`.

    ``train`` = D (what the original model trains on), ``forget`` = D_f ⊆ D, ``retain`` = D \\ D_f,
    ``val`` = D_v (held out of the pool, never trained on), ``test`` = D_t; for the class scheme
    ``test`` excludes the forgotten class and ``test_forget`` holds it.
    """

    train: torch.Tensor
    forget: torch.Tensor
    retain: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    test_all: torch.Tensor
    test_forget: torch.Tensor
    scheme: str
    forget_class: int | None
    seed: int

    def sizes(self) -> dict[str, int]:
        return {k: len(getattr(self, k)) for k in ("train", "forget", "retain", "val", "test")}


def make_splits(dataset: Dataset, scheme: str = "random", forget_frac: float = 0.1,
                forget_class: int | None = None, val_frac: float = 0.1, seed: int = 0,
                max_train: int | None = None, scores=None) -> Splits:
    """Split ``dataset`` into D, D_f, D_r, D_v, D_t; one ``seed`` fixes everything.

    random: ``forget_frac`` of D at random; class: every sample of D with label ``forget_class``
    (default: a class drawn with the seed); memorized: the ``forget_frac`` of D with the highest
    ``scores`` (one per dataset index, e.g. :func:`advunlearn.studies.memorization.memorization_scores`;
    ties go to the lower index), D and D_v as for random.  ``max_train`` subsamples D (CPU profiles).
    """
    check_choice("scheme", scheme, ("random", "class", "memorized"))
    if scheme == "memorized":
        if scores is None:
            raise ConfigError("scheme='memorized' needs scores (one memorisation score per dataset index)")
        scores = torch.as_tensor(np.asarray(scores, dtype=np.float64)).ravel()
        if scores.numel() != len(dataset.y):
            raise ConfigError(f"scores has {scores.numel()} entries; one per dataset index ({len(dataset.y)}) is needed")
    val_frac = check_range("val_frac", val_frac, 0, 1, lo_open=True, hi_open=True)
    seed = check_seed(seed)
    if max_train is not None:
        max_train = check_range("max_train", max_train, 2, integer=True)
    if scheme in ("random", "memorized"):
        forget_frac = check_range("forget_frac", forget_frac, 0, 1, lo_open=True, hi_open=True)
    elif forget_class is not None:
        if isinstance(forget_class, bool) or not isinstance(forget_class, numbers.Real) or \
                not math.isfinite(forget_class) or int(forget_class) != forget_class or \
                not 0 <= forget_class < dataset.num_classes:
            raise ConfigError(f"forget_class={forget_class!r} is out of range for {dataset.name}; "
                              f"allowed: 0..{dataset.num_classes - 1}")
        forget_class = int(forget_class)
    g = torch.Generator().manual_seed(seed)
    pool = torch.randperm(dataset.n_pool, generator=g)
    n_val = max(1, round(val_frac * dataset.n_pool))
    val, train = pool[:n_val].sort().values, pool[n_val:]
    if max_train is not None:
        train = train[:max_train]
    train = train.sort().values
    y = dataset.y.cpu()
    test_all = torch.arange(dataset.n_pool, len(y))
    if scheme in ("random", "memorized"):
        n_f = round(forget_frac * len(train))
        if n_f < 1 or n_f >= len(train):
            raise ConfigError(f"forget_frac={forget_frac} gives {n_f} forget samples out of {len(train)}; "
                              "the forget and retain sets must both be non-empty")
        if scheme == "random":
            perm = torch.randperm(len(train), generator=g)
        else:
            s_train = scores[train]
            if torch.isnan(s_train).any():
                raise ConfigError("scores must be numbers for every training sample (NaN found)")
            perm = torch.sort(-s_train, stable=True).indices
        forget = train[perm[:n_f]].sort().values
        test, test_forget = test_all, test_all[:0]
        forget_class = None
    else:
        if forget_class is None:
            forget_class = int(torch.randint(dataset.num_classes, (1,), generator=g))
        forget = train[y[train] == forget_class]
        if len(forget) == 0 or len(forget) == len(train):
            raise ConfigError(f"forget_class={forget_class} leaves an empty forget or retain set")
        test = test_all[y[test_all] != forget_class]
        test_forget = test_all[y[test_all] == forget_class]
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[forget] = False
    retain = train[mask[train]]
    return Splits(train, forget, retain, val, test, test_all, test_forget, scheme, forget_class, seed)


__all__ = ["Dataset", "Splits", "load_dataset", "make_splits", "augment_batch", "DatasetNotFoundError"]
