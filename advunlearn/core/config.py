"""Settings for every stage of an experiment, and their validation.

``TrainConfig`` (pretraining and fine-tuning recipes), ``UnlearnConfig`` (Algorithm 1's
hyperparameters) and ``AttackerConfig`` (the attacker), the allowed names (datasets, models,
schemes, profiles) and the checks every layer uses: a bad value is a :class:`ConfigError` that names
the field and the allowed values.  The named profiles that bundle these settings per dataset are
:mod:`advunlearn.experiments.profiles`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

DATASETS = ("digits", "fashion-mnist", "cifar10", "cifar100")
MODELS = ("mlp", "cnn", "resnet18")
# memorized: a random-size forget set of the most memorised training samples (advunlearn.studies.memorization)
SCHEMES = ("random", "class", "memorized")
SCHEDULES = ("cosine", "multistep", "constant")
PROFILE_NAMES = ("paper", "gpu", "cpu", "tiny")
# Profile.unlearn keys, as Profile.unlearn_for looks them up: "<scheme>-<dense|sparse>", then "<scheme>".
# (the memorized scheme forgets a set of the random scheme's size and uses the random scheme's settings)
UNLEARN_KEYS = tuple(f"{s}-{d}" for s in ("random", "class") for d in ("dense", "sparse")) + ("random", "class")


# Seeds.  The code seeds its generators with the experiment's seed plus fixed offsets (e.g.
# ``seed + 10_000`` for Retrain's initialisation, ``seed + 1299709`` for the evaluation noise in
# dau/history.py); 1,299,709 is the largest (tests/test_bad_input.py checks the source for larger ones).
# A seed is allowed up to the value at which seed + offset still fits a signed 32-bit integer, the
# narrowest seed any generator here or in the libraries it feeds takes (NumPy's legacy RandomState
# and scikit-learn's random_state: < 2**32; torch.Generator.manual_seed: < 2**64).  The reference
# models' seeds, seed * 1000 + 1 + i (evaluation/strong.py), go to torch alone and stay below 2**41.
MAX_SEED_OFFSET = 1_299_709
MAX_SEED = 2**31 - 1 - MAX_SEED_OFFSET


class ConfigError(ValueError):
    """A setting is invalid; the message names the field and the allowed values."""


def check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}")


def check_range(name: str, value: Any, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False, hi_open: bool = False, integer: bool = False) -> int | float:
    """Raise ConfigError unless lo <= value <= hi (open ends where asked); return the value.

    Any real number is accepted (numpy scalars included) and returned as a Python ``int`` or
    ``float``; with ``integer=True`` an integral float (``10.0``) is returned as ``int`` and a
    fractional one (``10.5``) refused.  Python ints and floats come back unchanged.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy's bool_ is not Real
        raise ConfigError(f"{name}={value!r} must be a number")
    if type(value) not in (int, float):  # numpy scalars, Fraction, ...: the Python equivalent
        value = int(value) if isinstance(value, numbers.Integral) else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} must be finite")
    if integer:
        if value != int(value):
            raise ConfigError(f"{name}={value!r} must be an integer")
        value = int(value)
    bad = (lo is not None and (value <= lo if lo_open else value < lo)) or \
          (hi is not None and (value >= hi if hi_open else value > hi))
    if bad:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else str(lo) if isinstance(lo, int) else f"{lo:g}"
        hi_s = "inf" if hi is None else str(hi) if isinstance(hi, int) else f"{hi:g}"
        raise ConfigError(f"{name}={value!r} is out of range; allowed: {left}{lo_s}, {hi_s}{right}")
    return value


def check_seed(value: Any, name: str = "seed") -> int:
    """``value`` as an int in [0, MAX_SEED]; ConfigError naming the range otherwise."""
    return check_range(name, value, 0, MAX_SEED, integer=True)


