"""The ``advunlearn`` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

from .core.config import DATASETS, PROFILE_NAMES, SCHEMES, ConfigError, check_choice, check_range


def _folder_to_write(flag: str, path, example: str = "") -> Path:
    from .core.store import folder_to_write

    return folder_to_write(flag, path, example)


def _file_to_write(flag: str, path, example: str = "") -> Path:
    """``path`` as a file this process can write (its folder created if missing); ConfigError otherwise."""
    import os

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give the path of the file to write, "
                          f"e.g. {path / (example or 'out.json')}")
    _folder_to_write(flag, path.parent)
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{flag} {path} is not writable; give a file you can write")
    return path


def _names(flag: str, value: str, allowed) -> list[str]:
    """A comma-separated list of names, each one of ``allowed``, at least one; ConfigError otherwise."""
    allowed = list(allowed)
    got = [x.strip() for x in value.split(",") if x.strip()]
    if not got:
        raise ConfigError(f"{flag} {value!r} names nothing; give a comma-separated subset of {', '.join(allowed)}")
    for x in got:
        if x not in allowed:
            raise ConfigError(f"{flag}: {x!r} is not allowed; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(got))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits", help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILE_NAMES)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--results", default=None, help="artifact store folder (default: $ADVUNLEARN_RESULTS or ./results/store, "
                   "the notebooks' store seen from the repo root)")
    p.add_argument("--data-root", default=None, help="folder holding the dataset files")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def cmd_pretrain(a) -> int:
    from .experiments.experiment import DEFAULT_RESULTS, Experiment

    from .core.config import check_range

    check_range("sparsity", a.sparsity, 0, 1, hi_open=True)  # before any training
    out = {}
    for sp in sorted({0.0, a.sparsity}):
        t0 = time.perf_counter()
        exp = Experiment(dataset=a.dataset, profile=a.profile, seed=a.seed, sparsity=sp, device=a.device,
                         results=a.results or DEFAULT_RESULTS, data_root=a.data_root, progress=not a.no_progress)
        model, meta = exp.original()
        acc = exp.accuracies(model)
        from .core.prune import sparsity_of

        row = {"model": exp.prof.model, "sparsity": round(sparsity_of(model), 4), "train_acc": acc["train"],
               "val_acc": acc["val"], "test_acc": acc["test"], "train_time_s": meta.get("time_s"),
               "wall_s": time.perf_counter() - t0}
        out["dense" if sp == 0 else f"sparse{sp:g}"] = row
        print(f"[{a.dataset}/{a.profile}/seed {a.seed}] {exp.prof.model} sparsity {row['sparsity']:.2%}: "
              f"train {row['train_acc']:.2f}%  val {row['val_acc']:.2f}%  test {row['test_acc']:.2f}%  "
              f"(trained in {row['train_time_s']:.1f}s)")
    if a.json:
        print(json.dumps(out, indent=2))
    return 0


def cmd_run(a) -> int:
    from .experiments.experiment import DEFAULT_RESULTS, Experiment
    from .experiments.runner import run_experiment
    from .report.tables import records_markdown

    methods = [m.strip() for m in a.methods.split(",") if m.strip()] if a.methods is not None else None
    if methods is not None:
        from .methods import check_names, names

        if not methods:
            raise ConfigError(f"--methods {a.methods!r} names no method; give a comma-separated subset of "
                              f"{', '.join(names())}, or leave it out for all of them")
        check_names(methods, where="--methods")
    if a.sparsity is not None:
        from .core.config import check_range

        check_range("sparsity", a.sparsity, 0, 1, hi_open=True)
    if a.scheme == "random" and a.forget_class is not None:
        raise ConfigError("--forget-class applies to --scheme class only; random forgetting uses --forget-frac")
    if a.scheme == "class" and a.forget_frac is not None:
        raise ConfigError("--forget-frac applies to --scheme random only; class-wise forgetting uses --forget-class")
    if a.scheme == "memorized" and a.forget_class is not None:
        raise ConfigError("--forget-class applies to --scheme class only; the memorized scheme uses --forget-frac")
    if a.forget_frac is None:
        a.forget_frac = 0.1
    if a.out is not None and Path(a.out).is_dir():  # found now, not after every method has run
        raise ConfigError(f"--out {a.out} is a folder; give the path of the JSON file to write, "
                          f"e.g. {Path(a.out) / 'records.json'}")
    exp = Experiment(dataset=a.dataset, scheme=a.scheme, sparsity=a.sparsity, seed=a.seed, profile=a.profile,
                     forget_frac=a.forget_frac, forget_class=a.forget_class, device=a.device,
                     results=a.results or DEFAULT_RESULTS, data_root=a.data_root, progress=not a.no_progress)
    print(f"[{a.dataset} {a.scheme} sparsity {a.sparsity:g} seed {a.seed} profile {a.profile}]")
    kw = {"methods": methods} if methods else {}
    ours = {k: getattr(a, k) for k in ("alpha", "beta", "lr", "iterations") if getattr(a, k) is not None}
    out = a.out or (Path(exp.results) / "experiments" / f"{_run_name(a, exp, methods, ours)}.json")
    from .evaluation.metrics import DivergedError

    try:
        recs = run_experiment(exp, strong_eval=a.strong_eval, ours_overrides=ours, out=out, **kw)
    except DivergedError as e:  # the table still shows what the other methods gave
        print(records_markdown(e.records))
        print(f"result: {out}")
        print(f"advunlearn: error: {e}", file=sys.stderr)
        return 1
    print(records_markdown(recs))
    print(f"result: {out}")
    return 0


def _run_name(a, exp, methods, ours) -> str:
    """The default file name of ``advunlearn run``'s records: everything that changes them is in it, so
    a run with other methods or values never overwrites an earlier run's file."""
    parts = [a.dataset, a.scheme, f"s{a.sparsity:g}", f"seed{a.seed}", a.profile]
    if a.scheme == "class":
        parts.append(f"class{exp.splits.forget_class}")
    elif a.forget_frac is not None and a.forget_frac != 0.1:
        parts.append(f"frac{a.forget_frac:g}")
    if methods:
        parts.append("-".join(methods))
    parts += [f"{k}{v:g}" for k, v in ours.items()]
    if a.strong_eval:
        parts.append("strong")
    return "_".join(parts)


