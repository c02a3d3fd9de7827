"""How long the course takes a student: notebooks 01-06 on the testbed, in order, in a fresh store.

    ADVUNLEARN_THREADS=1 python benchmarks/course_time.py [--notebooks 01 02 03 04 05 06] [--out DIR]

Copies the notebooks into ``DIR/notebooks`` and runs each with its default parameters (the
Fashion-MNIST testbed, seed 0, CPU) one after another, as a student's Run All would, all sharing one
new artifact store, ``DIR/results/store`` (so 02 reuses 01's model, and so on; a second call with the
same ``--out`` and later notebooks goes on in that store).  01-04 and 06 run under
papermill (03 writes its loop's records to a JSON file); 05 runs under nbval, since papermill's
executor can hang on 05's widget cell after it has finished (README, "Tests").  Prints per notebook the wall time and the CPU time (user + system) of the
notebook's process tree.  On a machine with other work, the CPU time of a single-threaded run is
the better estimate of what one idle core takes; on an idle machine the two agree.  Also prints what
notebook 03 recorded of the attacker's held-out accuracy at the start and the end of the loop.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {"01": "01_pretraining", "02": "02_attacker", "03": "03_adversarial_unlearning",
             "04": "04_evaluation", "05": "05_explorer", "06": "06_strong_evaluation"}


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notebooks", nargs="+", default=list(NOTEBOOKS), choices=list(NOTEBOOKS))
    ap.add_argument("--out", default=None, help="keep the executed notebooks and results here")
    a = ap.parse_args(argv)
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="advunlearn-course-"))
    nbdir = out / "notebooks"
    nbdir.mkdir(parents=True, exist_ok=True)
    store = out / "results" / "store"  # the notebooks' default store, "../results/store", seen from nbdir
    env = {k: v for k, v in os.environ.items() if k != "ADVUNLEARN_FAST"}
    env["ADVUNLEARN_PROGRESS"] = "0"
    rows = []
    for key in a.notebooks:
        name = NOTEBOOKS[key]
        nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
        for c in nb["cells"]:  # the fast-mode outputs nbval compares do not apply to a full run
            if c["cell_type"] == "code" and "".join(c["source"]).startswith("# NBVAL_CHECK_OUTPUT"):
                c["source"] = "".join(c["source"]).split("\n", 1)[1]
        (nbdir / f"{name}.ipynb").write_text(json.dumps(nb))
        res = out / f"{name}.json"
        if key == "05":
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                   str(nbdir / f"{name}.ipynb")]
        else:
            cmd = [sys.executable, "-m", "papermill", str(nbdir / f"{name}.ipynb"), str(out / f"{name}.ipynb"),
                   "-p", "results", str(store), "-p", "result_path", str(res), "--cwd", str(nbdir),
                   "--no-progress-bar"]
        c0, t0 = _children_cpu(), time.perf_counter()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
        if p.returncode != 0:
            print((p.stdout + p.stderr)[-3000:], file=sys.stderr)
            raise SystemExit(f"{name} failed (exit {p.returncode})")
        rows.append({"notebook": name, "wall_s": wall, "cpu_s": cpu})
        print(f"{name:28s} wall {wall:7.1f} s   cpu {cpu:7.1f} s", flush=True)
    tw, tc = sum(r["wall_s"] for r in rows), sum(r["cpu_s"] for r in rows)
    print(f"{'total':28s} wall {tw:7.1f} s   cpu {tc:7.1f} s   ({tw / 60:.1f} / {tc / 60:.1f} min)")
    nb03 = out / "03_adversarial_unlearning.json"
    if nb03.exists():
        rec = json.loads(nb03.read_text())
        rec = rec[0] if isinstance(rec, list) else rec
        hist = [r for r in rec.get("records", []) if "attacker_acc" in r]
        if hist:
            first, last = hist[0], hist[-1]
            print(f"03: the attacker's accuracy on held-out pairs (D_f vs held-out D_v) "
                  f"{first['attacker_acc']:.1f}% at iteration {first['iteration']} -> {last['attacker_acc']:.1f}% "
                  f"at iteration {last['iteration']} (AUC {first['attacker_auc']:.3f} -> {last['attacker_auc']:.3f})")
    (out / "course_time.json").write_text(json.dumps(rows, indent=1))
    print(f"executed notebooks in {out}")
    return rows


if __name__ == "__main__":
    main()
