"""The ``advunlearn`` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

from .config import DATASETS, PROFILE_NAMES, SCHEMES, ConfigError


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
    from .experiment import DEFAULT_RESULTS, Experiment

    from .config import check_range

    check_range("sparsity", a.sparsity, 0, 1, hi_open=True)  # before any training
    out = {}
    for sp in sorted({0.0, a.sparsity}):
        t0 = time.perf_counter()
        exp = Experiment(dataset=a.dataset, profile=a.profile, seed=a.seed, sparsity=sp, device=a.device,
                         results=a.results or DEFAULT_RESULTS, data_root=a.data_root, progress=not a.no_progress)
        model, meta = exp.original()
        acc = exp.accuracies(model)
        from .prune import sparsity_of

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
    from .experiment import DEFAULT_RESULTS, Experiment
    from .runner import records_markdown, run_experiment

    methods = [m.strip() for m in a.methods.split(",") if m.strip()] if a.methods is not None else None
    if methods is not None:
        if not methods:
            from .runner import ALL_METHODS

            raise ConfigError(f"--methods {a.methods!r} names no method; give a comma-separated subset of "
                              f"{', '.join(ALL_METHODS)}, or leave it out for all of them")
        from .runner import ALL_METHODS

        for m in methods:
            if m not in ALL_METHODS:
                raise ConfigError(f"method={m!r} is not allowed; choose from {', '.join(ALL_METHODS)}")
    if a.sparsity is not None:
        from .config import check_range

        check_range("sparsity", a.sparsity, 0, 1, hi_open=True)
    if a.scheme == "random" and a.forget_class is not None:
        raise ConfigError("--forget-class applies to --scheme class only; random forgetting uses --forget-frac")
    if a.scheme == "class" and a.forget_frac is not None:
        raise ConfigError("--forget-frac applies to --scheme random only; class-wise forgetting uses --forget-class")
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
    from .metrics import DivergedError

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
    elif a.forget_frac != 0.1:
        parts.append(f"frac{a.forget_frac:g}")
    if methods:
        parts.append("-".join(methods))
    parts += [f"{k}{v:g}" for k, v in ours.items()]
    if a.strong_eval:
        parts.append("strong")
    return "_".join(parts)


def cmd_report(a) -> int:
    from .report import build_report

    paths = build_report(a.dir, a.out)
    for k, v in paths.items():
        print(f"{k}: {v}")
    return 0


def cmd_batch(a) -> int:
    from .batch import run_batch

    return run_batch(a.config, results=a.results, backend=a.backend, address=a.address, dry_run=a.dry_run)


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
    p.add_argument("--methods", default=None, help="comma-separated subset of retrain,ft,ga,ff,iu,ours,ours_no_vss")
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
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("batch", help="run a YAML grid of notebooks with papermill, resumable, then build the report")
    p.add_argument("config", help="YAML batch config, e.g. configs/demo.yaml")
    p.add_argument("--results", default=None, help="results folder (default: the config's, else ./results/<name>)")
    p.add_argument("--backend", default="local", help="local (default) or ray")
    p.add_argument("--address", default=None, help="Ray head HOST:6379, ray://HOST:10001 or auto; omit to start "
                   "a local Ray instance (docs/ray.md)")
    p.add_argument("--dry-run", action="store_true", help="validate the config and list the runs, run nothing")
    p.set_defaults(func=cmd_batch)
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
        from .data import DatasetNotFoundError
        from .store import CheckpointError, StoreError

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
