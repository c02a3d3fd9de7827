"""One experiment's artifacts, computed once and reused from the store.

:class:`Experiment` ties a dataset, its splits, a profile, a seed and a sparsity to a store, and
hands out the original model θ0 (dense or OMP-pruned), the Retrain gold standard and, in later
stages, the attacker and the unlearned models.  Every artifact is keyed by the config that made it.
"""

from __future__ import annotations

import contextlib

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..core.config import check_range, check_seed
from .profiles import Profile, get_profile
from ..core.data import Dataset, Splits, load_dataset, make_splits
from ..core.models import Classifier, build_model, model_signature
from ..core.providers import provider
from ..core.prune import apply_masks, masks_from_model, omp, sparsity_of
from ..core.store import Store, load_model, save_model
from ..core.train import accuracy, fit, resolve_device

# The artifact store: the notebooks' default (../results/store from notebooks/) seen from the repo root,
# so the command line and the notebooks share one store.
DEFAULT_RESULTS = os.environ.get("ADVUNLEARN_RESULTS", "results/store")
# The memorisation scores' version (advunlearn.studies.memorization), in the memorized scheme's keys.
MEMORIZATION_VERSION = 1
# Retrain replica r > 0 draws its initialisation and batch order from seed + 10,000 + r x this step.
REPLICA_SEED_STEP = 1_000_003


