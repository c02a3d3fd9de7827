"""One tuning protocol for every method: the same Optuna budget, criterion and tuning seeds.

For each method and each setting (scheme x dense/sparse) a study of ``n_trials`` trials (protocol 2:
:data:`N_TRIALS`, the same for every method) searches the method's declared search space (its module's
``SPACE``).  Trial 0 is the values the method's paper or reference code publishes for that setting (its
module's ``PUBLISHED``, :func:`advunlearn.methods.published`), the same rule for every method; then
:data:`N_STARTUP` random trials, then TPE.  Each study samples with its own seed (:func:`study_seed`).
A chosen value within :data:`EDGE` of a bound of its space (on the space's own scale) is an edge: the
space must be widened and the study rerun, unless the method names that bound a hard limit
(``HARD_BOUNDS``); :func:`freeze` refuses edges.  A trial runs the method on every *tuning* seed and scores it by
its distance to that seed's Retrain, measured without the test split:

    score = mean over seeds of mean(|UA - UA_r|, |RA - RA_r|, |VA - VA_r|, |MIA_v - MIA_v,r|)

with VA the accuracy on the held-out part of D_v (never sampled by Algorithm 1's loop) and MIA_v the
confidence SVC attack of the paper's MIA-efficacy with that held-out D_v, not D_t, as its
non-members.  The lowest mean score wins.  Reporting seeds (``REPORTING_SEEDS``) are refused here;
they are run only once the chosen values are frozen (:func:`freeze`), which writes them to
``advunlearn/tuned/<profile>-<dataset>.json`` where the profile picks them up.

Studies are stored in SQLite (one file per study under ``storage``), so a killed tuning run resumes
where it stopped; studies are independent and run side by side in processes (``workers``) or as Ray
tasks (``backend="ray"``, which needs a storage every node can reach: a shared folder, or an RDB URL
passed as ``storage``).
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import statistics
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from ..core.config import ConfigError, check_choice, check_range
from .tuning_space import (EDGE, _space_json, edges, from_optuna, method_space, published_values,  # noqa: F401
                           requeue_published, setting_key, study_name, study_seed, suggest, to_optuna, tunable_methods)

TUNING_SEEDS = (100, 101)
REPORTING_SEEDS = (0, 1, 2, 3, 4)
SETTINGS = (("random", 0.0), ("random", 0.95), ("class", 0.0), ("class", 0.95))
TUNED_DIR = Path(__file__).resolve().parents[1] / "tuned"
CRITERION = ("UA", "RA", "VA_heldout", "MIA_val")
STALE_TRIAL_S = 3600  # a RUNNING trial older than this (its process killed) is failed and rerun; one whose
                      # process on this machine is gone (recorded in the trial) is failed at once
N_TRIALS = 50         # protocol 2: trials per method and setting, the same for every method
N_STARTUP = 10        # random trials after the published values, before TPE proposes


# ---------------------------------------------------------------------------------------------
# the criterion
# ---------------------------------------------------------------------------------------------
def measures(model, exp) -> dict[str, float]:
    """UA, RA, VA on the held-out part of D_v and the confidence SVC attack with that part as
    non-members (percent): everything the tuning criterion reads, none of it from D_t."""
    from ..evaluation import mia as _mia
    from ..dau.unlearn import split_validation

    held = split_validation(exp.splits.val, exp.seed)[1]
    outs = {k: _mia.softmax_outputs(model, exp, k) for k in ("forget", "retain")}
    from ..core.train import predict
    import torch

    probs = torch.softmax(predict(model, exp.data, held, exact=True), dim=1).cpu()
    outs["test"] = (probs, exp.data.y[held.to(exp.data.device)].cpu())

    def acc(p, y):
        ok = torch.isfinite(p).all(1)
        return 100.0 * float(((p.argmax(1) == y) & ok).float().mean())

    finite = all(bool(torch.isfinite(p).all()) for p, _ in outs.values())
    return {"UA": 100.0 - acc(*outs["forget"]), "RA": acc(*outs["retain"]), "VA_heldout": acc(*outs["test"]),
            "MIA_val": _mia.efficacy_from_outputs(outs, "confidence", seed=exp.seed) if finite else float("nan")}


def distance(m: Mapping[str, float], ref: Mapping[str, float]) -> float:
    """Mean absolute difference over the criterion's keys; a non-finite value scores +inf."""
    d = [abs(float(m[k]) - float(ref[k])) for k in CRITERION]
    return float("inf") if not all(math.isfinite(x) for x in d) else sum(d) / len(d)


