"""A batch's finished runs: collected into records and ``results.csv``, and published for the README
(``advunlearn publish SRC DEST``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..core.config import ConfigError
from ..core.store import read_json
from .config import BatchConfig
from .runs import run_id, run_status


def collect(cfg: BatchConfig) -> tuple[list[dict], list[dict]]:
    """(records of finished runs, status of every run) in grid order."""
    recs, statuses = [], []
    for params in cfg.runs():
        d = cfg.results / "runs" / run_id(params)
        st = run_status(d) or {"state": "pending", "params": params}
        st = {**st, "run": d.name}
        statuses.append(st)
        if st.get("state") == "done" and (d / "result.json").exists():
            data = read_json(d / "result.json")
            for r in data if isinstance(data, list) else [data]:
                recs.append({**r, "run": d.name})
    return recs, statuses


PUBLISHED_FILES = ("params.json", "result.json", "status.json")


def publish(src, dest, *, allow_partial: bool = False, log=None) -> dict:
    """Copy a batch's finished runs into ``dest`` (e.g. ``results/published/<name>``) for the README.

    Keeps, per finished run, only the small records (``params.json``, ``result.json`` and
    ``status.json``, which holds the settings fingerprint), not the executed notebook, and writes
    ``dest/results.csv``.  Refuses a batch with unfinished or failed runs unless ``allow_partial``.
    Runs already in ``dest`` that the batch no longer has are removed, so ``dest`` is exactly the batch;
    ``log`` (e.g. ``print``) is told each one before it goes.  Nothing in ``src`` is ever changed:
    ``dest`` may not be ``src`` (by any path), lie inside it or hold it.  Every check (the folders, each
    finished run's ``result.json``) comes before anything is written or removed.
    Returns ``{"runs": n, "rows": n, "skipped": [run, ...], "removed": [run, ...]}``.
    """
    src, dest = Path(src), Path(dest)
    if src.exists() and not src.is_dir():
        raise ConfigError(f"SRC {src} is a file; give the results folder of a batch "
                          "(the --results of `advunlearn batch`, e.g. results/fashion-mnist-table1)")
    runs = src / "runs"
    if not runs.is_dir():
        raise ConfigError(f"{src} has no runs/ folder; give the results folder of a batch "
                          "(the --results of `advunlearn batch`, e.g. results/fashion-mnist-table1)")
    _check_publish_dest(src, dest)
    done, skipped = [], []
    for d in sorted(p for p in runs.iterdir() if p.is_dir()):
        st = run_status(d)
        if st and st.get("state") == "done" and (d / "result.json").exists():
            done.append(d)
        else:
            skipped.append(d.name)
    if skipped and not allow_partial:
        raise ConfigError(f"{len(skipped)} run(s) of {src} are not done ({', '.join(skipped[:4])}"
                          f"{', ...' if len(skipped) > 4 else ''}); finish the batch, or pass --partial to "
                          "publish the finished runs only")
    if not done:
        raise ConfigError(f"{src} has no finished run to publish")
    recs = []
    for d in done:  # every record read before anything is written: a corrupt one stops the publishing here
        data = read_json(d / "result.json")
        recs += [{**r, "run": d.name} for r in (data if isinstance(data, list) else [data])]
    out_runs = dest / "runs"
    keep = {d.name for d in done}
    stale = sorted(p for p in out_runs.iterdir() if (p.is_dir() or p.is_symlink()) and p.name not in keep) \
        if out_runs.is_dir() else []
    out_runs.mkdir(parents=True, exist_ok=True)
    for old in stale:
        if log:
            log(f"removing {old}: not a finished run of {src}")
        if old.is_symlink():
            old.unlink()  # the link only, never what it points to
        else:
            shutil.rmtree(old)
    for d in done:
        target = out_runs / d.name
        if target.is_symlink():
            target.unlink()
        target.mkdir(exist_ok=True)
        for f in PUBLISHED_FILES:
            if (d / f).exists():
                if (target / f).is_symlink():
                    (target / f).unlink()
                shutil.copyfile(d / f, target / f)
    write_results_csv(recs, dest / "results.csv")
    return {"runs": len(done), "rows": len(recs), "skipped": skipped, "removed": [p.name for p in stale]}


def _check_publish_dest(src: Path, dest: Path) -> None:
    """ConfigError unless ``dest`` can be published into without touching ``src``."""
    rs, rd = src.resolve(), dest.resolve()
    same = rs == rd or (dest.exists() and os.path.samefile(src, dest))
    if same:
        raise ConfigError(f"SRC {src} and DEST {dest} are the same folder; publish into another folder, "
                          f"e.g. results/published/{rs.name}")
    if rs in rd.parents:
        raise ConfigError(f"DEST {dest} lies inside SRC {src}; publish into a folder outside the batch's, "
                          f"e.g. results/published/{rs.name}")
    if rd in rs.parents:
        raise ConfigError(f"SRC {src} lies inside DEST {dest}, whose old runs publish removes; publish into "
                          f"another folder, e.g. results/published/{rs.name}")
    for p, what in ((dest, "a folder"), (dest / "runs", "a folder")):
        if p.exists() and not p.is_dir():
            raise ConfigError(f"DEST {dest}: {p} is a file; DEST must be {what} (e.g. results/published/{rs.name})")
    if (dest / "results.csv").is_dir():
        raise ConfigError(f"DEST {dest}: {dest / 'results.csv'} is a folder; publish writes a file there")
    from ..core.store import folder_to_write

    folder_to_write("DEST", dest, f"results/published/{rs.name}")


def write_results_csv(recs: list[dict], path: Path) -> None:
    import csv
    import io

    cols = ["run", "dataset", "scheme", "sparsity", "seed", "profile", "model", "method", "UA", "MIA_efficacy",
            "RA", "TA", "VA", "run_time_s"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in recs:
        w.writerow(r)
    from ..core.store import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue().encode())