@dataclass
class Experiment:
    """Everything one (dataset, scheme, sparsity, seed, profile) experiment needs."""

    dataset: str = "digits"
    scheme: str = "random"
    sparsity: float = 0.0
    seed: int = 0
    profile: str = "cpu"
    forget_frac: float = 0.1
    forget_class: int | None = None
    val_frac: float = 0.1
    device: str = "auto"
    results: str | os.PathLike = DEFAULT_RESULTS
    data_root: str | None = None
    progress: bool = True
    profile_overrides: dict = field(default_factory=dict)
    # memorized scheme: how many shadow models estimate the memorisation scores (advunlearn.studies.memorization)
    memorization_shadows: int = 32
    # memorized scheme: single-thread processes that train those models when the scores are not
    # stored yet (the scores do not depend on it)
    memorization_workers: int = 1
    # A shadow model's experiment (advunlearn.studies.shadows): the parent's data and the shadow's own splits,
    # and ``shadow``, the key that makes its artifacts its own.  None for every ordinary experiment.
    given_data: Dataset | None = field(default=None, repr=False, compare=False)
    given_splits: Splits | None = field(default=None, repr=False, compare=False)
    shadow: dict | None = None

    def __post_init__(self):
        self.seed = check_seed(self.seed)  # before anything is loaded or written
        check_range("sparsity", self.sparsity, 0, 1, hi_open=True)
        self.prof: Profile = get_profile(self.profile, self.dataset, **self.profile_overrides)
        self.dev = resolve_device(self.device)
        self.store = Store(self.results)
        self.data: Dataset = self.given_data if self.given_data is not None else \
            load_dataset(self.dataset, self.data_root, self.dev)
        if self.scheme == "class" and self.forget_class is None:
            self.forget_class = 0
        if self.given_splits is not None:
            self.splits: Splits = self.given_splits
        elif self.scheme == "memorized":  # D_f from memorisation models: made above, registered by advunlearn
            self.splits = provider("memorized_splits")(self)
        else:
            self.splits = make_splits(self.data, self.scheme, self.forget_frac, self.forget_class,
                                      self.val_frac, self.seed, self.prof.max_train)

    # ---- keys -------------------------------------------------------------------------------
    # Every artifact's key starts from data_key, which on the CPU holds the thread count of the
    # process computing it (compute_threads): float sums are split differently across threads, so the
    # same run with 1 and 2 threads gives slightly different models (Retrain UA 17.00 against 16.40 on
    # the testbed), and each is stored and reported as its own.
    def data_key(self) -> dict:
        key = {"dataset": self.dataset, "seed": self.seed, "val_frac": self.val_frac,
               "max_train": self.prof.max_train}
        threads = compute_threads(self.dev)
        if threads is not None:
            key["threads"] = threads
        return {**key, "shadow": self.shadow} if self.shadow is not None else key

    def forget_key(self) -> dict:
        key = {**self.data_key(), "scheme": self.scheme,
               "forget_frac": self.forget_frac if self.scheme in ("random", "memorized") else None,
               "forget_class": self.splits.forget_class}
        if self.scheme == "memorized":
            key["memorization"] = {"shadows": self.memorization_shadows, "v": MEMORIZATION_VERSION}
        return key

    def model_key(self) -> dict:
        return {"model": self.prof.model, "pretrain": self.prof.pretrain.to_dict(), "sparsity": self.sparsity,
                "rewind_epoch": self.prof.rewind_epoch if self.sparsity > 0 else None}

    # ---- models -----------------------------------------------------------------------------
    def new_model(self, seed: int | None = None) -> Classifier:
        torch.manual_seed(self.seed if seed is None else seed)
        m = build_model(self.prof.model, self.data.num_classes, self.data.in_channels, self.data.image_size)
        return m.to(self.dev)

    def _signature(self, model) -> dict:
        return model_signature(model, self.dataset)

    def _trained(self, kind: str, key: dict, indices: torch.Tensor, masks=None, init_seed=None,
                 order_seed=None) -> tuple[Classifier, dict]:
        """Train (or load) a model on ``indices`` with the pretraining recipe; optional OMP masks.
        ``init_seed`` seeds the initialisation, ``order_seed`` the batch order (default: ``seed``)."""

        def compute(d: Path):
            model = self.new_model(init_seed)
            if masks is not None:
                apply_masks(model, masks)
            info = fit(model, self.data, indices, self.prof.pretrain,
                       seed=self.seed if order_seed is None else order_seed, masks=masks,
                       progress=self.progress, desc=kind)
            meta = {**self._signature(model), "kind": kind, "time_s": info["time_s"]}
            save_model(d / "model.safetensors", model, meta)
            return model, meta

        def load(d: Path):
            model = self.new_model(init_seed)
            meta = load_model(d / "model.safetensors", model, expect=self._signature(model))
            return model, meta

        (model, meta), _ = self.store.cached(kind, key, compute, load)
        return model, meta

    def original(self) -> tuple[Classifier, dict]:
        """θ0: trained on D; for sparsity > 0, OMP-pruned and retrained with its mask (Jia et al.)."""
        dense_key = {**self.data_key(), **self.model_key(), "sparsity": 0.0, "rewind_epoch": None}
        if self.sparsity == 0:
            return self._trained("pretrain", dense_key, self.splits.train)
        dense, _ = self._trained("pretrain", dense_key, self.splits.train)
        key = {**self.data_key(), **self.model_key()}

        def compute(d: Path):
            # OMP as in Jia et al.: global magnitude mask from the dense model, rewind to the weights
            # after `rewind_epoch` epochs of the same run, then retrain with the mask held exact.
            masks = omp(copy.deepcopy(dense), self.sparsity)
            rewind = self._rewind_weights()
            model = self.new_model()
            model.load_state_dict(rewind)
            apply_masks(model, masks)
            info = fit(model, self.data, self.splits.train, self.prof.pretrain, seed=self.seed, masks=masks,
                       progress=self.progress, desc="pretrain-sparse")
            meta = {**self._signature(model), "kind": "pretrain-sparse", "time_s": info["time_s"],
                    "sparsity": sparsity_of(model)}
            save_model(d / "model.safetensors", model, meta)
            return model, meta

        def load(d: Path):
            model = self.new_model()
            meta = load_model(d / "model.safetensors", model, expect=self._signature(model))
            return model, meta

        (model, meta), _ = self.store.cached("pretrain-sparse", key, compute, load)
        return model, meta

    def _rewind_weights(self) -> dict:
        """Weights after ``rewind_epoch`` epochs of dense pretraining (replayed with the same seed)."""
        model = self.new_model()
        cfg = self.prof.pretrain
        snap = {}

        def grab(epoch, m):
            if epoch + 1 == self.prof.rewind_epoch:
                snap.update({k: v.detach().clone() for k, v in m.state_dict().items()})

        if self.prof.rewind_epoch == 0:
            return model.state_dict()
        # Replay only the first rewind_epoch epochs of the identical schedule and batch order.
        fit_epochs = min(self.prof.rewind_epoch, cfg.epochs)
        _fit_prefix(model, self.data, self.splits.train, cfg, fit_epochs, self.seed, grab, self.progress)
        return snap or model.state_dict()

    def masks(self, model) -> dict | None:
        return masks_from_model(model) if self.sparsity > 0 else None

    def retrain(self, replica: int = 0) -> tuple[Classifier, dict]:
        """The gold standard: fresh init trained on D_r with the pretraining recipe (and θ0's mask if sparse).

        ``replica`` > 0: an independent Retrain on the same split (another initialisation and batch
        order, the same recipe), for the seed-to-seed noise floor of every metric."""
        replica = check_range("replica", replica, 0, integer=True)
        masks = None
        if self.sparsity > 0:
            orig, _ = self.original()
            masks = masks_from_model(orig)
        key = {**self.forget_key(), **self.model_key(), "what": "retrain"}
        if replica == 0:
            return self._trained("retrain", key, self.splits.retain, masks=masks, init_seed=self.seed + 10_000)
        other = self.seed + 10_000 + REPLICA_SEED_STEP * replica
        return self._trained("retrain", {**key, "replica": replica}, self.splits.retain, masks=masks,
                             init_seed=other, order_seed=other)

    def accuracies(self, model) -> dict[str, float]:
        s = self.splits
        return {"train": accuracy(model, self.data, s.train), "forget": accuracy(model, self.data, s.forget),
                "retain": accuracy(model, self.data, s.retain), "val": accuracy(model, self.data, s.val),
                "test": accuracy(model, self.data, s.test)}


@contextlib.contextmanager
def one_thread_if(active: bool):
    """Compute with one thread while ``active`` (then restore the count): a caller whose work runs in
    single-thread worker processes computes, and looks up, the same artifacts as they do."""
    import torch

    before = torch.get_num_threads()
    if active:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if active:
            torch.set_num_threads(before)


def compute_threads(device) -> int | None:
    """The CPU thread count that decides this process's results on ``device`` (None on CUDA, where the
    model's arithmetic runs on the GPU)."""
    import torch

    return int(torch.get_num_threads()) if torch.device(device).type == "cpu" else None


def _fit_prefix(model, data, indices, cfg, n_epochs, seed, epoch_end, progress):
    """Run the first ``n_epochs`` of ``fit(cfg)`` exactly (same lr schedule, same batch order)."""

    class _Stop(Exception):
        pass

    def hook(epoch, m):
        epoch_end(epoch, m)
        if epoch + 1 >= n_epochs:
            raise _Stop

    try:
        fit(model, data, indices, cfg, seed=seed, epoch_end=hook, progress=progress, desc="rewind")
    except _Stop:
        pass


__all__ = ["Experiment", "DEFAULT_RESULTS"]