# ---------------------------------------------------------------------------------------------
# one study
# ---------------------------------------------------------------------------------------------
def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = [check_range("tuning seed", s, 0, integer=True) for s in seeds]
    bad = sorted(set(seeds) & set(REPORTING_SEEDS))
    if bad:
        raise ConfigError(f"tuning seeds {bad} are reporting seeds {list(REPORTING_SEEDS)}; tune on other seeds, "
                          f"e.g. {list(TUNING_SEEDS)}")
    if not seeds:
        raise ConfigError(f"no tuning seeds; give at least one, e.g. {list(TUNING_SEEDS)}")
    return seeds


def _experiment(dataset, profile, scheme, sparsity, seed, results, data_root=None):
    from ..experiments.experiment import Experiment

    # The CPU: the tuned profiles' models are small, and the studies run side by side in forked
    # processes, where CUDA cannot be initialised.
    return Experiment(dataset=dataset, scheme=scheme, sparsity=sparsity, seed=seed, profile=profile,
                      results=results, data_root=data_root, progress=False, device="cpu")


def _storage_url(storage: str | os.PathLike, name: str) -> str:
    s = str(storage)
    if "://" in s:  # an RDB URL shared by every study (a cluster)
        return s
    Path(s).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(s).resolve() / (name + '.db')}"


@contextlib.contextmanager
def _creation_lock(storage: str | os.PathLike, name: str):
    """An exclusive lock (``fcntl.flock`` on ``<name>.db.lock`` beside the SQLite file) around a study's
    creation: two processes creating one new storage at once would both write its schema (one fails with
    an IntegrityError on alembic_version) and could both enqueue the published values.  An RDB URL
    has no file beside it: its creation is retried instead (:func:`_open_study`)."""
    if "://" in str(storage):
        yield
        return
    path = Path(storage) / f"{name}.db.lock"
    with open(path, "a") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except (ImportError, OSError):  # no POSIX locks (Windows, some network file systems): the retry remains
            pass
        yield


def _open_study(method, scheme, sparsity, storage, sampler_seed, n_trials, create_with=None):
    import optuna
    import sqlalchemy.exc

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name(method, scheme, sparsity)
    # the published values, then N_STARTUP random trials, then TPE (a study shorter than that is all random)
    sampler = optuna.samplers.TPESampler(seed=study_seed(name, sampler_seed),
                                         n_startup_trials=min(1 + N_STARTUP, max(1, n_trials)))
    url = _storage_url(storage, name)
    for attempt in range(5):
        try:
            with _creation_lock(storage, name):
                study = optuna.create_study(study_name=name, storage=url, direction="minimize", sampler=sampler,
                                            load_if_exists=True)
                if create_with is not None and not study.trials:
                    space, anchor, seeds = create_with
                    study.enqueue_trial(to_optuna(anchor, space), user_attrs={"default": True})
                    study.set_user_attr("space", _space_json(space))
                    study.set_user_attr("seeds", list(seeds))
                    study.set_user_attr("sampler_seed", study_seed(name, sampler_seed))
            return study
        except sqlalchemy.exc.IntegrityError:  # another process created the same storage or study meanwhile
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), so that a pid reused by another
    process is not taken for the one that ran a trial; None where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return start is None or _process_start(pid) in (None, start)


def _stale(trial, now: float, unowned: bool = False) -> bool:
    """A RUNNING trial that no process runs any more: its process on this machine is gone (recorded in
    the trial when it starts), or, run elsewhere or before it was recorded, it started STALE_TRIAL_S ago
    (or at all, with ``unowned``: a stop between the trial's creation and that record leaves none)."""
    owner = trial.user_attrs.get("process")
    if owner and owner.get("host") == socket.gethostname():
        return not _alive(int(owner["pid"]), owner.get("start"))
    return unowned and not owner or now - trial.datetime_start.timestamp() > STALE_TRIAL_S


def fail_stale_trials(study, unowned: bool = False) -> int:
    """Mark the study's stale RUNNING trials (:func:`_stale`) failed, so they are run again; returns how
    many.  ``unowned``: fail the trials that name no process too (safe before any process of this run
    starts a trial: :func:`tune` calls it so)."""
    import optuna

    n, now = 0, time.time()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if _stale(t, now, unowned):
            try:
                study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
                n += 1
            except RuntimeError:  # another process of the study failed it first (UpdateFinishedTrialError)
                pass
    return n


