"""The course around the package: the notebooks' fast mode, and where the notebooks and configs live.

Fast mode
    Every notebook calls ``FAST = fast_mode(globals(), ...)`` in the cell after its parameters.  With
    ``ADVUNLEARN_FAST=1`` (CI, nbval, a first look) it replaces, unconditionally, ``dataset`` by
    ``"digits"``, ``profile`` by ``"tiny"`` and every name given as a keyword by its value, after
    checking the values it replaces (so a bad parameter still fails as it would without fast mode),
    and prints one line that says so.  It also points ``results`` at ``$ADVUNLEARN_STORE`` when set.

The course files
    In the source tree the notebooks and batch configs are the top-level ``notebooks/`` and
    ``configs/`` folders; a built wheel carries copies under ``advunlearn/course/`` (setup.py copies
    them at build time).  :func:`notebook_dir` and :func:`config_dir` find whichever is there, and
    :func:`copy_course` (``advunlearn notebooks DIR``) copies the course into a working folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, MutableMapping

FAST_ENV = "ADVUNLEARN_FAST"
STORE_ENV = "ADVUNLEARN_STORE"
FAST_BASE = {"dataset": "digits", "profile": "tiny"}

PACKAGE = Path(__file__).resolve().parent.parent  # advunlearn/ (the wheel carries the course in advunlearn/course/)
SOURCE_ROOT = PACKAGE.parent


def is_fast() -> bool:
    """Whether ``ADVUNLEARN_FAST=1`` is set."""
    return os.environ.get(FAST_ENV, "0") == "1"


def fast_mode(ns: MutableMapping[str, Any], **shrink: Any) -> bool:
    """Apply fast mode to a notebook's parameters in ``ns`` (its ``globals()``); return whether it is on.

    Sets ``ns["FAST"]``.  In fast mode ``dataset`` becomes ``"digits"``, ``profile`` becomes ``"tiny"``
    and every keyword in ``shrink`` replaces the parameter of that name, whatever the notebook was
    given (papermill parameters included).  ``results`` follows ``$ADVUNLEARN_STORE`` in both modes.
    """
    from ..core.config import DATASETS, PROFILE_NAMES, check_choice

    fast = is_fast()
    ns["FAST"] = fast
    store = os.environ.get(STORE_ENV)
    if store and "results" in ns:
        ns["results"] = store  # CI points every notebook at a scratch store
    if not fast:
        return False
    # check what is replaced first: a bad parameter fails in fast mode as it would without it
    if "dataset" in ns:
        check_choice("dataset", ns["dataset"], DATASETS)
    if "profile" in ns:
        check_choice("profile", ns["profile"], PROFILE_NAMES)
    changed = []
    for k, v in {**FAST_BASE, **shrink}.items():
        if k in FAST_BASE and k not in ns:
            continue
        old = ns.get(k, "-")
        ns[k] = v
        if old != v:
            changed.append(f"{k} {v!r} (not {old!r})")
    print(f"FAST MODE ({FAST_ENV}=1): " + (", ".join(changed) or "nothing to change")
          + ". Numbers below are fast-mode numbers, not the testbed's.")
    return True


# ---- the course's configuration of Ours ---------------------------------------------------------
# 05's grid around the course's (α, β): off, the tuned value, and a strong multiple of it.
GRID_ALPHA_FACTORS = (0.0, 1.0, 4.0)
GRID_BETA_FACTORS = (0.0, 1.0, 10.0)


def tuned_source(exp) -> dict:
    """Where Ours' values for ``exp`` come from: ``{"file", "key", "values", "tuned"}``.

    ``file`` is the tuned file of (profile, dataset) (``advunlearn tune --freeze`` writes it; see
    docs/tuning.md), ``key`` the setting (``random-dense`` ...), ``values`` Ours' frozen values there
    ({} when the file or the setting has none: the profile's built-in values apply)."""
    from ..experiments.profiles import load_tuned, tuned_path

    scheme = "random" if exp.scheme == "memorized" else exp.scheme
    key = f"{scheme}-{'sparse' if exp.sparsity > 0 else 'dense'}"
    path = tuned_path(exp.profile, exp.dataset)
    values = dict(load_tuned(exp.profile, exp.dataset).get(key, {}).get("ours", {}))
    return {"file": str(path), "key": key, "values": values, "tuned": bool(values)}


def describe_config(exp, cfg) -> str:
    """One paragraph (plain text) saying which of ``cfg``'s α, β, iterations and lr are the frozen tuned
    values and which were given as parameters."""
    src = tuned_source(exp)
    try:
        shown = str(Path(src["file"]).relative_to(SOURCE_ROOT))
    except ValueError:
        shown = src["file"]
    parts = []
    for k in ("alpha", "beta", "iterations", "lr"):
        v = getattr(cfg, k)
        if src["tuned"] and k in src["values"]:
            origin = "tuned" if src["values"][k] == v else f"parameter (tuned: {src['values'][k]:.4g})"
        else:
            origin = "profile default"
        parts.append(f"{k} = {v:.4g} ({origin})")
    where = (f"Ours' values for {src['key']} on {exp.dataset}, profile {exp.profile}: {shown}"
             if src["tuned"] else f"no tuned values for {src['key']} in {shown}: profile {exp.profile}'s built-in values")
    return where + "\n  " + "; ".join(parts)


def course_grid(alpha: float, beta: float, alphas: list | tuple = (), betas: list | tuple = ()) -> tuple[list, list]:
    """05's grid: the given ``alphas``/``betas``, or, where empty, the course's value times
    :data:`GRID_ALPHA_FACTORS` / :data:`GRID_BETA_FACTORS` (0, the value, a strong multiple), so the
    course's (α, β) is a grid point with a weak and a strong setting on each side."""
    a = sorted({float(x) for x in alphas}) if alphas else sorted({float(f * alpha) for f in GRID_ALPHA_FACTORS})
    b = sorted({float(x) for x in betas}) if betas else sorted({float(f * beta) for f in GRID_BETA_FACTORS})
    return a, b


# ---- the course files -------------------------------------------------------------------------
def course_root() -> Path:
    """The folder holding ``notebooks/`` and ``configs/``: the installed copy, else the source tree."""
    installed = PACKAGE / "course"
    if (installed / "notebooks").is_dir():
        return installed
    if (SOURCE_ROOT / "notebooks").is_dir():
        return SOURCE_ROOT
    raise FileNotFoundError(f"no course files: neither {installed / 'notebooks'} nor {SOURCE_ROOT / 'notebooks'} "
                            "exists (a wheel built without setup.py's course step?)")


def notebook_dir() -> Path:
    return course_root() / "notebooks"


def config_dir() -> Path:
    return course_root() / "configs"


def course_files(root: Path | None = None) -> list[Path]:
    """The course's files, relative to ``root``: the notebooks (solutions included) and the configs."""
    root = Path(root or course_root())
    pats = ("notebooks/*.ipynb", "notebooks/solutions/*.ipynb", "configs/*.yaml")
    return sorted(p.relative_to(root) for pat in pats for p in root.glob(pat))


def copy_course(dest: str | os.PathLike, overwrite: bool = False) -> list[Path]:
    """Copy the notebooks and configs into ``dest`` (``dest/notebooks``, ``dest/configs``); return the copies.

    Existing files are kept unless ``overwrite`` (a student's edited notebook is never replaced silently).
    """
    root, dest = course_root(), Path(dest)
    out = []
    for rel in course_files(root):
        target = dest / rel
        if target.exists() and not overwrite:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
        out.append(target)
    return out


__all__ = ["fast_mode", "is_fast", "tuned_source", "describe_config", "course_grid", "one_seed_tables", "cost_summary", "course_root", "notebook_dir", "config_dir", "course_files", "copy_course"]


# ---- 04's tables and costs ------------------------------------------------------------------------
def one_seed_tables(tables, records):
    """``tables`` (report.Table) with a caption that says what a single seed's cells are: with records
    of one seed there is no ± to promise; with several the report's caption stands."""
    import dataclasses

    seeds = sorted({r.get("seed") for r in records})
    if len(seeds) != 1:
        return list(tables)
    note = (f"One seed (seed {seeds[0]}): each cell is that run's value, with no spread; a batch over several "
            "seeds gives mean ± std. Avg. Disparity against this seed's Retrain; run time of this run.")
    return [dataclasses.replace(t, note=note) for t in tables]


def cost_summary(records, source: str, device) -> str:
    """Ours' run time against Retrain's (mean over the records' seeds), and every method's, in one line each."""
    from statistics import mean

    from ..methods import label

    times: dict[str, list[float]] = {}
    for r in records:
        if r.get("run_time_s") is not None:
            times.setdefault(r["method"], []).append(float(r["run_time_s"]))
    if not times:
        return f"{source}: no run times"
    avg = {m: mean(v) for m, v in times.items()}
    lines = [f"{source}, device {device}: run time per method (s, mean over {max(map(len, times.values()))} run(s)): "
             + ", ".join(f"{label(m)} {t:.1f}" for m, t in avg.items())]
    if "ours" in avg and "retrain" in avg and avg["retrain"] > 0:
        lines.append(f"  Ours {avg['ours']:.1f}s against Retrain {avg['retrain']:.1f}s: "
                     f"{avg['ours'] / avg['retrain']:.1f} × Retrain's cost")
    return "\n".join(lines)
