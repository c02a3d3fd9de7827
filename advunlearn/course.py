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

PACKAGE = Path(__file__).resolve().parent
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
    from .config import DATASETS, PROFILE_NAMES, check_choice

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


__all__ = ["fast_mode", "is_fast", "course_root", "notebook_dir", "config_dir", "course_files", "copy_course"]
