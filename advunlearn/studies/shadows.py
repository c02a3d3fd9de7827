"""Shadow models for per-example evaluations (U-LiRA, the NeurIPS 2023 score, memorisation).

The design (one :class:`ShadowPlan` per experiment, fixed by its seed):

* targets T: the forget set D_f plus as many retain samples again (random ones for the random
  scheme, the next most memorised ones for the memorized scheme), so |T| = 2 |D_f| by default;
  base B = D \\ T, in every shadow's training set;
* membership: shadows come in pairs with complementary halves of T (S, T \\ S), so every target is
  in exactly half of the shadows and every shadow forgets |T| / 2 samples (|D_f| by default): the
  shadows have the experiment's forget-set size and D's size minus |D_f|.  Pair j's halves depend
  only on (seed, j), so K shadows are a prefix of K + 2: adding shadows reuses the stored ones;
* shadow k = an :class:`~advunlearn.experiments.experiment.Experiment` with the splits train = B ∪ S_k,
  forget = S_k, retain = B (D_v and D_t the parent's) and its own seed and store key, so
  ``shadow.original()`` is a model trained with S_k, ``run_method(shadow, m)`` unlearns S_k with
  method m exactly as on the real experiment, and ``shadow.retrain()`` is Retrain-the-method;
* its retrained counterpart ("reference"): the pretraining recipe on B with seeds of its own (never
  the Retrain method's seeds, so Retrain judged against the references is a fair floor).

Shared across methods: the originals and the references.  Per method: only the unlearning runs.
Every output is an artifact in the experiment's store (kind ``shadow-obs``: logits on T and
accuracies; the originals also as models, kind ``pretrain``), so a killed job resumes where it
stopped and a second method costs only its unlearning runs.

Workers: :func:`run_shadows` spreads shadows over a process pool (one thread each, ``spawn``: a
fork of a process that already runs torch threads can hang) or over a Ray cluster
(``backend="ray"``; one CPU per task; like the batch runner's Ray backend the store must be shared
storage mounted at the same path on every node).  The store's per-artifact file lock makes
concurrent workers compute each artifact once.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from ..core.config import ConfigError, check_choice, check_range
from ..experiments.workers import _experiment, experiment_spec, run_tasks

DEFAULT_SHADOWS = 24          # one method on the testbed in <= ~20 min on 2 cores (docs/strong_evaluation.md)
OBS_VERSION = 1
SEED_STRIDE = 10 ** 5         # shadow k's seeds: (parent seed + 1) * 1e8 + k * 1e5 + small offsets
REFERENCE_OFFSET = 50         # the reference's init / batch-order seed offset within the stride


# ---------------------------------------------------------------------------------------------
# membership and seeds
# ---------------------------------------------------------------------------------------------
def pair_membership(n_items: int, n_models: int, seed: Sequence[int]) -> np.ndarray:
    """(n_models, n_items) bool: pairs of complementary random halves; pair j depends on (seed, j) only."""
    check_range("n_models", n_models, 2, integer=True)
    if n_models % 2:
        raise ConfigError(f"n_shadows={n_models} must be even: shadows come in pairs of complementary halves")
    m = np.zeros((n_models, n_items), bool)
    for j in range(n_models // 2):
        perm = np.random.default_rng([*seed, j]).permutation(n_items)
        m[2 * j, perm[: n_items // 2]] = True
        m[2 * j + 1, perm[n_items // 2:]] = True
    return m


def shadow_seed(parent_seed: int, k: int) -> int:
    return (int(parent_seed) + 1) * 10 ** 8 + int(k) * SEED_STRIDE


def _sha(idx) -> str:
    a = np.ascontiguousarray(np.asarray(idx, dtype=np.int64))
    return hashlib.sha256(a.tobytes()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# the plan
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShadowPlan:
    """Targets, base set and membership of ``n_shadows`` shadows of one experiment."""

    targets: torch.Tensor      # (T,) dataset indices, sorted
    base: torch.Tensor         # (B,) dataset indices, sorted: D \ T
    member: np.ndarray         # (K, T) bool: target t is in shadow k's training and forget sets
    seeds: tuple[int, ...]
    key: dict                  # what fixes targets and membership (without K)

    @property
    def n_shadows(self) -> int:
        return self.member.shape[0]

    @property
    def n_targets(self) -> int:
        return len(self.targets)

    def forget(self, k: int) -> torch.Tensor:
        return self.targets[torch.from_numpy(self.member[k])]


def shadow_plan(exp, n_shadows: int = DEFAULT_SHADOWS, n_targets: int | None = None) -> ShadowPlan:
    """The shadows of ``exp`` (random or memorized scheme): see the module docstring."""
    if exp.scheme == "class":
        raise ConfigError("shadow evaluations are per example; scheme='class' has no per-example target pool "
                          "(use scheme 'random' or 'memorized')")
    if exp.shadow is not None:
        raise ConfigError("this experiment is itself a shadow; plan shadows on the real experiment")
    check_range("n_shadows", n_shadows, 4, integer=True)
    s = exp.splits
    n_f = len(s.forget)
    n_targets = 2 * n_f if n_targets is None else check_range("n_targets", n_targets, 2, len(s.train) - 1, integer=True)
    rng = np.random.default_rng([exp.seed, 0x7A26E7])
    forget = s.forget.numpy()
    if n_targets <= n_f:
        targets = rng.choice(forget, n_targets, replace=False)
    else:
        retain = s.retain.numpy()
        extra = n_targets - n_f
        if exp.scheme == "memorized":
            from .memorization import memorization_scores

            sc = memorization_scores(exp, train=s.train)["rank_score"]
            order = np.argsort(-sc[retain], kind="stable")
            companions = retain[order[:extra]]
        else:
            companions = rng.choice(retain, extra, replace=False)
        targets = np.concatenate([forget, companions])
    targets = np.sort(targets)
    base = np.setdiff1d(s.train.numpy(), targets)
    member = pair_membership(len(targets), n_shadows, (exp.seed, 0x5EAD0))
    key = {"of": exp.forget_key(), "targets": _sha(targets), "n_targets": int(len(targets)), "v": OBS_VERSION}
    seeds = tuple(shadow_seed(exp.seed, k) for k in range(n_shadows))
    return ShadowPlan(torch.from_numpy(targets).long(), torch.from_numpy(base).long(), member, seeds, key)


def shadow_experiment(exp, plan: ShadowPlan, k: int):
    """Shadow ``k`` of ``plan`` as an Experiment (splits train = B ∪ S_k, forget = S_k, retain = B)."""
    from ..core.data import Splits
    from ..experiments.experiment import Experiment

    check_range("k", k, 0, plan.n_shadows - 1, integer=True)
    s = exp.splits
    forget = plan.forget(k)
    splits = Splits(train=torch.cat([plan.base, forget]).sort().values, forget=forget, retain=plan.base,
                    val=s.val, test=s.test, test_all=s.test_all, test_forget=s.test_forget, scheme=s.scheme,
                    forget_class=None, seed=plan.seeds[k])
    key = {**plan.key, "k": int(k), "forget": _sha(forget.numpy())}
    return Experiment(dataset=exp.dataset, scheme=exp.scheme, sparsity=exp.sparsity, seed=plan.seeds[k],
                      profile=exp.profile, forget_frac=exp.forget_frac, forget_class=None, val_frac=exp.val_frac,
                      device=exp.device, results=exp.results, data_root=exp.data_root, progress=False,
                      profile_overrides=dict(exp.profile_overrides), memorization_shadows=exp.memorization_shadows,
                      given_data=exp.data, given_splits=splits, shadow=key)


# ---------------------------------------------------------------------------------------------
# one shadow's outputs
# ---------------------------------------------------------------------------------------------
BUILTIN_ROLES = ("original", "reference")


def _role_config(sexp, role: str, overrides: dict | None) -> dict:
    from ..experiments.profiles import profile_to_dict

    if role in BUILTIN_ROLES:
        return {"pretrain": sexp.prof.pretrain.to_dict()}
    try:
        from ..experiments.runner import RESULT_VERSION
    except ImportError:  # pragma: no cover - the registry may move it
        RESULT_VERSION = {}
    return {"profile": profile_to_dict(sexp.prof), "overrides": overrides or {}, "v": RESULT_VERSION.get(role, 1)}


def _obs_key(sexp, role: str, overrides: dict | None) -> dict:
    return {"shadow": sexp.data_key(), "model": sexp.model_key(), "role": role,
            "config": _role_config(sexp, role, overrides), "v": OBS_VERSION}


def _reference_model(sexp):
    """The retrained counterpart: the pretraining recipe on B = the shadow's retain set, own seeds."""
    from ..core.prune import apply_masks
    from ..core.train import fit

    seed = sexp.seed + REFERENCE_OFFSET
    masks = sexp.masks(sexp.original()[0]) if sexp.sparsity > 0 else None
    model = sexp.new_model(seed)
    if masks is not None:
        apply_masks(model, masks)
    info = fit(model, sexp.data, sexp.splits.retain, sexp.prof.pretrain, seed=seed, masks=masks, progress=False,
               desc="shadow-reference")
    return model, info["time_s"]


