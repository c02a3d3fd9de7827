"""advunlearn: Discriminative Adversarial Unlearning, a reference implementation.

The subpackages are the architecture, top to bottom (``docs/architecture.md``): ``cli``;
``batch``, ``course``, ``report``; ``studies``; ``experiments``; ``evaluation`` and ``methods``;
``dau`` (the paper's method); ``core``.  Each imports only from the layers below it.

This package stands above them all: it re-exports the names notebooks and users reach for
(``from advunlearn import load_dataset, make_splits, ...``; each is imported when first asked for,
so ``import advunlearn`` stays light) and registers the providers a lower layer asks for
(:mod:`advunlearn.core.providers`).

The core imports only torch, numpy, scikit-learn and safetensors; plotting, widgets and papermill
are imported lazily by the modules that need them.
"""

__version__ = "0.1.0"

from .core import providers as _providers
from .core.config import ConfigError  # noqa: F401
from .course import fast_mode  # noqa: F401


def _memorized_splits(exp):
    """The memorized scheme's splits for :class:`~advunlearn.experiments.experiment.Experiment`:
    :func:`advunlearn.studies.memorization.memorized_splits` (memorisation models, a layer above)."""
    from .studies.memorization import memorized_splits

    return memorized_splits(exp)


_providers.register("memorized_splits", _memorized_splits)

# name -> the module (under advunlearn) that defines it
_EXPORTS = {
    "load_dataset": "core.data", "make_splits": "core.data", "build_model": "core.models", "omp": "core.prune",
    "get_profile": "experiments.profiles",
    "cross_correlation": "dau.losses", "barlow_twins_loss": "dau.losses", "adversarial_unlearn": "dau.unlearn",
    "modified_entropy": "evaluation.mia", "svc_mia_efficacy": "evaluation.mia",
    "avg_disparity": "evaluation.metrics", "evaluate": "evaluation.metrics",
    "Experiment": "experiments.experiment", "run_experiment": "experiments.runner",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = ["ConfigError", "fast_mode", *_EXPORTS]
