"""The papermill batch runner: a YAML grid expanded into notebook runs, resumable, then the report.

A config (see ``configs/``)::

    name: demo                   # results go to results/<name> unless `results:` says otherwise
    notebook: 04_evaluation      # the notebook every run executes (from notebooks/)
    timeout: 900                 # seconds per run; a run past it is killed and recorded as failed
    grid:                        # the cartesian product of these lists gives the runs
      dataset: [digits]
      scheme: [random, class]
      sparsity: [0.0, 0.95]
      seed: [0, 1, 2, 3, 4]
    params:                      # fixed notebook parameters for every run
      profile: cpu
    jobs: auto                   # runs side by side (local backend): N, or auto = one single-threaded
                                 # run per core without CUDA, one run at a time with a GPU (--jobs overrides)

Each run gets ``<results>/runs/<run-id>/`` with ``params.json``, the executed notebook,
``result.json`` (the records the notebook writes) and ``status.json`` written last.  Run again
after a crash or a kill: runs whose status is ``done`` are skipped, the others are redone.  A done
run also records a fingerprint of the package's profile settings
(:func:`~advunlearn.batch.runs.settings_fingerprint`); when the profiles
(:mod:`advunlearn.experiments.profiles`) or a method's version have changed since, the run is redone
rather than kept stale.  Models and intermediate artifacts live in ``<results>/store`` and are shared
by all runs, so a redone run reuses whatever its killed predecessor had finished.  At the end ``results.csv`` and the report
(``report/``) are built from every finished run.

The modules, top to bottom: :mod:`~advunlearn.batch.grid` (``run_batch``: the runner),
:mod:`~advunlearn.batch.ray_backend` (the Ray backend, a plugin the runner calls),
:mod:`~advunlearn.batch.publish` (records, ``results.csv``, publishing), :mod:`~advunlearn.batch.runs`
(one run: its id, status and papermill execution) and :mod:`~advunlearn.batch.config` (the YAML).
"""

from .config import BatchConfig, load_config, notebook_parameters  # noqa: F401
from .grid import run_batch  # noqa: F401
from .publish import collect, publish  # noqa: F401
from .runs import execute_run, run_id  # noqa: F401

__all__ = ["run_batch", "load_config", "execute_run", "collect", "run_id", "BatchConfig", "notebook_parameters",
           "publish"]