def _model_for(sexp, role: str, overrides: dict | None):
    """(model, seconds the role's own computation took)."""
    if role == "original":
        model, meta = sexp.original()
        return model, float(meta.get("time_s") or 0.0)
    if role == "reference":
        return _reference_model(sexp)
    from ..experiments.runner import run_method

    t0 = time.perf_counter()
    model, info = run_method(sexp, role, **(overrides or {}))
    return model, float(info.get("run_time_s") or (time.perf_counter() - t0))


def shadow_outputs(exp, plan: ShadowPlan, k: int, role: str, overrides: dict | None = None,
                   sexp=None) -> tuple[dict, bool]:
    """(outputs, reused) of shadow ``k`` under ``role``: "original", "reference" or a method name.

    outputs = {"logits": (T, C) float32 array on the targets, "acc": {"forget", "retain", "test"}
    (percent; forget = S_k, retain = B), "time_s": the role's own compute time (wall), "cpu_s": the
    CPU time of computing this output, training included (None when it was stored before)}.  Stored as
    kind ``shadow-obs``; ``reused`` tells whether it came from the store.
    """
    from ..core.store import load_state, save_state
    from ..core.train import accuracy, predict

    sexp = sexp if sexp is not None else shadow_experiment(exp, plan, k)
    key = _obs_key(sexp, role, overrides)

    def compute(d: Path):
        cpu0 = time.process_time()
        model, secs = _model_for(sexp, role, overrides)
        cpu = time.process_time() - cpu0  # this process's CPU time: a cost that contention does not inflate
        model.eval()
        logits = predict(model, sexp.data, plan.targets, exact=True).float().cpu()
        acc = {"forget": accuracy(model, sexp.data, sexp.splits.forget),
               "retain": accuracy(model, sexp.data, sexp.splits.retain),
               "test": accuracy(model, sexp.data, sexp.splits.test)}
        meta = {"kind": "shadow-obs", "role": role, "k": int(k), "acc": acc, "time_s": secs, "cpu_s": cpu,
                "threads": torch.get_num_threads()}
        save_state(d / "obs.safetensors", {"logits": logits}, meta)
        return {"logits": logits.numpy(), "acc": acc, "time_s": secs, "cpu_s": cpu}

    def load(d: Path):
        t, meta = load_state(d / "obs.safetensors", {"kind": "shadow-obs", "role": role})
        return {"logits": t["logits"].numpy(), "acc": meta["acc"], "time_s": meta.get("time_s"),
                "cpu_s": meta.get("cpu_s")}

    return exp.store.cached("shadow-obs", key, compute, load)