class _Checked:
    """Mixin: ``from_dict`` refuses unknown keys and names the allowed ones."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, where: str = ""):
        if d is not None and not isinstance(d, Mapping):
            raise ConfigError(f"{where or cls.__name__} must be a mapping of field names to values, "
                              f"not {type(d).__name__}; allowed keys: {[f.name for f in fields(cls)]}")
        d = dict(d or {})
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown} in {where or cls.__name__}; allowed keys: {names}")
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def updated(self, **kw):
        return type(self).from_dict({**self.to_dict(), **kw}, where=type(self).__name__)

    def _check(self, name: str, *args, **kw) -> None:
        """check_range on field ``name``, storing the normalised value (an int for integer fields)."""
        object.__setattr__(self, name, check_range(name, getattr(self, name), *args, **kw))


@dataclass(frozen=True)
class TrainConfig(_Checked):
    """One SGD recipe, used by pretraining, retraining and fine-tuning."""

    epochs: int = 30
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    schedule: str = "cosine"
    milestones: tuple = (0.5, 0.75)  # fractions of training for the multistep schedule
    warmup_epochs: float = 0.0
    augment: bool = True
    label_smoothing: float = 0.0

    def __post_init__(self):
        self._check("epochs", 1, integer=True)
        self._check("lr", 0, lo_open=True)
        self._check("momentum", 0, 1, hi_open=True)
        self._check("weight_decay", 0)
        self._check("batch_size", 1, integer=True)
        check_choice("schedule", self.schedule, SCHEDULES)
        self._check("warmup_epochs", 0)
        self._check("label_smoothing", 0, 1, hi_open=True)
        # lr_factor (train.py) compares each milestone with the fraction of training done, t in [0, 1).
        ms = self.milestones
        if hasattr(ms, "tolist") and not isinstance(ms, (str, bytes)):  # a numpy array or tensor
            ms = ms.tolist()
        if not isinstance(ms, (list, tuple)):
            raise ConfigError(f"milestones={ms!r} must be a list of fractions of training in (0, 1), "
                              "e.g. [0.5, 0.75]")
        ms = tuple(check_range(f"milestones[{i}]", m, 0, 1, lo_open=True, hi_open=True) for i, m in enumerate(ms))
        object.__setattr__(self, "milestones", ms)


@dataclass(frozen=True)
class UnlearnConfig(_Checked):
    """Algorithm 1's settings (paper section 4.2 for the ``paper`` profile)."""

    alpha: float = 0.9              # weight of the attacker's log-likelihood L_A in the defender loss
    beta: float = 1e-3              # weight of the Barlow-Twins regulariser V_ss
    lambd: float = 5e-3             # off-diagonal weight inside V_ss
    lr: float = 0.01                # defender learning rate (eta_D)
    attacker_lr: float = 1e-3       # attacker learning rate (eta_A); SAMIA's SGD rate
    iterations: int = 300           # defender steps
    batch_size: int = 128           # B, for D_r, D_f and D_v batches alike
    attacker_steps: int = 1         # k attacker steps per defender step
    alpha_off_after: int | None = None  # class-wise: alpha -> 0 after this many iterations
    loss: str = "minimax"           # "minimax" (eq. 1) or "nonsaturating" (section 3.3)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = True
    sensitivity_noise: float = 1e-3  # epsilon of the attacker's sensitivity feature
    record_every: int = 10          # history record period (iterations)

    def __post_init__(self):
        self._check("alpha", 0)
        self._check("beta", 0)
        self._check("lambd", 0)
        self._check("lr", 0, lo_open=True)
        self._check("attacker_lr", 0, lo_open=True)
        self._check("iterations", 1, integer=True)
        self._check("batch_size", 2, integer=True)
        self._check("attacker_steps", 0, integer=True)
        if self.alpha_off_after is not None:
            self._check("alpha_off_after", 0, integer=True)
        check_choice("loss", self.loss, ("minimax", "nonsaturating"))
        self._check("momentum", 0, 1, hi_open=True)
        self._check("weight_decay", 0)
        self._check("sensitivity_noise", 0, lo_open=True)
        self._check("record_every", 1, integer=True)


@dataclass(frozen=True)
class AttackerConfig(_Checked):
    """SAMIA attacker pretraining (Yuan & Zhang's recipe: SGD lr 1e-3, momentum 0.9, wd 5e-4, batch 128)."""

    iterations: int = 1000
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    optimizer: str = "sgd"
    d_model: int = 64
    heads: int = 4
    layers: int = 3
    ff: int = 128
    dropout: float = 0.2
    noise_samples: int = 10
    sensitivity_noise: float = 1e-3

    def __post_init__(self):
        self._check("iterations", 0, integer=True)
        self._check("lr", 0, lo_open=True)
        self._check("momentum", 0, 1, hi_open=True)
        self._check("weight_decay", 0)
        self._check("batch_size", 2, integer=True)
        check_choice("optimizer", self.optimizer, ("sgd", "adam"))
        self._check("d_model", 1, integer=True)
        self._check("heads", 1, integer=True)
        self._check("layers", 1, integer=True)
        self._check("ff", 1, integer=True)
        if self.d_model % self.heads:
            raise ConfigError(f"d_model={self.d_model} must be divisible by heads={self.heads}")
        self._check("dropout", 0, 1, hi_open=True)
        self._check("noise_samples", 1, integer=True)
        self._check("sensitivity_noise", 0, lo_open=True)


__all__ = [
    "ConfigError", "TrainConfig", "UnlearnConfig", "AttackerConfig", "DATASETS", "MODELS", "SCHEMES", "SCHEDULES",
    "PROFILE_NAMES", "UNLEARN_KEYS", "check_choice", "check_range", "check_seed", "MAX_SEED", "replace",
]
