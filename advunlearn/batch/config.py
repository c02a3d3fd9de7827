"""A batch's YAML config: read, checked before any run starts, and expanded into its runs.

See :mod:`advunlearn.batch` for the format.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.config import DATASETS, PROFILE_NAMES, SCHEMES, ConfigError, check_choice, check_range, check_seed
from ..course import notebook_dir


NOTEBOOK_DIR = notebook_dir()  # the source tree's notebooks/, or the installed package's copy


TOP_KEYS = ("name", "notebook", "timeout", "grid", "params", "results", "report", "description", "backend", "jobs")


# What each notebook parameter accepts; the batch checks every value before any run starts.
# Classes per dataset, to check forget_class before any run starts (the loaders check it again).
NUM_CLASSES = {"digits": 10, "fashion-mnist": 10, "cifar10": 10, "cifar100": 100}


PARAM_CHECKS = {
    "dataset": lambda v: check_choice("dataset", v, DATASETS),
    "scheme": lambda v: check_choice("scheme", v, SCHEMES),
    "profile": lambda v: check_choice("profile", v, PROFILE_NAMES),
    "sparsity": lambda v: check_range("sparsity", v, 0, 1, hi_open=True),
    "seed": lambda v: check_seed(v),
    "alpha": lambda v: v is None or check_range("alpha", v, 0),
    "beta": lambda v: v is None or check_range("beta", v, 0),
    "lr": lambda v: v is None or check_range("lr", v, 0, lo_open=True),
    "iterations": lambda v: v is None or check_range("iterations", v, 1, integer=True),
    "forget_frac": lambda v: check_range("forget_frac", v, 0, 1, lo_open=True, hi_open=True),
    "forget_class": lambda v: v is None or check_range("forget_class", v, 0, integer=True),
    "device": lambda v: check_choice("device", v, ("auto", "cpu", "cuda")),
    "strong_eval": lambda v: check_choice("strong_eval", v, (True, False)),
    "methods": lambda v: _check_methods(v),
}


def _check_methods(v):
    from ..methods import check_names

    check_names(v, where="methods")


@dataclass
class BatchConfig:
    name: str
    notebook: Path
    timeout: float
    grid: dict[str, list]
    params: dict[str, Any]
    results: Path
    report: bool = True
    jobs: int | str = 1   # runs side by side on the local backend: a number or "auto" (see resolve_jobs)

    def runs(self) -> list[dict]:
        keys = list(self.grid)
        return [{**self.params, **dict(zip(keys, combo))} for combo in itertools.product(*(self.grid[k] for k in keys))]


def notebook_parameters(nb_path: Path) -> dict[str, Any]:
    """Names and defaults of the notebook's ``parameters`` cell (read with papermill's own parser)."""
    try:
        import papermill as pm
    except ImportError:
        raise ConfigError("advunlearn batch runs the notebooks with papermill, which is not installed; "
                          "install the notebook extra: pip install -e '.[notebooks]'") from None

    return {k: v["default"] for k, v in pm.inspect_notebook(str(nb_path)).items()}


def load_config(path: str | os.PathLike, results: str | os.PathLike | None = None) -> BatchConfig:
    """Read and validate a batch YAML; every problem is a ConfigError before any run starts."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"batch config {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"batch config {path} is not a file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"batch config {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"batch config {path} is not valid YAML: {e}") from None
    if raw is None or raw == {}:
        raise ConfigError(f"batch config {path} is empty; give at least a grid or params, e.g. "
                          "grid: {seed: [0, 1]} and params: {dataset: digits, profile: tiny} (see configs/)")
    if not isinstance(raw, dict):
        raise ConfigError(f"batch config {path} must be a mapping with keys {', '.join(TOP_KEYS)}")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {path}; allowed keys: {', '.join(TOP_KEYS)}")
    name = raw.get("name") or path.stem
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ConfigError(f"name={name!r} in {path} is not allowed; use letters, digits, '.', '_' and '-' "
                          "(it names the results folder)")
    for key in ("results", "notebook"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ConfigError(f"{key}={raw[key]!r} in {path} must be a string")
    nb = NOTEBOOK_DIR / f"{raw.get('notebook', '04_evaluation')}.ipynb"
    if not nb.exists():
        allowed = sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9]*.ipynb"))
        raise ConfigError(f"notebook={raw.get('notebook')!r} does not exist; allowed: {', '.join(allowed)}")
    timeout = raw.get("timeout", 1800)
    check_range("timeout", timeout, 0, lo_open=True)
    grid = raw.get("grid") or {}
    params = raw.get("params") or {}
    if not isinstance(grid, dict) or not isinstance(params, dict):
        raise ConfigError("grid and params must be mappings of notebook parameter -> value(s)")
    if not grid and not params:  # one run of the notebook's defaults (profile cpu, every method)
        raise ConfigError(f"batch config {path} names no grid and no params, so it says nothing about what to "
                          "run; give at least one, e.g. grid: {seed: [0, 1]} and params: {dataset: digits}")
    for k, v in grid.items():
        if not isinstance(v, list):
            grid[k] = [v]
        if not grid[k]:
            raise ConfigError(f"grid.{k} is an empty list: the grid would have no runs")
    allowed = notebook_parameters(nb)
    for where, d in (("grid", grid), ("params", params)):
        bad = sorted(set(d) - set(allowed) - {"result_path", "results"})
        if bad:
            raise ConfigError(f"unknown notebook parameter(s) {bad} in {where} of {path}; "
                              f"{nb.stem} accepts: {', '.join(sorted(allowed))}")
    both = sorted(set(grid) & set(params))
    if both:
        raise ConfigError(f"{both} appear in both grid and params; put each in one place")
    jobs = check_jobs(raw.get("jobs", "auto"))
    cfg = BatchConfig(name=name, notebook=nb, timeout=float(timeout), grid=grid, params=params,
                      results=Path(results or raw.get("results") or Path("results") / name),
                      report=bool(raw.get("report", True)), jobs=jobs)
    runs = cfg.runs()
    if not runs:
        raise ConfigError(f"the grid of {path} is empty: no runs")
    for r in runs:
        for k, v in r.items():
            if k in PARAM_CHECKS:
                PARAM_CHECKS[k](v)
        ds, fc = r.get("dataset", allowed.get("dataset")), r.get("forget_class")
        if fc is not None and ds in NUM_CLASSES and fc >= NUM_CLASSES[ds]:
            raise ConfigError(f"forget_class={fc} is out of range for {ds}; allowed: 0..{NUM_CLASSES[ds] - 1}")
    return cfg


def check_jobs(jobs) -> int | str:
    """``jobs`` as given: "auto" or an integer >= 1 (ConfigError otherwise)."""
    if jobs == "auto":
        return jobs
    if isinstance(jobs, str) and jobs.isdigit():
        jobs = int(jobs)
    if isinstance(jobs, bool) or not isinstance(jobs, int):
        raise ConfigError(f"jobs={jobs!r} is not allowed; use 'auto' or a whole number >= 1")
    return check_range("jobs", jobs, 1, integer=True)