def cmd_report(a) -> int:
    from .report import build_report, check_document, update_document

    if a.out is not None:
        if a.update or a.check:
            raise ConfigError("--out applies to the report's files only; --update and --check write no report")
        _folder_to_write("--out", a.out, "results/demo/report")
    if a.update:
        n = update_document(a.dir, a.update)
        print(f"{a.update}: {n} block(s) rewritten from {a.dir}")
        if not a.check:
            return 0
    if a.check:
        problems = check_document(a.dir, a.check)
        for p in problems:
            print(f"advunlearn: {p}", file=sys.stderr)
        if problems:
            return 1
        print(f"{a.check}: every block of {Path(a.dir).resolve().name} matches the results in {a.dir}")
        return 0
    paths = build_report(a.dir, a.out)
    for k, v in paths.items():
        print(f"{k}: {v}")
    return 0


def cmd_tune(a) -> int:
    from .studies.tuning import SETTINGS, TUNING_SEEDS, freeze, tunable_methods, tune, tuned_path
    from .studies.tuning_report import record_markdown

    # every value and path is checked here, before the first model is trained
    check_choice("dataset", a.dataset, DATASETS)
    check_choice("profile", a.profile, PROFILE_NAMES)
    check_choice("backend", a.backend, ("local", "ray"))
    check_range("--workers", a.workers, 1, integer=True)
    check_range("--trials", a.trials, 1, integer=True)
    if a.address is not None and a.backend != "ray":
        raise ConfigError(f"--address applies with --backend ray only (got --backend {a.backend})")
    tunable = tunable_methods()
    methods = list(tunable) if a.methods is None else _names("--methods", a.methods, tunable)
    allowed = {f"{s}-{'sparse' if sp > 0 else 'dense'}": (s, sp) for s, sp in SETTINGS}
    names = list(allowed) if a.settings is None else _names("--settings", a.settings, allowed)
    slots = {}
    for item in a.slots or []:
        m, _, k = item.partition("=")
        if not k.isdigit() or int(k) < 1:
            raise ConfigError(f"--slots {item!r} must be METHOD=N with N >= 1, e.g. ours=4")
        if m not in tunable:
            raise ConfigError(f"--slots {item!r}: method {m!r} is not allowed; choose from {', '.join(tunable)}")
        if m in slots:
            raise ConfigError(f"--slots names {m!r} twice ({m}={slots[m]} and {item}); give each method once")
        slots[m] = int(k)
    if "://" not in a.storage:  # an RDB URL is the database's business
        _folder_to_write("--storage", a.storage, "results/tuning")
    _folder_to_write("--results", a.results, "results/store")
    if not a.freeze:
        for flag, v in (("--tuned-dir", a.tuned_dir), ("--record", a.record)):
            if v is not None:
                raise ConfigError(f"{flag} applies with --freeze only (it says where the frozen values go); "
                                  "add --freeze or leave it out")
    else:
        # the default folder too: an installed package may be read-only
        folder = _folder_to_write("--tuned-dir", a.tuned_dir or tuned_path(a.profile, a.dataset).parent,
                                  "advunlearn/tuned")
        _file_to_write(f"--tuned-dir {folder}: the frozen values' file", tuned_path(a.profile, a.dataset, folder))
        if a.record is not None:
            _file_to_write("--record", a.record, "tuning-record.json")
    from .core.stopping import stop_on_signals

    with stop_on_signals():  # SIGTERM/SIGHUP stop it as Ctrl-C does: the workers end, exit 128 + signal
        records = tune(methods, [allowed[n] for n in names], workers=a.workers, backend=a.backend,
                       address=a.address, slots=slots, dataset=a.dataset, profile=a.profile, n_trials=a.trials,
                       seeds=a.seeds or list(TUNING_SEEDS), storage=a.storage, results=a.results,
                       data_root=a.data_root)
    rec = {"profile": a.profile, "dataset": a.dataset, "studies": records}
    print(record_markdown(rec))
    if a.freeze:
        path = freeze(records, a.profile, a.dataset, folder=a.tuned_dir, record_path=a.record)
        print(f"frozen: {path}" + (f"; record: {a.record}" if a.record else ""))
    return 0