def run_study(method: str, scheme: str, sparsity: float, *, dataset: str = "fashion-mnist", profile: str = "cpu",
              n_trials: int = N_TRIALS, seeds: Sequence[int] = TUNING_SEEDS, storage: str | os.PathLike = "results/tuning",
              results: str | os.PathLike = "results/store", sampler_seed: int = 0, data_root: str | None = None,
              threads: int | None = None, slot: int = 0, n_slots: int = 1,
              log: Callable[[str], None] | None = None) -> dict:
    """Run (or resume) one study until it holds ``n_trials`` trials; returns its record.

    Several processes may run the same study at once (they share its storage; each samples with the
    study's seed plus its ``slot``); together they stop at ``n_trials``.  Trial 0 is the method's
    published values for the setting.
    """
    import optuna

    if threads:
        import torch

        os.environ["ADVUNLEARN_THREADS"] = str(int(threads))
        torch.set_num_threads(int(threads))
    seeds = _check_seeds(seeds)
    n_trials = check_range("n_trials", n_trials, 1, integer=True)
    name = study_name(method, scheme, sparsity)
    space = method_space(method, scheme, sparsity)
    exps = [_experiment(dataset, profile, scheme, sparsity, s, results, data_root) for s in seeds]
    refs = [measures(_retrain(exp), exp) for exp in exps]  # each tuning seed's Retrain: the target
    anchor = published_values(method, scheme, sparsity)
    check_stored_space(method, scheme, sparsity, storage)
    # Each process of a study (``slot`` of ``n_slots``) samples with its own seed, so side-by-side
    # processes never propose the same values.
    study = _open_study(method, scheme, sparsity, storage, sampler_seed + slot, n_trials, (space, anchor, seeds))

    me = {"host": socket.gethostname(), "pid": os.getpid(), "start": _process_start(os.getpid())}

    # values that change how fast, never what, a trial computes (the module's TUNING_FIXED)
    from ..methods import get as _get

    fast = dict(getattr(_get(method).module, "TUNING_FIXED", {}))

    def objective(trial):
        from ..experiments.runner import run_method

        trial.set_user_attr("process", me)  # a rerun fails this trial at once if this process is gone
        hp = suggest(trial, space)
        per_seed = []
        t0 = time.perf_counter()
        for exp, ref in zip(exps, refs):
            model, _ = run_method(exp, method, **hp, **fast)
            m = measures(model, exp)
            per_seed.append({"seed": exp.seed, **m, "distance": distance(m, ref)})
        trial.set_user_attr("per_seed", per_seed)
        trial.set_user_attr("slot", slot)
        trial.set_user_attr("time_s", time.perf_counter() - t0)
        score = statistics.fmean(p["distance"] for p in per_seed)
        if log:
            log(f"{name} trial {trial.number}: {score:.3f}  {hp}")
        return score if math.isfinite(score) else 1e9

    # A trial left RUNNING by a killed or stopped process is failed on resume, so it is run again; if it
    # was trial 0, the published values are queued again (a failed trial leaves Optuna's queue).
    fail_stale_trials(study)
    with _creation_lock(storage, study_name(method, scheme, sparsity)):
        requeue_published(study, space, anchor)
    # The budget shared out between the study's processes, fixed in advance (slot k runs its quota
    # less the trials it already finished), so the total is exact whenever each process starts.
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if n_slots == 1:
        share = n_trials - len(done)
    else:
        quota = n_trials // n_slots + (1 if slot < n_trials % n_slots else 0)
        share = quota - sum(t.user_attrs.get("slot") == slot for t in done)
    share = max(0, share)
    if share:
        study.optimize(objective, n_trials=share, catch=(FloatingPointError, RuntimeError, ValueError))
    return study_record(study, method, scheme, sparsity, refs, seeds)


def check_stored_space(method: str, scheme: str, sparsity: float, storage) -> None:
    """A ConfigError if the study stored under ``storage`` searched another space than the method's
    SPACE now (a widened space starts a new study: move the old file aside, it records the edge)."""
    url = _storage_url(storage, study_name(method, scheme, sparsity))
    if not url.startswith("sqlite:///") or not Path(url[len("sqlite:///"):]).exists():
        return
    import optuna

    try:
        st = optuna.load_study(study_name=study_name(method, scheme, sparsity), storage=url)
    except KeyError:  # the file holds no such study yet
        return
    stored, now = st.user_attrs.get("space"), _space_json(method_space(method, scheme, sparsity))
    if stored is not None and stored != now:
        raise ConfigError(f"study {study_name(method, scheme, sparsity)} in {url[len('sqlite:///'):]} searched {stored}, "
                          f"but {method}'s space there is now {now}; move that file aside to start the study again")


