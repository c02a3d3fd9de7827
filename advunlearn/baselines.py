"""Compatibility: the baselines now live in :mod:`advunlearn.methods`, one module per method.

``run_baseline(name, exp, **hparams)`` is :func:`advunlearn.methods.run_method` (any registered
method); the FF and IU helpers are re-exported from their modules.  New code imports from
``advunlearn.methods`` directly.
"""

from __future__ import annotations

from .methods import run_method
from .methods._common import fisher_diagonal, per_sample_grad_fn
from .methods.ff import ff_apply, ff_noise_std
from .methods.iu import influence_direction, woodfisher_ihvp


def run_baseline(name: str, exp, **hparams):
    """``(model, info)`` of method ``name`` on ``exp``: :func:`advunlearn.methods.run_method`."""
    return run_method(exp, name, **hparams)


__all__ = ["run_baseline", "fisher_diagonal", "ff_noise_std", "ff_apply", "influence_direction", "woodfisher_ihvp",
           "per_sample_grad_fn"]
