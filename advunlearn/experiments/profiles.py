"""Named profiles: the recipe of one experiment for each dataset, and the frozen tuned values.

A *profile* bundles the recipes that belong together (the model for each dataset, the pretraining
recipe, the unlearning hyperparameters, the other methods' settings).  ``paper`` holds the paper's
values for ResNet-18 on CIFAR; ``cpu`` is the course recipe for a laptop; ``tiny`` shrinks
everything for CI and the notebooks' fast mode.  Every value can be overridden.

A profile names the methods' hyperparameters, so it is checked against the method registry
(:mod:`advunlearn.methods`): it lives above that layer, beside :class:`~advunlearn.experiments.experiment.Experiment`
which reads it.  The settings it is made of (``TrainConfig``, ``UnlearnConfig``, ``AttackerConfig``)
are :mod:`advunlearn.core.config`'s.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from ..core.config import (DATASETS, MODELS, PROFILE_NAMES, SCHEMES, UNLEARN_KEYS, AttackerConfig, ConfigError, TrainConfig, UnlearnConfig,
                           _Checked, check_choice)
from ..methods import check_profile_methods, get


@dataclass(frozen=True)
class Profile(_Checked):
    """Everything a profile decides for one dataset.

    ``pretrain``, ``finetune``, ``ga``, ``attacker`` and the values of ``unlearn`` may be given as
    plain mappings (from JSON or YAML): each becomes its config class through ``from_dict`` (so it is
    validated, and fields it omits take that class's defaults, not the profile's).

    ``methods``: the other unlearning methods' hyperparameters, method -> key -> {hparam: value}, the
    key "default", "<scheme>" or "<scheme>-<dense|sparse>" (merged in that order, the most specific
    winning); names and values are checked against the method registry (:mod:`advunlearn.methods`).
    """

    name: str = "cpu"
    model: str = "mlp"
    pretrain: TrainConfig = field(default_factory=TrainConfig)
    rewind_epoch: int = 1           # OMP: rewind to the weights after this epoch, then retrain sparse
    finetune: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, lr=0.01))
    ga: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=5, lr=5e-4))
    attacker: AttackerConfig = field(default_factory=AttackerConfig)
    unlearn: Mapping[str, UnlearnConfig] = field(default_factory=dict)  # keys: "random-dense" ...
    max_train: int | None = None    # subsample the training pool (CPU profiles on big datasets)
    methods: Mapping[str, Mapping[str, Mapping]] = field(default_factory=dict)  # method -> key -> hparams

    def __post_init__(self):
        check_choice("model", self.model, MODELS)
        for name, cls in (("pretrain", TrainConfig), ("finetune", TrainConfig), ("ga", TrainConfig),
                          ("attacker", AttackerConfig)):
            object.__setattr__(self, name, _as_config(cls, getattr(self, name), name))
        # 0 rewinds to the initial weights; beyond pretrain.epochs, to the end of pretraining
        # (Experiment._rewind_weights).
        self._check("rewind_epoch", 0, integer=True)
        unlearn = self.unlearn
        if not isinstance(unlearn, Mapping):
            raise ConfigError(f"unlearn={unlearn!r} must be a mapping of keys {list(UNLEARN_KEYS)} "
                              "to UnlearnConfig settings")
        unknown = sorted(map(str, set(unlearn) - set(UNLEARN_KEYS)))
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown} in unlearn; allowed keys: {list(UNLEARN_KEYS)}")
        object.__setattr__(self, "unlearn", {k: _as_config(UnlearnConfig, v, f"unlearn[{k!r}]")
                                             for k, v in unlearn.items()})
        if self.max_train is not None:  # make_splits needs at least one forget and one retain sample
            self._check("max_train", 2, integer=True)
        object.__setattr__(self, "methods", check_profile_methods(self.methods))

    def unlearn_for(self, scheme: str, sparsity: float) -> UnlearnConfig:
        check_choice("scheme", scheme, SCHEMES)
        key = f"{scheme}-{'sparse' if sparsity > 0 else 'dense'}"
        if scheme == "memorized":  # a forget set of the random scheme's size: its settings
            return self.unlearn_for("random", sparsity)
        return self.unlearn.get(key) or self.unlearn.get(scheme) or UnlearnConfig()


def _as_config(cls, value, where: str):
    """``value`` as a ``cls``: itself, or built (and validated) from a mapping of its fields."""
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        return cls.from_dict(value, where=where)
    raise ConfigError(f"{where}={value!r} must be a {cls.__name__} or a mapping of its fields; "
                      f"allowed keys: {[f.name for f in fields(cls)]}")


def _paper_unlearn() -> dict[str, UnlearnConfig]:
    # Section 4.2: alpha 0.9, beta 0.001, lambda 5e-3; lr 0.01 random dense, 0.03 random sparse,
    # 0.02 class-wise; class-wise alpha -> 0 after the first 30 iterations.
    base = UnlearnConfig(alpha=0.9, beta=1e-3, lambd=5e-3)
    return {
        "random-dense": base.updated(lr=0.01),
        "random-sparse": base.updated(lr=0.03),
        "class": base.updated(lr=0.02, alpha_off_after=30),
    }


PAPER_UNLEARN = _paper_unlearn()


def _digits_unlearn(profile: str) -> dict[str, UnlearnConfig]:
    # Chosen by an earlier grid search (docs/digits.md; superseded by `advunlearn tune`) on tuning seeds 100-101 (never the reporting seeds 0-4),
    # scored by the distance to Retrain on UA, RA and held-out validation accuracy; see docs/tuning.md
    # ("Recommendation"). Class-wise: one setting for dense and sparse, the one that forgot the class
    # on every tuning (seed, sparsity); the criterion alone preferred alpha 20, lr 0.02 for the sparse
    # model, which failed on both dense seeds.
    base = UnlearnConfig(alpha=5.0, beta=1e-3, lambd=5e-3, batch_size=64, augment=False)
    if profile == "cpu":
        return {
            "random-dense": base.updated(lr=0.01, iterations=200),
            "random-sparse": base.updated(alpha=20.0, lr=0.01, iterations=100),
            "class": base.updated(lr=0.05, iterations=200, alpha_off_after=100),
        }
    return {  # tiny: 30 pretraining epochs, a 200-iteration attacker
        "random-dense": base.updated(alpha=20.0, lr=0.01, iterations=50),
        "random-sparse": base.updated(alpha=20.0, lr=0.01, iterations=100),
        "class": base.updated(lr=0.05, iterations=100, alpha_off_after=60),
    }


DIGITS_UNLEARN = _digits_unlearn("cpu")
DIGITS_UNLEARN_TINY = _digits_unlearn("tiny")


TESTBED_MAX_TRAIN = 5000


def _testbed_unlearn() -> dict[str, UnlearnConfig]:
    # Starting values before tuning (the paper's, on the MLP without augmentation); the tuned values
    # replace them through advunlearn/tuned/cpu-fashion-mnist.json.
    base = UnlearnConfig(alpha=0.9, beta=1e-3, lambd=5e-3, batch_size=64, augment=False, iterations=200)
    return {
        "random-dense": base.updated(lr=0.01),
        "random-sparse": base.updated(lr=0.03),
        "class": base.updated(lr=0.02, alpha_off_after=30),
    }


TESTBED_UNLEARN = _testbed_unlearn()


def _profiles() -> dict[str, dict[str, dict]]:
    """profile -> dataset (or "default") -> field overrides."""
    # Jia et al.'s pretraining recipe: 182 epochs, lr 0.1, multistep at 91/136, batch 256.
    paper_train = TrainConfig(epochs=182, lr=0.1, batch_size=256, schedule="multistep",
                              milestones=(0.5, 0.75))
    return {
        # FT and GA as in Jia et al.'s code: batch 256, and their multistep schedule never reaches its
        # first milestone (epoch 91) within 10 or 5 epochs, so the learning rate is constant.
        "paper": {"default": dict(model="resnet18", pretrain=paper_train, rewind_epoch=8,
                                  finetune=TrainConfig(epochs=10, lr=0.01, batch_size=256, schedule="constant"),
                                  ga=TrainConfig(epochs=5, lr=5e-4, batch_size=256, schedule="constant"),
                                  unlearn=PAPER_UNLEARN)},
        "gpu": {"default": dict(model="resnet18",
                                pretrain=TrainConfig(epochs=30, lr=0.1, batch_size=512, warmup_epochs=1),
                                rewind_epoch=2,
                                finetune=TrainConfig(epochs=3, lr=0.01, batch_size=512),
                                ga=TrainConfig(epochs=2, lr=5e-4, batch_size=512),
                                unlearn=PAPER_UNLEARN)},
        "cpu": {
            "default": dict(model="cnn", pretrain=TrainConfig(epochs=8, lr=0.05, batch_size=128),
                            finetune=TrainConfig(epochs=2, lr=0.01), ga=TrainConfig(epochs=2, lr=5e-4),
                            unlearn=PAPER_UNLEARN),
            # The testbed: an MLP overfit on a 5,000-image subset of Fashion-MNIST leaks membership the
            # way ResNet-18 leaks on CIFAR (train 100%, a clear train-test gap), in seconds on 2 cores.
            # A small CNN (width 32) took 66 s per epoch on one busy core here, too slow for the tables.
            "fashion-mnist": dict(model="mlp", max_train=TESTBED_MAX_TRAIN,
                                  pretrain=TrainConfig(epochs=40, lr=0.05, batch_size=64, augment=False),
                                  finetune=TrainConfig(epochs=5, lr=0.01, batch_size=64, augment=False),
                                  ga=TrainConfig(epochs=5, lr=1e-3, batch_size=64, augment=False),
                                  unlearn=TESTBED_UNLEARN),
            "digits": dict(model="mlp", pretrain=TrainConfig(epochs=40, lr=0.05, batch_size=64, augment=False),
                           unlearn=DIGITS_UNLEARN,
                           finetune=TrainConfig(epochs=5, lr=0.01, batch_size=64, augment=False),
                           # GA on digits is a cliff: lr 1e-3 (the CIFAR value) forgets nothing, 0.1 diverges;
                           # 0.05 x 10 epochs was the largest probed setting that stayed finite.
                           ga=TrainConfig(epochs=10, lr=0.05, batch_size=64, augment=False)),
        },
        "tiny": {
            "default": dict(model="mlp", pretrain=TrainConfig(epochs=3, lr=0.05, batch_size=256),
                            finetune=TrainConfig(epochs=1, lr=0.01, batch_size=256),
                            ga=TrainConfig(epochs=1, lr=5e-4, batch_size=256),
                            attacker=AttackerConfig(iterations=100), max_train=5000,
                            unlearn=PAPER_UNLEARN),
            "digits": dict(model="mlp", pretrain=TrainConfig(epochs=30, lr=0.05, batch_size=64, augment=False),
                           unlearn=DIGITS_UNLEARN_TINY,
                           finetune=TrainConfig(epochs=2, lr=0.01, batch_size=64, augment=False),
                           ga=TrainConfig(epochs=2, lr=1e-3, batch_size=64, augment=False),
                           attacker=AttackerConfig(iterations=200)),
        },
    }


PROFILES = _profiles()


def get_profile(name: str, dataset: str, tuned_dir: str | os.PathLike | None = None, **overrides: Any) -> Profile:
    """The profile ``name`` resolved for ``dataset``: its built-in values, then the frozen tuned values
    of :func:`load_tuned` (if that file exists), then ``overrides`` (field values)."""
    check_choice("profile", name, PROFILE_NAMES)
    check_choice("dataset", dataset, DATASETS)
    p = PROFILES[name]
    d = {**p["default"], **p.get(dataset, {}), "name": name}
    tuned = load_tuned(name, dataset, tuned_dir)
    if tuned:
        d = _with_tuned(Profile.from_dict(d, where=f"profile {name!r}"), tuned)
    d = {**d, **overrides, "name": name}
    return Profile.from_dict(d, where=f"profile {name!r}")


# Frozen tuned hyperparameters: <dir>/<profile>-<dataset>.json, written by the tuning tool.
TUNED_DIR = Path(__file__).resolve().parents[1] / "tuned"
TUNED_KEYS = tuple(f"{s}-{d}" for s in SCHEMES for d in ("dense", "sparse"))


def tuned_path(profile: str, dataset: str, tuned_dir: str | os.PathLike | None = None) -> Path:
    """Where the tuned values of (profile, dataset) live: ``tuned_dir``, else ``$ADVUNLEARN_TUNED_DIR``,
    else ``advunlearn/tuned/``; the file is ``<profile>-<dataset>.json``."""
    folder = tuned_dir if tuned_dir is not None else os.environ.get("ADVUNLEARN_TUNED_DIR") or TUNED_DIR
    return Path(folder) / f"{profile}-{dataset}.json"


def load_tuned(profile: str, dataset: str, tuned_dir: str | os.PathLike | None = None) -> dict:
    """The frozen tuned values ``{"<scheme>-<dense|sparse>": {"<method>": {hparam: value}}}`` of
    (profile, dataset), or {} when there is no such file.  Method and hyperparameter names and values
    are checked when the profile is built."""
    path = tuned_path(profile, dataset, tuned_dir)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"tuned values {path}: not readable JSON ({e})") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"tuned values {path}: must be an object {{\"<scheme>-<dense|sparse>\": "
                          "{\"<method>\": {hparam: value}}}")
    for key, by_method in data.items():
        if key not in TUNED_KEYS:
            raise ConfigError(f"tuned values {path}: unknown key {key!r}; allowed keys: {list(TUNED_KEYS)}")
        if not isinstance(by_method, Mapping) or not all(isinstance(v, Mapping) for v in by_method.values()):
            raise ConfigError(f"tuned values {path}: {key!r} must map method names to {{hparam: value}}")
    return data


def _with_tuned(prof: Profile, tuned: Mapping) -> dict:
    """``prof``'s fields with the tuned values merged in: Ours' (and its ablation's) into ``unlearn``
    at the tuned key, every other method's into ``methods[method][key]``."""
    unlearn = dict(prof.unlearn)
    methods = {m: {k: dict(v) for k, v in by_key.items()} for m, by_key in prof.methods.items()}
    for key, by_method in tuned.items():
        scheme, density = key.split("-")
        for m, hp in by_method.items():
            spec = get(m)
            if getattr(spec.module, "PROFILE_FIELD", None) == "unlearn":
                if spec.fixed:
                    raise ConfigError(f"tuned values [{key!r}][{m!r}]: {m!r} is a variant of a method whose "
                                      f"values live in the profile's unlearn settings; tune that method instead")
                base = unlearn.get(key) or prof.unlearn_for(scheme, 0.5 if density == "sparse" else 0.0)
                unlearn[key] = base.updated(**hp)
            else:
                methods.setdefault(m, {}).setdefault(key, {}).update(hp)
    return {**{f.name: getattr(prof, f.name) for f in fields(prof)}, "unlearn": unlearn, "methods": methods}


def profile_to_dict(p: Profile) -> dict:
    d = dataclasses.asdict(p)
    d["unlearn"] = {k: v.to_dict() for k, v in p.unlearn.items()}
    return d


__all__ = ["Profile", "get_profile", "profile_to_dict", "PROFILES", "PAPER_UNLEARN", "load_tuned", "tuned_path",
           "TUNED_DIR", "TUNED_KEYS"]