def shadow_done(exp, plan: ShadowPlan, k: int, role: str, overrides: dict | None = None) -> bool:
    return exp.store.done("shadow-obs", _obs_key(shadow_experiment(exp, plan, k), role, overrides))


def _shadow_task(exp_or_spec, n_shadows: int, n_targets: int | None, k: int, roles: Sequence[str],
                 overrides: dict | None) -> dict:
    """Every role of shadow k; returns {"k", "computed": [...], "reused": [...], "wall_s"}."""
    t0 = time.perf_counter()
    exp = _experiment(exp_or_spec)
    plan = shadow_plan(exp, n_shadows, n_targets)
    sexp = shadow_experiment(exp, plan, k)
    out = {"k": k, "computed": [], "reused": []}
    for role in roles:
        ov = overrides if role not in BUILTIN_ROLES else None
        _, reused = shadow_outputs(exp, plan, k, role, ov, sexp=sexp)
        out["reused" if reused else "computed"].append(role)
    out["wall_s"] = time.perf_counter() - t0
    return out


def run_shadows(exp, roles: Iterable[str], n_shadows: int = DEFAULT_SHADOWS, n_targets: int | None = None, *,
                workers: int = 1, backend: str = "process", address: str | None = None,
                overrides: dict | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Compute (or reuse) every shadow's outputs for ``roles``; returns counts and the wall time.

    ``roles``: "original", "reference" and method names (``overrides`` go to the methods).
    ``workers=1`` runs here; more uses a process pool of that many single-thread processes
    (``backend="process"``) or Ray tasks of one CPU each (``backend="ray"``, ``address`` of the
    cluster or None for a local one; the store must be shared storage).
    Returns ``{"computed": n, "reused": n, "wall_s": s, "per_shadow": [...]}``.
    """
    roles = list(dict.fromkeys(roles))
    plan = shadow_plan(exp, n_shadows, n_targets)  # validates before any work
    from ..experiments.runner import ALL_METHODS

    for r in roles:
        if r not in BUILTIN_ROLES:
            check_choice("method", r, tuple(ALL_METHODS))
    t0 = time.perf_counter()
    if exp.scheme == "memorized":  # stored by the experiment already; here only to count its time
        from .memorization import memorization_scores

        memorization_scores(exp, train=exp.splits.train, workers=workers, backend=backend, address=address)

    def show(r):
        if log:
            log(f"  shadow {r['k']:3d}: computed {r['computed'] or '-'} reused {r['reused'] or '-'} "
                f"({r['wall_s']:.1f}s)")

    per = run_tasks(exp, experiment_spec(exp), _shadow_task,
                    [(n_shadows, n_targets, k, roles, overrides) for k in range(plan.n_shadows)],
                    workers=workers, backend=backend, address=address, on_result=show)
    per.sort(key=lambda r: r["k"])
    return {"computed": sum(len(r["computed"]) for r in per), "reused": sum(len(r["reused"]) for r in per),
            "wall_s": time.perf_counter() - t0, "workers": workers, "backend": backend, "per_shadow": per}


def collect(exp, plan: ShadowPlan, role: str, overrides: dict | None = None) -> dict:
    """Every shadow's outputs for ``role`` (computed here if missing): φ (K, T), accuracies, times."""
    from ..evaluation.strong import logit_scaled_confidence

    y = exp.data.y[plan.targets.to(exp.data.device)].cpu()
    phi, acc, secs, cpu = [], [], [], []
    for k in range(plan.n_shadows):
        o, _ = shadow_outputs(exp, plan, k, role, overrides if role not in BUILTIN_ROLES else None)
        phi.append(logit_scaled_confidence(torch.from_numpy(o["logits"]), y))
        acc.append(o["acc"])
        secs.append(o["time_s"])
        cpu.append(o.get("cpu_s"))
    return {"phi": np.stack(phi), "acc": acc, "time_s": secs, "cpu_s": cpu, "role": role}


__all__ = ["DEFAULT_SHADOWS", "ShadowPlan", "shadow_plan", "shadow_experiment", "shadow_outputs", "run_shadows",
           "collect", "pair_membership", "shadow_done"]