def _retrain(exp):
    from ..experiments.runner import run_method

    model, _ = run_method(exp, "retrain")
    return model


def study_record(study, method, scheme, sparsity, refs, seeds) -> dict:
    import optuna

    from ..methods import get

    space = method_space(method, scheme, sparsity)
    hard = get(method).hard_bounds
    trials = []
    for t in study.trials:
        if t.state != optuna.trial.TrialState.COMPLETE:
            continue
        trials.append({"number": t.number, "params": from_optuna(t.params, space), "score": t.value,
                       "default": bool(t.user_attrs.get("default")), "per_seed": t.user_attrs.get("per_seed"),
                       "time_s": t.user_attrs.get("time_s")})
    trials.sort(key=lambda t: t["number"])
    best = min(trials, key=lambda t: (t["score"], t["number"])) if trials else None
    return {"method": method, "scheme": scheme, "sparsity": sparsity, "setting": setting_key(scheme, sparsity),
            "space": study.user_attrs.get("space"), "hard_bounds": {k: dict(v) for k, v in hard.items()},
            "sampler_seed": study.user_attrs.get("sampler_seed"), "n_startup": N_STARTUP,
            "seeds": seeds, "retrain": refs, "criterion": list(CRITERION),
            "n_trials": len(trials), "trials": trials, "chosen": best["params"] if best else None,
            "chosen_score": best["score"] if best else None,
            "edges": edges(best["params"], space, hard) if best else {},
            "default_score": next((t["score"] for t in trials if t["default"]), None)}


def _one_thread() -> None:
    """Studies run side by side, one thread each: several threads per process on busy cores spin
    against each other (measured here: a step 10-30x slower).  ADVUNLEARN_THREADS keeps the first
    Experiment of the process from raising the count again."""
    import torch

    os.environ["ADVUNLEARN_THREADS"] = "1"
    torch.set_num_threads(1)


def _study_task(kw: dict) -> dict:
    os.environ.setdefault("ADVUNLEARN_PROGRESS", "0")
    _one_thread()
    return run_study(**kw)


def _study_job(_spec, kw: dict) -> dict:  # (as :func:`advunlearn.experiments.workers.run_tasks` calls it)
    return _study_task(kw)


def _run_jobs(fn, jobs: list, workers: int, backend: str, address: str | None, on_result=None) -> list:
    """``fn(None, job)`` for every job: here, on ``workers`` single-thread processes or as Ray tasks.
    The pool of ``run``, ``ulira`` and the memorisation scores: one Ctrl-C or SIGTERM cancels the queued
    jobs and ends the running ones with their processes; Optuna's storage keeps every finished trial."""
    from ..experiments.workers import run_tasks

    return run_tasks(None, None, fn, [(j,) for j in jobs], workers=max(1, workers),
                     backend="ray" if backend == "ray" else "process", address=address, on_result=on_result)


def tune(methods: Sequence[str], settings: Iterable[tuple[str, float]] = SETTINGS, *, workers: int = 1,
         backend: str = "local", address: str | None = None, slots: Mapping[str, int] | None = None,
         log: Callable[[str], None] | None = print, **kw) -> list[dict]:
    """Run every (method, setting) study on ``workers`` processes (one thread each); returns the records.

    ``slots``: processes per study for a method (default 1), e.g. ``{"ours": 4}`` for the slowest
    method, whose trials then run side by side within the same budget of ``n_trials``.
    """
    check_choice("backend", backend, ("local", "ray"))
    methods = list(methods)
    for m in methods:
        check_choice("method", m, tunable_methods())
    seeds = _check_seeds(kw.get("seeds", TUNING_SEEDS))
    settings = list(settings)
    # Shared artifacts first (each tuning seed's original and Retrain), so studies never race for them.
    _prepare({(s, sp) for s, sp in settings}, workers, kw, attacker="ours" in methods)
    n_trials = kw.get("n_trials", N_TRIALS)
    jobs = []
    for s, sp in settings:
        for m in methods:
            # create the study (and enqueue its published values) once, before its processes start
            space = method_space(m, s, sp)
            st = _open_study(m, s, sp, kw.get("storage", "results/tuning"), kw.get("sampler_seed", 0), n_trials,
                             (space, published_values(m, s, sp), seeds))
            fail_stale_trials(st, unowned=True)  # no process of this run has started a trial yet
            k = max(1, min(slots.get(m, 1) if slots else 1, n_trials))
            for slot in range(k):
                jobs.append(dict(method=m, scheme=s, sparsity=sp, threads=1, slot=slot, n_slots=k, **kw))
    # the longest studies first, so they do not finish last
    jobs.sort(key=lambda j: -(slots or {}).get(j["method"], 1))
    t0 = time.perf_counter()
    out: dict[str, dict] = {}

    def done(rec):
        out[study_name(rec["method"], rec["scheme"], rec["sparsity"])] = rec
        if log and (workers > 1 or backend == "ray"):
            log(f"{rec['method']:14s} {rec['setting']:13s} trials {rec['n_trials']}  best {rec['chosen_score']:.3f} "
                f"(default {rec['default_score']})  [{time.perf_counter() - t0:.0f}s]")

    _run_jobs(_study_job, jobs, workers, backend, address, on_result=done)
    # the final record of every study, read after all its processes finished
    final = []
    for s, sp in settings:
        for m in methods:
            st = _open_study(m, s, sp, kw.get("storage", "results/tuning"), kw.get("sampler_seed", 0), n_trials)
            prev = out.get(study_name(m, s, sp), {})
            final.append(study_record(st, m, s, sp, prev.get("retrain"), list(seeds)))
    return sorted(final, key=lambda r: (r["setting"], r["method"]))


