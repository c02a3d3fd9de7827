"""One setting's stored artifacts and the orchestration of its methods.

:mod:`~advunlearn.experiments.profiles` (the named recipes), :mod:`~advunlearn.experiments.experiment`
(:class:`~advunlearn.experiments.experiment.Experiment`: data, splits, θ0, Retrain, all in the store),
:mod:`~advunlearn.experiments.workers` (worker pools: processes or Ray tasks) and
:mod:`~advunlearn.experiments.runner` (every method run and evaluated once: orchestration only).
"""
