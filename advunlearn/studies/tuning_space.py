"""The tuner's search spaces: each method's declared ``SPACE``, its published values (trial 0), how
Optuna stores and draws them, and where a chosen value lies against the space's bounds (edges).

See :mod:`advunlearn.studies.tuning` for the protocol; the spaces themselves live in the method
modules (:mod:`advunlearn.methods`).
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Mapping

from ..core.config import ConfigError

# Methods that are references, not tuned: Retrain is the target itself; the ablation reuses Ours' values.
UNTUNED = ("retrain", "retrain_seed2", "ours_no_vss")
EDGE = 0.05           # a chosen value this close to a bound (fraction of the range, on the space's scale)


# ---------------------------------------------------------------------------------------------
# search spaces
# ---------------------------------------------------------------------------------------------
# Studies whose winner sat at an edge of the method's SPACE in one setting and were widened and rerun in
# that setting only (the rule of protocol 2: the study is widened, not every study of the method):
# {study name: {hparam: wider bounds}}.
WIDENED: dict[str, dict[str, tuple]] = {
    # γ weighs the min step's cross-entropy; chosen 80.9 of [0.01, 100] (lr 0.00025, α 56: the step's
    # overall scale is lr × α, γ, w_max)
    "scrub.random-sparse": {"gamma": ("log", 0.01, 1e4)},
    # class-wise forgetting wants more epochs than random: RL and SalUn chose 30 of [1, 30] in class
    # dense; class sparse, not yet run then, searches the same wider range
    "rl.class-dense": {"epochs": ("int", 1, 90)},
    "rl.class-sparse": {"epochs": ("int", 1, 90)},
    # then SalUn class dense chose a mask ratio of 0.914 of [0.05, 0.95]: class-wise, it searches up to
    # 1 (every weight salient: SalUn becomes RL); class sparse, not yet run then, the same
    "salun.class-dense": {"epochs": ("int", 1, 90), "ratio": ("float", 0.05, 1.0)},
    # ... and SalUn class sparse then chose 0.06 of [0.05, 1]: there the ratio is searched on a log
    # scale down to 0.005 (a mask of 0.5% of the weights)
    "salun.class-sparse": {"epochs": ("int", 1, 90), "ratio": ("log", 0.005, 1.0)},
    # SCRUB class dense chose T 1.92 of [1, 20]; class-wise it searches down to 0.25 (a sharpening
    # temperature); class sparse, not yet run then, the same
    "scrub.class-dense": {"T": ("float", 0.25, 20.0)},
    # ... and SCRUB class sparse then chose T 0.554 of [0.25, 20]: there T is searched on a log scale
    # down to 0.05
    "scrub.class-sparse": {"T": ("log", 0.05, 20.0)},
}


def setting_key(scheme: str, sparsity: float) -> str:
    return f"{scheme}-{'sparse' if sparsity > 0 else 'dense'}"


def study_name(method: str, scheme: str, sparsity: float) -> str:
    return f"{method}.{setting_key(scheme, sparsity)}"


def method_space(method: str, scheme: str | None = None, sparsity: float | None = None) -> dict[str, tuple]:
    """The search space of ``method`` (in ``scheme``/``sparsity``'s study: its SPACE with that study's
    :data:`WIDENED` bounds): ``{name: ("log"|"float", lo, hi) | ("int", lo, hi) | ("cat", [..])}``."""
    from ..methods import get

    space = dict(get(method).space)
    if scheme is not None and sparsity is not None:
        space.update({k: v for k, v in WIDENED.get(study_name(method, scheme, sparsity), {}).items() if k in space})
    return space


def tunable_methods() -> tuple[str, ...]:
    """Every registered method with a search space, less the references (Retrain, its replica and
    the ablation, which reuses Ours' values)."""
    from ..methods import get, names

    return tuple(n for n in names() if n not in UNTUNED and get(n).space)


def optuna_name(name: str, spec: tuple) -> str:
    """The name Optuna stores a hyperparameter under: ``1-<name>`` for a ``log1m`` one (it draws 1 - value)."""
    return f"1-{name}" if spec[0] == "log1m" else name


def to_optuna(values: Mapping[str, Any], space: Mapping[str, tuple]) -> dict[str, Any]:
    """Hyperparameter values as Optuna's parameters (what ``enqueue_trial`` takes)."""
    return {optuna_name(k, space[k]): (1.0 - v if space[k][0] == "log1m" else v) for k, v in values.items()}


def from_optuna(params: Mapping[str, Any], space: Mapping[str, tuple]) -> dict[str, Any]:
    """Optuna's parameters of a trial as hyperparameter values (the inverse of :func:`to_optuna`)."""
    out = {}
    for k, spec in space.items():
        n = optuna_name(k, spec)
        if n in params:
            out[k] = 1.0 - params[n] if spec[0] == "log1m" else params[n]
    return out


def position(value: Any, spec: tuple) -> float | None:
    """Where ``value`` lies in its space, 0 at the lower bound and 1 at the upper, on the scale the
    space draws on (log for ``log``, log(1 - value) for ``log1m``, reversed); None for a category."""
    kind, lo, hi = spec[0], spec[1], spec[-1]
    if kind == "cat" or hi == lo:
        return None
    if kind in ("log", "logint"):
        return (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
    if kind == "log1m":  # 1 - value is drawn log-uniformly; position along the value itself
        return (math.log(1 - lo) - math.log(1 - value)) / (math.log(1 - lo) - math.log(1 - hi))
    return (value - lo) / (hi - lo)


def edges(values: Mapping[str, Any], space: Mapping[str, tuple], hard: Mapping[str, Any] | None = None,
          margin: float = EDGE) -> dict[str, str]:
    """The values within ``margin`` of a bound of ``space`` that is not a hard limit: ``{name: "lo"|"hi"}``.
    ``hard``: ``{name: ("lo"|"hi", why) | {"lo"|"hi": why}}`` (a method's HARD_BOUNDS)."""
    from ..methods import hard_sides

    out = {}
    for k, v in values.items():
        if k not in space:
            continue
        pos = position(v, space[k])
        if pos is None:
            continue
        side = "lo" if pos < margin else "hi" if pos > 1 - margin else None
        if side and side not in (hard_sides(hard[k]) if hard and k in hard else {}):
            out[k] = side
    return out


def study_seed(name: str, base: int = 0) -> int:
    """Each study's own sampler seed: a hash of its name, offset by ``base`` (so no two studies share
    their random draws, and a rerun draws the same)."""
    return (zlib.crc32(name.encode()) + int(base)) % (2**31 - 1)


def suggest(trial, space: Mapping[str, tuple]) -> dict[str, Any]:
    out = {}
    for name, spec in space.items():
        kind = spec[0]
        if kind == "log1m":
            out[name] = 1.0 - trial.suggest_float(optuna_name(name, spec), 1.0 - spec[2], 1.0 - spec[1], log=True)
        elif kind == "log":
            out[name] = trial.suggest_float(name, spec[1], spec[2], log=True)
        elif kind == "float":
            out[name] = trial.suggest_float(name, spec[1], spec[2])
        elif kind == "int":
            out[name] = trial.suggest_int(name, spec[1], spec[2])
        elif kind == "logint":
            out[name] = trial.suggest_int(name, spec[1], spec[2], log=True)
        elif kind == "cat":
            out[name] = trial.suggest_categorical(name, list(spec[1]))
        else:
            raise ConfigError(f"search space of {name!r} has kind {kind!r}; allowed: 'log', 'log1m', 'float', 'int', "
                              "'logint', 'cat'")
    return out


def _clip_to_space(values: Mapping[str, Any], space: Mapping[str, tuple]) -> dict[str, Any]:
    """A default outside its space is clipped into it (Optuna refuses enqueued values outside)."""
    out = {}
    for k, v in values.items():
        spec = space[k]
        if spec[0] in ("log", "log1m", "float", "int", "logint"):
            v = min(max(v, spec[1]), spec[2])
        elif v not in spec[1]:
            continue
        out[k] = v
    return out


def _space_json(space: Mapping[str, tuple]) -> dict:
    return {k: [v[0], list(v[1])] if v[0] == "cat" else list(v) for k, v in space.items()}


def published_values(method: str, scheme: str, sparsity: float) -> dict[str, Any]:
    """Trial 0 of ``method``'s study in (scheme, sparsity): its published values, which must lie in its space."""
    from ..methods import published

    space = method_space(method, scheme, sparsity)
    values = published(method, scheme, sparsity)
    clipped = _clip_to_space(values, space)
    if clipped != values:
        raise ConfigError(f"{method}: published values {values} lie outside its search space {space}; widen SPACE")
    return values



def requeue_published(study, space: Mapping[str, tuple], anchor: Mapping[str, Any]) -> bool:
    """Queue the published values (trial 0) again when no trial of them is finished, waiting or running:
    a stop that cut trial 0 short leaves it failed (:func:`fail_stale_trials`), and Optuna does not
    retry a failed trial.  Returns whether it queued them."""
    import optuna

    S = optuna.trial.TrialState
    if any(t.user_attrs.get("default") and t.state in (S.COMPLETE, S.WAITING, S.RUNNING)
           for t in study.get_trials(deepcopy=False)):
        return False
    study.enqueue_trial(to_optuna(anchor, space), user_attrs={"default": True})
    return True


__all__ = ["WIDENED", "requeue_published", "setting_key", "study_name", "method_space", "tunable_methods", "published_values", "optuna_name", "to_optuna", "from_optuna", "position",
           "edges", "study_seed", "suggest", "UNTUNED", "EDGE"]