def cmd_ulira(a) -> int:
    from .experiments.experiment import DEFAULT_RESULTS, Experiment
    from .experiments.runner import ALL_METHODS
    from .studies.shadows import DEFAULT_SHADOWS
    from .studies.ulira import ulira_evaluate

    methods = _names("--methods", a.methods, ALL_METHODS)
    if "retrain" not in methods:  # U-LiRA's floor and the NeurIPS score are measured against Retrain's shadows
        raise ConfigError(f"--methods {a.methods!r} lacks retrain: the NeurIPS 2023 score and U-LiRA's floor are "
                          f"measured against it; add it, e.g. --methods retrain,{','.join(methods)}")
    if a.scheme not in ("random", "memorized"):
        raise ConfigError(f"--scheme {a.scheme!r}: U-LiRA is per example; choose 'random' or 'memorized'")
    check_choice("backend", a.backend, ("process", "ray"))
    if a.address is not None and a.backend != "ray":
        raise ConfigError(f"--address applies with --backend ray only (got --backend {a.backend})")
    check_range("--workers", a.workers, 1, integer=True)
    shadows = DEFAULT_SHADOWS if a.shadows is None else check_range("--shadows", a.shadows, 4, integer=True)
    if shadows % 2:
        raise ConfigError(f"--shadows {shadows} must be even: shadows come in pairs of complementary halves")
    check_range("--boot", a.boot, 0, integer=True)
    check_range("--memorization-shadows", a.memorization_shadows, 2, integer=True)
    if a.out is not None:
        _folder_to_write("--out", a.out, "results/ulira")
    if a.targets is not None:  # its bound before the memorized scheme's splits train their models (D is random's)
        d = Experiment(dataset=a.dataset, scheme="random", seed=a.seed, profile=a.profile, device="cpu",
                       results=a.results or DEFAULT_RESULTS, data_root=a.data_root, progress=False)
        check_range("--targets", a.targets, 2, len(d.splits.train) - 1, integer=True)
    exp = Experiment(dataset=a.dataset, scheme=a.scheme, seed=a.seed, profile=a.profile, forget_frac=a.forget_frac,
                     device=a.device, results=a.results or DEFAULT_RESULTS, data_root=a.data_root,
                     progress=not a.no_progress, memorization_shadows=a.memorization_shadows,
                     memorization_workers=a.workers if a.backend == "process" else 1)
    name = f"ulira_{a.dataset}_{a.scheme}_seed{a.seed}_{a.profile}_k{shadows}_{'-'.join(methods)}.json"
    out = Path(a.out) / name if a.out else Path(exp.results) / "ulira" / name
    from .core.stopping import stop_on_signals

    with stop_on_signals():  # SIGTERM/SIGHUP stop it as Ctrl-C does: the workers end, exit 128 + signal
        ulira_evaluate(exp, methods, shadows, a.targets, workers=a.workers, backend=a.backend, address=a.address,
                       n_boot=a.boot, out=out)
    print(f"result: {out}")
    return 0


