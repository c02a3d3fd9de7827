"""Ours with the profile's unlearning values against Ours with other values, seed by seed, both
measured against Retrain (same split, θ0 and attacker).  Prints one JSON row per run, then the
mean ± std of the Avg. Disparity per (sparsity, setting)::

    python scripts/compare_settings.py --dataset digits --scheme class --sparsities 0,0.95 \\
        --seeds 0,1,2,3,4 --set alpha=5 lr=0.02 alpha_off_after=60 iterations=200

(the profile's class-wise values against the earlier ones that docs/tuning.md mentions).  Runs are
cached in ``--results``.
"""

from __future__ import annotations

import argparse
import json
import statistics

from advunlearn.experiments.experiment import Experiment
from advunlearn.evaluation.metrics import avg_disparity, evaluate
from advunlearn.methods.ours import unlearn_config, unlearn_ours


def _value(text: str):
    if text.lower() == "none":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--scheme", default="class")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--sparsities", default="0,0.95")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                    help="UnlearnConfig fields of the other setting (e.g. alpha=5 lr=0.05)")
    ap.add_argument("--results", default="results/compare_settings")
    a = ap.parse_args(argv)
    over = {}
    for item in a.set:
        key, sep, val = item.partition("=")
        if not sep:
            ap.error(f"--set takes KEY=VALUE pairs, got {item!r}")
        over[key] = _value(val)
    rows = []
    for sp in (float(x) for x in a.sparsities.split(",")):
        for seed in (int(x) for x in a.seeds.split(",")):
            exp = Experiment(dataset=a.dataset, scheme=a.scheme, sparsity=sp, seed=seed, profile=a.profile,
                             results=a.results, progress=False)
            rt = evaluate(exp.retrain()[0], exp, attacks=False)
            for name, o in (("profile", {}), ("other", over)):
                model, info, _ = unlearn_ours(exp, unlearn_config(exp, **o))
                r = evaluate(model, exp, attacks=False)
                row = {"sparsity": sp, "seed": seed, "setting": name,
                       **{k: round(r[k], 2) for k in ("UA", "RA", "TA", "MIA_efficacy")},
                       "avg_disparity": round(avg_disparity(r, rt), 2), "retrain_TA": round(rt["TA"], 2),
                       "run_time_s": round(info["run_time_s"], 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\nother setting: {over}")
    for sp in sorted({r["sparsity"] for r in rows}):
        for name in ("profile", "other"):
            d = [r["avg_disparity"] for r in rows if r["sparsity"] == sp and r["setting"] == name]
            sd = statistics.stdev(d) if len(d) > 1 else 0.0
            print(f"sparsity {sp:g} {name:8s}: Avg. Disparity {statistics.mean(d):.2f} ± {sd:.2f} over {len(d)} seeds")
    return rows


if __name__ == "__main__":
    main()
