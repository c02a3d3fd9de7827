"""How far the numeric reference values move between math-library code paths and thread counts.

The numeric tests (``pytest -m numeric``) compare long float32 computations with stored values
(tests/data/alg1_reference.json, written by tests/alg1_reference.py).  The same code gives slightly
different floats on another CPU: MKL, oneDNN and ATen pick their kernels by instruction set and CPU
vendor, and split reductions by thread count.  This script measures that spread on this machine
instead of guessing it: it recomputes the reference case in one fresh process per mode

- ``default``:     whatever the libraries pick here;
- ``avx2``:        MKL, ATen and oneDNN pinned to their AVX2 code paths (what a CPU without AVX-512,
                   or a non-Intel CPU in MKL's eyes, runs);
- ``aten-default``: ATen's vectorised kernels off (``ATEN_CPU_CAPABILITY=default``);
- ``sse``:         everything pinned to its oldest path (SSE4.2 / SSE4.1, ATen default);

each with 1 and 2 threads (``ADVUNLEARN_THREADS``), and prints, for every reference value, the largest
drift between any two modes and against the stored value, relative to the value's scale in the
units the test's tolerances use: tests/alg1_reference.py's ``values`` and ``TOL``), then the largest
drift per tolerance group beside the tolerance and its margin.  ``--rescore FILE`` reprints the
table of an earlier ``--json`` without recomputing.

    python benchmarks/numeric_spread.py [--threads 1 2] [--modes default avx2 ...] [--json out.json]
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AVX2 = {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2"}
MODES = {
    "default": {},
    "avx2": AVX2,
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "sse": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ATEN_CPU_CAPABILITY": "default", "DNNL_MAX_CPU_ISA": "SSE41"},
}
CHILD = ("import json, sys; sys.path.insert(0, 'tests'); from alg1_reference import run_case; "
         "print(json.dumps({s: run_case(s) for s in ('random', 'class')}))")


def run_mode(name: str, threads: int) -> dict:
    env = {**os.environ, **MODES[name], "ADVUNLEARN_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    print(f"  {name:<13} {threads} thread(s): {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _finite(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def spread(runs: dict, ref: dict) -> dict:
    """For each reference value: the largest drift between two modes and between a mode and the stored
    value, in the units the test's tolerance uses (alg1_reference.values), with the worst pair."""
    from alg1_reference import values

    rows = {}
    for scheme, case in ref.items():
        got = {m: values(r[scheme]) for m, r in runs.items()}
        for path, (group, v_ref, scale) in values(case).items():
            if not _finite(v_ref):
                continue
            vals = {"stored": v_ref, **{m: g[path][1] for m, g in got.items()}}
            names = list(vals)
            worst = {"between_modes": (0.0, ("", "")), "vs_stored": (0.0, ("", ""))}
            for i, a in enumerate(names):
                for b in names[i + 1:]:
                    d = abs(vals[a] - vals[b]) / scale
                    kind = "vs_stored" if a == "stored" else "between_modes"
                    if d > worst[kind][0]:
                        worst[kind] = (d, (a, b))
            rows[f"{scheme}/{path}"] = {"group": group, "ref": v_ref, "scale": scale,
                                        **{k: d for k, (d, _) in worst.items()},
                                        **{k + "_pair": p for k, (_, p) in worst.items()}}
    return rows


def by_group(rows: dict) -> dict:
    """{group: (largest drift, value that had it)} over both kinds of comparison."""
    out = {}
    for key, r in rows.items():
        d = max(r["between_modes"], r["vs_stored"])
        if d >= out.get(r["group"], (-1.0, ""))[0]:
            out[r["group"]] = (d, key)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--json", help="also write every mode's values and the spread here")
    p.add_argument("--rescore", help="an earlier --json: reprint its table, computing nothing")
    a = p.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    from alg1_reference import REF

    ref = json.loads(REF.read_text())
    if a.rescore:
        runs = json.loads(Path(a.rescore).read_text())["runs"]
    else:
        runs = {f"{m}/t{t}": run_mode(m, t) for m in a.modes for t in a.threads}
    rows = spread(runs, ref)
    from alg1_reference import TOL

    print(f"{'value':<62} {'stored':>14} {'between modes':>14} {'vs stored':>10}  worst pair")
    for key, r in rows.items():
        print(f"{key:<62} {r['ref']:>14.7g} {r['between_modes']:>14.2e} {r['vs_stored']:>10.2e}  "
              f"{' vs '.join(r['between_modes_pair'])}")
    print(f"\n{'tolerance group':<40} {'largest drift':>14} {'tolerance':>10} {'margin':>7}  value")
    for group, (d, key) in by_group(rows).items():
        tol = TOL.get(group)
        margin = f"{tol / d:.1f}x" if tol and d else "-"
        print(f"{group:<40} {d:>14.2e} {tol if tol is not None else '-':>10} {margin:>7}  {key}")
    if a.json:
        Path(a.json).write_text(json.dumps({"runs": runs, "spread": rows}, indent=1))


if __name__ == "__main__":
    main()