def cmd_batch(a) -> int:
    from .batch import run_batch
    from .course import config_dir

    if a.results is not None:
        _folder_to_write("--results", a.results, "results/demo")
    cfg = Path(a.config)
    if not cfg.exists() and not cfg.parent.name and (config_dir() / f"{cfg.stem}.yaml").is_file():
        cfg = config_dir() / f"{cfg.stem}.yaml"  # a bare name: the course's own config (demo, course-cpu, ...)
    return run_batch(cfg, results=a.results, backend=a.backend, address=a.address, dry_run=a.dry_run,
                     jobs=a.jobs)


def cmd_publish(a) -> int:
    from .batch import publish

    got = publish(a.src, a.dest, allow_partial=a.partial, log=print)
    print(f"{a.dest}: {got['runs']} run(s), {got['rows']} row(s) in results.csv"
          + (f"; {len(got['skipped'])} unfinished run(s) left out" if got["skipped"] else "")
          + (f"; {len(got['removed'])} old run(s) removed" if got["removed"] else ""))
    return 0


def cmd_notebooks(a) -> int:
    from .course import copy_course, course_files, course_root

    dest = _folder_to_write("DIR", a.dir, "course")
    for rel in course_files(course_root()):  # every folder in the way is found before the first copy
        target = dest / rel
        for p in reversed(target.parents):
            if p.exists() and not p.is_dir() and dest in (p, *p.parents):
                raise ConfigError(f"DIR {dest}: {p} is a file, where the course needs a folder; "
                                  "move it away or give another DIR")
        if target.is_dir():
            raise ConfigError(f"DIR {dest}: {target} is a folder, where the course copies a file; "
                              "move it away or give another DIR")
    copied = copy_course(a.dir, overwrite=a.overwrite)
    print(f"copied {len(copied)} file(s) from {course_root()} into {dest}"
          + ("" if a.overwrite else " (existing files kept; --overwrite replaces them)"))
    print(f"start with: cd {dest / 'notebooks'} && jupyter lab 00_start_here.ipynb")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="advunlearn", description="Discriminative Adversarial Unlearning")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pretrain", help="pretrain (and OMP-prune) the original model, store it, print accuracies")
    _common(p)
    p.add_argument("--sparsity", type=float, default=0.95, help="OMP sparsity of the pruned model (0 = dense only)")
    p.add_argument("--json", action="store_true", help="also print the accuracies as JSON")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("run", help="one experiment end to end: pretrain, retrain, every method, evaluate")
    _common(p)
    p.add_argument("--scheme", default="random", help=f"one of {', '.join(SCHEMES)}")
    p.add_argument("--sparsity", type=float, default=0.0, help="0 (dense) or the OMP sparsity, e.g. 0.95")
    p.add_argument("--forget-frac", type=float, default=None, help="random scheme: share of D to forget (default 0.1)")
    p.add_argument("--forget-class", type=int, default=None, help="class scheme: the class to forget (default 0)")
    from .methods import names

    p.add_argument("--methods", default=None, help=f"comma-separated subset of {','.join(names())} (default: all)")
    p.add_argument("--strong-eval", action="store_true", help="also run LiRA/RMIA and a fresh post-hoc attacker")
    p.add_argument("--alpha", type=float, default=None, help="Ours: weight of the attacker loss (default: the profile's)")
    p.add_argument("--beta", type=float, default=None, help="Ours: weight of the Barlow-Twins term")
    p.add_argument("--lr", type=float, default=None, help="Ours: defender learning rate")
    p.add_argument("--iterations", type=int, default=None, help="Ours: unlearning iterations")
    p.add_argument("--out", default=None, help="where to write the JSON records")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="Table 1, Table 2 and Figure 2 from a folder of result JSON files")
    p.add_argument("dir", help="folder holding result JSON files (searched recursively)")
    p.add_argument("--out", default=None, help="output folder (default: DIR/report)")
    p.add_argument("--check", default=None, metavar="DOC", help="exit 1 unless every '<!-- report NAME PART -->' "
                   "block of DOC (e.g. README.md) naming this folder equals what the report builds from it")
    p.add_argument("--update", default=None, metavar="DOC", help="rewrite those blocks of DOC from the results")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("tune", help="tune every method the same way (Optuna, tuning seeds, distance to Retrain "
                       "without the test set); --freeze writes the chosen values where the profile reads them")
    p.add_argument("--dataset", default="fashion-mnist", help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILE_NAMES)}")
    p.add_argument("--methods", default=None, help="comma-separated methods (default: every method with a search space)")
    p.add_argument("--settings", default=None, help="comma-separated of random-dense,random-sparse,class-dense,"
                   "class-sparse (default: all)")
    p.add_argument("--trials", type=int, default=50, help="trials per method and setting, the same for every method "
                   "(protocol 2: 50)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="tuning seeds (default 100 101; the reporting "
                   "seeds 0-4 are refused)")
    p.add_argument("--workers", type=int, default=1, help="processes, one thread each")
    p.add_argument("--slots", nargs="*", default=None, metavar="METHOD=N",
                   help="processes per study for slow methods, e.g. ours=4 (same trial budget)")
    p.add_argument("--storage", default="results/tuning", help="folder of the studies' SQLite files, or an RDB URL")
    p.add_argument("--results", default="results/store", help="the artifact store")
    p.add_argument("--data-root", default=None, help="folder holding the dataset's files")
    p.add_argument("--backend", default="local", help="local (processes) or ray")
    p.add_argument("--address", default=None, help="Ray address (backend ray)")
    p.add_argument("--freeze", action="store_true", help="write the chosen values to advunlearn/tuned/")
    p.add_argument("--tuned-dir", default=None, help="folder for the frozen values (default advunlearn/tuned)")
    p.add_argument("--record", default=None, help="where to write the full study record (JSON)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("ulira", help="U-LiRA and the NeurIPS 2023 score per method from shadow models "
                       "(resumable; writes JSON records that `advunlearn report` reads)")
    _common(p)
    p.add_argument("--scheme", default="random", help="random or memorized (per-example evaluations)")
    p.add_argument("--forget-frac", type=float, default=0.1, help="share of D to forget (default 0.1)")
    p.add_argument("--methods", default="retrain,ft", help="comma-separated methods, retrain among them (U-LiRA's "
                   "floor and the NeurIPS score are measured against it; a list without it is refused)")
    p.add_argument("--shadows", type=int, default=None, help="number of shadow models, even (default 24)")
    p.add_argument("--targets", type=int, default=None, help="target pool size (default 2 x |D_f|)")
    p.add_argument("--workers", type=int, default=1, help="processes of one thread each (or Ray tasks)")
    p.add_argument("--backend", default="process", help="process (default) or ray")
    p.add_argument("--address", default=None, help="Ray cluster address (backend ray); omit for a local one")
    p.add_argument("--boot", type=int, default=500, help="bootstrap replicates of the intervals")
    p.add_argument("--memorization-shadows", type=int, default=32, help="memorized scheme: models behind the scores")
    p.add_argument("--out", default=None, help="folder for the JSON records (default: <results>/ulira)")
    p.set_defaults(func=cmd_ulira)

    p = sub.add_parser("batch", help="run a YAML grid of notebooks with papermill, resumable, then build the report")
    p.add_argument("config", help="YAML batch config, e.g. configs/demo.yaml")
    p.add_argument("--results", default=None, help="results folder (default: the config's, else ./results/<name>)")
    p.add_argument("--backend", default="local", help="local (default) or ray")
    p.add_argument("--address", default=None, help="Ray head HOST:6379, ray://HOST:10001 or auto; omit to start "
                   "a local Ray instance (docs/ray.md)")
    p.add_argument("--dry-run", action="store_true", help="validate the config and list the runs, run nothing")
    p.add_argument("--jobs", default=None, help="local backend: runs side by side, N or auto (default: the config's "
                   "jobs, else auto = one single-threaded run per core on a CPU machine, one run with a GPU)")
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("publish", help="copy a batch's finished runs (small JSON records, results.csv) into a "
                       "folder that the README's tables are built from and checked against")
    p.add_argument("src", help="the batch's results folder, e.g. results/fashion-mnist-table1")
    p.add_argument("dest", help="e.g. results/published/fashion-mnist-table1")
    p.add_argument("--partial", action="store_true", help="publish the finished runs of an unfinished batch")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("notebooks", help="copy the course (notebooks, solutions, batch configs) into a working folder")
    p.add_argument("dir", help="folder to copy into (DIR/notebooks, DIR/configs); created if missing")
    p.add_argument("--overwrite", action="store_true", help="replace files that are already there")
    p.set_defaults(func=cmd_notebooks)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    a = ap.parse_args(argv)
    try:
        with _plain_warnings():
            return a.func(a)
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM/SIGHUP in a batch: one line, no traceback
        return _stopped(a, e)
    except ConfigError as e:
        print(f"advunlearn: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # clear one-line errors for the known failure kinds
        from .core.data import DatasetNotFoundError
        from .core.store import CheckpointError, StoreError

        if isinstance(e, (DatasetNotFoundError, CheckpointError, StoreError)):
            print(f"advunlearn: error: {e}", file=sys.stderr)
            return 2
        raise


@contextlib.contextmanager
def _plain_warnings():
    """Within: the package's own warnings (a run of absurd size) as one line on stderr, like its errors."""
    import warnings

    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if category.__module__.startswith("advunlearn."):
                print(f"advunlearn: warning: {message}", file=sys.stderr, flush=True)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def _stopped(a, e: KeyboardInterrupt) -> int:
    """Say what a stop left behind; exit status 128 + the signal's number, as the shell reports it."""
    import signal

    signum = getattr(e, "signum", signal.SIGINT)
    what = ("any run in progress was stopped with its notebook; run the same command again to resume "
            "(finished runs are kept)" if a.cmd == "batch" else
            "finished artifacts are kept in the store; run the same command again to resume")
    try:
        print(f"\nadvunlearn: stopped by {signal.Signals(signum).name}: {what}", file=sys.stderr)
    except OSError:  # the terminal is gone (SIGHUP)
        pass
    return 128 + signum


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
