"""The ``advunlearn`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import time

from .config import DATASETS, PROFILE_NAMES, SCHEMES, ConfigError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits", help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILE_NAMES)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--results", default=None, help="results/store folder (default: $ADVUNLEARN_RESULTS or ./results)")
    p.add_argument("--data-root", default=None, help="folder holding the dataset files")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def cmd_pretrain(a) -> int:
    from .experiment import DEFAULT_RESULTS, Experiment

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


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="advunlearn", description="Discriminative Adversarial Unlearning")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pretrain", help="pretrain (and OMP-prune) the original model, store it, print accuracies")
    _common(p)
    p.add_argument("--sparsity", type=float, default=0.95, help="OMP sparsity of the pruned model (0 = dense only)")
    p.add_argument("--json", action="store_true", help="also print the accuracies as JSON")
    p.set_defaults(func=cmd_pretrain)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    a = ap.parse_args(argv)
    try:
        return a.func(a)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