def _prepare_task(_spec, kw: dict) -> None:
    _one_thread()
    from ..experiments.runner import run_method

    exp = _experiment(kw["dataset"], kw["profile"], kw["scheme"], kw["sparsity"], kw["seed"], kw["results"],
                      kw.get("data_root"))
    exp.original()
    run_method(exp, "retrain")
    if kw.get("attacker"):  # Ours' stored attacker, shared by its trials (one per seed and sparsity)
        from ..methods.ours import pretrained_attacker

        pretrained_attacker(exp)


def _prepare(settings, workers, kw, attacker: bool = False) -> None:
    base = {k: kw.get(k, d) for k, d in (("dataset", "fashion-mnist"), ("profile", "cpu"),
                                          ("results", "results/store"), ("data_root", None))}
    seeds = kw.get("seeds", TUNING_SEEDS)
    # dense originals first (sparse ones start from them)
    for phase in (0, 1):
        jobs = [dict(base, scheme=s, sparsity=sp, seed=seed, attacker=attacker) for s, sp in sorted(settings)
                for seed in seeds if (sp > 0) == bool(phase)]
        _run_jobs(_prepare_task, jobs, workers, "local", None)


# ---------------------------------------------------------------------------------------------
# freezing the chosen values
# ---------------------------------------------------------------------------------------------
def tuned_path(profile: str, dataset: str, folder: str | os.PathLike | None = None) -> Path:
    return Path(folder or TUNED_DIR) / f"{profile}-{dataset}.json"


def freeze(records: Sequence[Mapping], profile: str, dataset: str, *, folder: str | os.PathLike | None = None,
           record_path: str | os.PathLike | None = None, allow_edges: bool = False) -> Path:
    """Write the chosen values ``{setting: {method: hparams}}`` where the profile reads them, and the
    full study record (space, trials, scores, chosen values, tuning seeds) to ``record_path``.

    A chosen value at an edge of its space (:func:`edges`) is refused, naming every such study: widen
    its space and rerun it (``allow_edges`` writes them anyway, for a test or a look)."""
    from ..core.store import atomic_write_json

    chosen: dict[str, dict[str, dict]] = {}
    at_edge = []
    for r in records:
        if r.get("chosen") is None:
            raise ConfigError(f"study {r['method']}.{r['setting']} has no finished trial; run it before freezing")
        chosen.setdefault(r["setting"], {})[r["method"]] = r["chosen"]
        if r.get("edges"):
            at_edge.append(f"{r['method']}.{r['setting']} {r['edges']}")
    if at_edge and not allow_edges:
        raise ConfigError(f"chosen values within {EDGE:.0%} of a bound that is not a hard limit: {'; '.join(at_edge)}; "
                          "widen those search spaces (the method's SPACE) and rerun the studies")
    path = tuned_path(profile, dataset, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {k: dict(sorted(v.items())) for k, v in sorted(chosen.items())})
    if record_path is not None:
        Path(record_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(record_path, {"profile": profile, "dataset": dataset, "criterion": list(CRITERION),
                                        "reporting_seeds": list(REPORTING_SEEDS), "studies": list(records)})
    return path


__all__ = ["TUNING_SEEDS", "REPORTING_SEEDS", "SETTINGS", "measures", "distance", "run_study", "tune", "freeze",
           "tuned_path", "method_space"]
