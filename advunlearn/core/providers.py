"""Providers: what a lower layer needs but only a higher layer makes, registered from above.

A layer never imports the layers above it (``docs/architecture.md``).  Where it needs something
that only a higher layer can make, it asks for a provider by name here, and the package's
``__init__`` (which stands above every layer) registers one.  One today:

``memorized_splits``  ``fn(exp) -> Splits``: the memorized scheme's splits, whose forget set is the
                      most memorised part of D, scored by memorisation models
                      (:func:`advunlearn.studies.memorization.memorized_splits`); asked for by
                      :class:`advunlearn.experiments.experiment.Experiment`.
"""

from __future__ import annotations

from typing import Callable

_PROVIDERS: dict[str, Callable] = {}


def register(name: str, fn: Callable) -> None:
    """Make ``fn`` the provider of ``name`` (a later registration replaces an earlier one)."""
    _PROVIDERS[name] = fn


def provider(name: str) -> Callable:
    """The provider registered for ``name``; LookupError naming the registered ones otherwise."""
    try:
        return _PROVIDERS[name]
    except KeyError:
        raise LookupError(f"no provider {name!r} is registered (registered: {sorted(_PROVIDERS) or 'none'}); "
                          "the advunlearn package registers its providers when it is imported") from None


__all__ = ["register", "provider"]
