"""The foundation every layer stands on: settings and their checks (:mod:`~advunlearn.core.config`), the
artifact store (:mod:`~advunlearn.core.store`), the data on the device and its splits
(:mod:`~advunlearn.core.data`), the models (:mod:`~advunlearn.core.models`), the one training loop
(:mod:`~advunlearn.core.train`), OMP pruning (:mod:`~advunlearn.core.prune`), timing, stopping on signals,
the Ray connection (:mod:`~advunlearn.core.cluster`) and the providers registered from above
(:mod:`~advunlearn.core.providers`).  It imports no other layer.
"""
