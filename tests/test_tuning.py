"""The tuning protocol: the same budget and criterion for every method, tuning seeds only, resumable,
frozen values picked up by the profile."""

import json
import math

import pytest

from advunlearn.core.config import ConfigError
from advunlearn.studies.tuning import CRITERION, N_STARTUP, N_TRIALS, REPORTING_SEEDS, SETTINGS, distance, freeze, run_study, tune
from advunlearn.studies.tuning_report import record_markdown
from advunlearn.studies.tuning_space import (EDGE, edges, from_optuna, method_space, position, published_values,
                                             setting_key, study_seed, to_optuna, tunable_methods)


def test_distance_is_the_mean_absolute_difference_and_inf_when_diverged():
    ref = {"UA": 10.0, "RA": 100.0, "VA_heldout": 85.0, "MIA_val": 20.0}
    m = {"UA": 12.0, "RA": 98.0, "VA_heldout": 85.0, "MIA_val": 24.0}
    assert distance(m, ref) == pytest.approx((2 + 2 + 0 + 4) / 4)
    assert distance({**m, "MIA_val": float("nan")}, ref) == float("inf")
    assert set(CRITERION) == set(ref)  # no test-set quantity in the criterion


def test_every_method_with_a_search_space_is_tuned_and_the_references_are_not():
    names = tunable_methods()
    assert {"ft", "ga", "ff", "iu", "rl", "salun", "neggrad_plus", "scrub", "l1_sparse", "ssd", "ours"} <= set(names)
    assert not {"retrain", "retrain_seed2", "ours_no_vss"} & set(names)


def test_reporting_seeds_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="reporting seeds"):
        run_study("ft", "random", 0.0, dataset="digits", profile="tiny", seeds=[100, REPORTING_SEEDS[0]],
                  storage=tmp_path, results=tmp_path)


def test_a_study_starts_from_the_published_values_resumes_and_freezes(tmp_path, one_thread):
    kw = dict(dataset="digits", profile="tiny", seeds=[100], storage=tmp_path / "db", results=tmp_path / "store")
    rec = run_study("ft", "random", 0.0, n_trials=2, **kw)
    assert rec["n_trials"] == 2 and rec["seeds"] == [100]
    first = rec["trials"][0]
    assert first["default"] and first["params"] == {"lr": 0.01, "epochs": 10}  # Jia et al.'s FT recipe
    assert rec["sampler_seed"] == study_seed("ft.random-dense") and rec["n_startup"] == N_STARTUP
    assert rec["chosen_score"] == min(t["score"] for t in rec["trials"])
    assert all(set(p) >= set(CRITERION) for t in rec["trials"] for p in t["per_seed"])
    # resuming with a larger budget runs only the missing trials
    again = run_study("ft", "random", 0.0, n_trials=3, **kw)
    assert again["n_trials"] == 3 and [t["params"] for t in again["trials"][:2]] == [t["params"] for t in rec["trials"]]
    path = freeze([again], "tiny", "digits", folder=tmp_path / "tuned", record_path=tmp_path / "record.json",
                  allow_edges=True)
    frozen = json.loads(path.read_text())
    assert frozen == {"random-dense": {"ft": again["chosen"]}}
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["studies"][0]["trials"] and "| random-dense | ft | 3 |" in record_markdown(record)


def test_frozen_values_are_what_the_profile_runs(tmp_path, monkeypatch):
    from advunlearn.experiments.experiment import Experiment
    from advunlearn.methods import resolve_hparams

    folder = tmp_path / "tuned"
    freeze([{"method": "ft", "setting": "random-dense", "chosen": {"lr": 0.0123, "epochs": 3}},
            {"method": "ours", "setting": "random-dense", "chosen": {"alpha": 4.5, "iterations": 77}}],
           "tiny", "digits", folder=folder)
    monkeypatch.setenv("ADVUNLEARN_TUNED_DIR", str(folder))
    exp = Experiment(dataset="digits", profile="tiny", seed=100, results=tmp_path / "store", progress=False)
    assert resolve_hparams(exp, "ft", {})["lr"] == 0.0123 and resolve_hparams(exp, "ft", {})["epochs"] == 3
    hp = resolve_hparams(exp, "ours", {})
    assert hp["alpha"] == 4.5 and hp["iterations"] == 77
    assert resolve_hparams(exp, "ours_no_vss", {})["beta"] == 0.0
    exp_sparse = Experiment(dataset="digits", profile="tiny", seed=100, sparsity=0.95, results=tmp_path / "store",
                            progress=False)
    assert resolve_hparams(exp_sparse, "ft", {})["lr"] != 0.0123  # another setting keeps its own values


# ---- protocol 2 ------------------------------------------------------------------------------------
def test_protocol_2_budget_and_startup():
    assert N_TRIALS >= 50 and N_STARTUP >= 10


@pytest.mark.parametrize("method", tunable_methods())
def test_published_values_lie_well_inside_every_space(method):
    from advunlearn.methods import get

    spec = get(method)
    for scheme, sparsity in SETTINGS + (("memorized", 0.0), ("memorized", 0.95)):
        anchor = published_values(method, scheme, sparsity)
        space = method_space(method, scheme, sparsity)
        assert set(anchor) == set(spec.space) == set(space)
        assert edges(anchor, space, spec.hard_bounds) == {}, (method, scheme, sparsity, anchor)


def test_published_values_follow_each_setting():
    assert published_values("ours", "random", 0.0)["lr"] == 0.01
    assert published_values("ours", "random", 0.95)["lr"] == 0.03
    cls = published_values("ours", "class", 0.0)
    assert cls["lr"] == 0.02 and cls["alpha_off_after"] == 30 and cls["alpha"] == 0.9
    # the random scheme keeps α on: alpha_off_after at its upper bound, which Ours names a hard limit
    rnd = published_values("ours", "random", 0.0)
    assert rnd["alpha_off_after"] >= rnd["iterations"]
    assert published_values("ours", "memorized", 0.95) == published_values("ours", "random", 0.95)
    assert published_values("salun", "random", 0.0)["epochs"] == 10


def test_every_study_samples_with_its_own_seed():
    names = [f"{m}.{s}-{'sparse' if sp else 'dense'}" for m in tunable_methods() for s, sp in SETTINGS]
    seeds = [study_seed(n) for n in names]
    assert len(set(seeds)) == len(seeds)
    assert study_seed("ft.random-dense", 1) == study_seed("ft.random-dense") + 1


def test_log1m_searches_one_minus_beta_on_a_log_scale():
    import optuna

    space = {"beta": ("log1m", 0.5, 0.99999), "lr": ("log", 1e-3, 1e-1)}
    assert to_optuna({"beta": 0.999, "lr": 0.01}, space) == {"1-beta": pytest.approx(1e-3), "lr": 0.01}
    assert from_optuna({"1-beta": 1e-3, "lr": 0.01}, space)["beta"] == pytest.approx(0.999)
    assert position(0.999, space["beta"]) == pytest.approx(
        (math.log(0.5) - math.log(1e-3)) / (math.log(0.5) - math.log(1e-5)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from advunlearn.studies.tuning_space import suggest

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    betas = []
    for _ in range(400):
        t = study.ask()
        betas.append(suggest(t, space)["beta"])
        study.tell(t, 0.0)
    assert all(0.5 <= b <= 0.99999 for b in betas)
    # log-uniform in 1 - β: about a quarter of the draws have 1 - β below 1e-4 (ln 10 / ln(0.5 / 1e-5) = 21%)
    share = sum(1 - b < 1e-4 for b in betas) / len(betas)
    assert 0.13 < share < 0.30, share


def test_edges_and_hard_bounds():
    space = {"lr": ("log", 1e-3, 1e-1), "epochs": ("int", 1, 21), "loop": ("cat", ["a", "b"]),
             "off": ("logint", 5, 600)}
    assert edges({"lr": 0.01, "epochs": 11, "loop": "a", "off": 30}, space) == {}
    assert edges({"lr": 1.1e-3, "epochs": 21}, space) == {"lr": "lo", "epochs": "hi"}
    assert edges({"epochs": 1, "off": 600}, space, {"epochs": ("lo", "one epoch"), "off": ("hi", "never")}) == {}
    assert edges({"epochs": 21}, space, {"epochs": ("lo", "one epoch")}) == {"epochs": "hi"}
    assert position(30, space["off"]) == pytest.approx(math.log(6) / math.log(120))
    assert EDGE == 0.05
    # a bound hard on both sides, the form {"lo": why, "hi": why}
    both = {"epochs": {"lo": "one epoch", "hi": "costs more than Retrain"}}
    assert edges({"epochs": 1}, space, both) == {} and edges({"epochs": 21}, space, both) == {}
    assert edges({"epochs": 21}, space, {"epochs": {"lo": "one epoch"}}) == {"epochs": "hi"}


def test_a_method_names_both_bounds_hard_and_a_bad_hard_bound_is_refused():
    import types

    from advunlearn.methods import get, names, register

    ft = get("ft")
    assert set(ft.hard_bounds["epochs"]) == {"lo", "hi"}
    assert edges({"lr": 0.1, "epochs": 120}, ft.space, ft.hard_bounds) == {}
    assert edges({"lr": 0.1, "epochs": 120}, ft.space) == {"epochs": "hi"}
    for bad in (("top", "why"), {"middle": "why"}, {"hi": ""}, ("hi",)):
        mod = types.ModuleType("bad_method")
        mod.__dict__.update({k: getattr(ft.module, k) for k in ("DEFAULTS", "SPACE", "CHECKS", "VERSION", "run")},
                            HARD_BOUNDS={"epochs": bad})
        with pytest.raises(TypeError, match="HARD_BOUNDS"):
            register("bad_method", mod)
        assert "bad_method" not in names()


def test_a_study_widened_in_one_setting_searches_there_only():
    from advunlearn.studies.tuning_space import WIDENED

    assert WIDENED, "the record of per-study widenings"
    for name, wider in WIDENED.items():
        method, setting = name.split(".")
        scheme, density = setting.split("-")
        sparsity = 0.0 if density == "dense" else 0.95
        base = method_space(method)
        here = method_space(method, scheme, sparsity)
        for k, spec in wider.items():
            assert here[k] == spec and spec[1] <= base[k][1] and spec[2] >= base[k][2] and spec != base[k]
    for method in tunable_methods():  # a study not named in WIDENED searches its method's SPACE
        for s, sp in SETTINGS:
            if f"{method}.{s}-{'dense' if sp == 0 else 'sparse'}" not in WIDENED:
                assert method_space(method, s, sp) == method_space(method), (method, s, sp)
    # SCRUB+R shares SCRUB's module, not its studies
    assert method_space("scrub_r", "random", 0.95) == method_space("scrub_r")


def test_freeze_refuses_a_value_at_the_edge_of_its_space(tmp_path):
    rec = {"method": "ft", "setting": "random-dense", "chosen": {"lr": 0.0999, "epochs": 12},
           "edges": {"lr": "hi"}}
    with pytest.raises(ConfigError, match=r"ft.random-dense .*lr.*widen"):
        freeze([rec], "tiny", "digits", folder=tmp_path / "tuned")
    assert not (tmp_path / "tuned").exists()
    freeze([rec], "tiny", "digits", folder=tmp_path / "tuned", allow_edges=True)


def test_a_study_record_names_its_edges(tmp_path, one_thread):
    kw = dict(dataset="digits", profile="tiny", seeds=[100], storage=tmp_path / "db", results=tmp_path / "store")
    rec = run_study("ssd", "random", 0.0, n_trials=3, **kw)
    from advunlearn.methods import get

    spec = get("ssd")
    assert rec["edges"] == edges(rec["chosen"], spec.space, spec.hard_bounds)
    assert [t["number"] for t in rec["trials"]] == [0, 1, 2]


# ---- the memorized scheme runs tuned values ---------------------------------------------------------
def _tuned_everywhere(folder):
    """A tuned file with a distinct value of one hyperparameter per method and setting."""
    from advunlearn.methods import get

    out = {}
    for k, (s, sp) in enumerate(SETTINGS):
        key = f"{s}-{'sparse' if sp else 'dense'}"
        out[key] = {}
        for i, m in enumerate(tunable_methods()):
            anchor = published_values(m, s, sp)
            name = next(n for n, spec in get(m).space.items() if spec[0] != "cat")
            spec = get(m).space[name]
            frac = 0.2 + 0.1 * k + 0.01 * i
            v = spec[1] + frac * (spec[2] - spec[1])
            out[key][m] = {**anchor, name: int(round(v)) if spec[0] in ("int", "logint") else v}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny-digits.json").write_text(json.dumps(out))
    return out


@pytest.mark.parametrize("sparsity", [0.0, 0.95])
def test_every_method_runs_its_tuned_values_in_the_memorized_scheme(tmp_path, sparsity):
    """The memorized scheme reads the random scheme's tuned values (an explicit fallback the records
    name in ``hparams_scheme``), never the module defaults."""
    from types import SimpleNamespace

    from advunlearn.experiments.profiles import get_profile
    from advunlearn.methods import resolve_hparams

    tuned = _tuned_everywhere(tmp_path / "tuned")
    prof = get_profile("tiny", "digits", tuned_dir=tmp_path / "tuned")
    key = f"random-{'sparse' if sparsity else 'dense'}"
    for m in tunable_methods():
        hp = resolve_hparams(SimpleNamespace(prof=prof, scheme="memorized", sparsity=sparsity), m)
        for name, v in tuned[key][m].items():
            assert hp[name] == pytest.approx(v), (m, name)
        # the ablation follows Ours
    abl = resolve_hparams(SimpleNamespace(prof=prof, scheme="memorized", sparsity=sparsity), "ours_no_vss")
    assert abl["alpha"] == pytest.approx(tuned[key]["ours"]["alpha"]) and abl["beta"] == 0.0


def test_tuning_fixed_values_change_how_fast_not_what_a_trial_computes(tmp_path, one_thread):
    """Ours' trials skip the history's records (TUNING_FIXED); the unlearned model is the same."""
    import torch

    from advunlearn.experiments.experiment import Experiment
    from advunlearn.methods import get, run_method

    fixed = get("ours").module.TUNING_FIXED
    assert set(fixed) == {"record_every"}
    exp = Experiment(dataset="digits", profile="tiny", seed=100, results=tmp_path, device="cpu", progress=False)
    hp = {"iterations": 30, "alpha": 5.0, "beta": 1e-3, "record_every": 5}
    plain, info = run_method(exp, "ours", **hp)
    fast, info_fast = run_method(exp, "ours", **{**hp, **fixed})
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), fast.state_dict().values()))
    assert info_fast["records_time_s"] < info["records_time_s"]


def _open_same_storage(args):
    from advunlearn.studies.tuning import _open_study

    storage, barrier_path, i = args
    import os
    import time

    # start together: wait until every process has touched its flag file
    open(f"{barrier_path}.{i}", "w").close()
    while len([p for p in os.listdir(os.path.dirname(barrier_path)) if p.startswith("go.")]) < 4:
        time.sleep(0.01)
    st = _open_study("ft", "random", 0.0, storage, 0, 5, ({"lr": ("log", 1e-3, 1e-1), "epochs": ("int", 1, 30)},
                                                          {"lr": 0.01, "epochs": 10}, [100]))
    return len(st.trials)


def test_processes_creating_one_new_storage_at_once_all_succeed_with_one_enqueued_trial(tmp_path):
    """Four processes open the same new study storage at the same moment: none fails (the SQLite schema's
    creation races otherwise: sqlite3.IntegrityError on alembic_version) and trial 0 is enqueued once."""
    import multiprocessing as mp

    import optuna

    ctx = mp.get_context("spawn")
    barrier = tmp_path / "go"
    with ctx.Pool(4) as pool:
        got = pool.map(_open_same_storage, [(str(tmp_path / "db"), str(barrier), i) for i in range(4)])
    assert got == [1, 1, 1, 1]
    st = optuna.load_study(study_name="ft.random-dense", storage=f"sqlite:///{tmp_path / 'db' / 'ft.random-dense.db'}")
    assert len(st.trials) == 1 and st.trials[0].system_attrs["fixed_params"] == {"lr": 0.01, "epochs": 10}


def test_a_study_of_another_space_is_not_resumed(tmp_path, monkeypatch, one_thread):
    from advunlearn.methods import get

    kw = dict(dataset="digits", profile="tiny", seeds=[100], storage=tmp_path / "db", results=tmp_path / "store")
    run_study("ssd", "random", 0.0, n_trials=1, **kw)
    mod = get("ssd").module
    monkeypatch.setattr(mod, "SPACE", {**mod.SPACE, "alpha": ("log", 0.1, 5000.0)})
    with pytest.raises(ConfigError, match=r"ssd.random-dense .* space there is now .*move that file aside"):
        run_study("ssd", "random", 0.0, n_trials=2, **kw)


def test_published_values_cut_short_are_queued_again_on_resume(tmp_path):
    """Trial 0 (the published values) stopped while running is failed on resume; Optuna would never
    retry it, so the study queues the published values again (once), and not when they are finished."""
    import optuna

    from advunlearn.studies.tuning import _open_study, fail_stale_trials, requeue_published, to_optuna

    space, anchor = {"lr": ("log", 1e-3, 1e-1), "epochs": ("int", 1, 30)}, {"lr": 0.01, "epochs": 10}
    st = _open_study("ft", "random", 0.0, tmp_path / "db", 0, 5, (space, anchor, [100]))
    t0 = st.ask()  # trial 0 starts: the published values, RUNNING
    fixed = to_optuna(anchor, space)
    assert t0.user_attrs["default"] and st.trials[0].system_attrs["fixed_params"] == fixed
    # its process is gone (a pid no process has: Linux pids stay below 2**22)
    t0.set_user_attr("process", {"host": __import__("socket").gethostname(), "pid": 2**22 + 7, "start": None})
    assert fail_stale_trials(st) == 1
    assert requeue_published(st, space, anchor) is True
    assert requeue_published(st, space, anchor) is False  # queued once
    t1 = st.ask()
    assert t1.user_attrs["default"] and st.trials[1].system_attrs["fixed_params"] == fixed
    st.tell(t1, 1.0)
    assert requeue_published(st, space, anchor) is False  # finished: nothing queued
    S = optuna.trial.TrialState
    assert [t.state for t in st.trials] == [S.FAIL, S.COMPLETE]


def test_a_trial_cut_short_before_it_names_its_process_is_failed_when_a_run_starts(tmp_path):
    """A stop can land between a trial's creation and the record of its process: such a trial names no
    process.  A resuming study leaves it alone (another process of the run may have just created it),
    but ``tune`` fails it before any process of the new run starts, so the rerun runs it again."""
    import optuna

    from advunlearn.studies.tuning import _open_study, fail_stale_trials

    space, anchor = {"lr": ("log", 1e-3, 1e-1), "epochs": ("int", 1, 30)}, {"lr": 0.01, "epochs": 10}
    st = _open_study("ft", "random", 0.0, tmp_path / "db", 0, 5, (space, anchor, [100]))
    st.ask()  # RUNNING, no process named
    assert fail_stale_trials(st) == 0
    assert fail_stale_trials(st, unowned=True) == 1
    assert [t.state for t in st.trials] == [optuna.trial.TrialState.FAIL]


def test_the_committed_testbed_record_is_protocol_2():
    """results/tuning/cpu-fashion-mnist.json, the record behind the README's tables: every tuned method
    in all four settings, at least 50 completed trials per study, trial 0 the published values, a
    sampler seed of its own per study, no chosen value at a soft edge, and the frozen values equal
    to the record's choices."""
    from pathlib import Path

    from advunlearn.studies.tuning import tuned_path

    root = Path(__file__).resolve().parents[1]
    rec = json.loads((root / "results" / "tuning" / "cpu-fashion-mnist.json").read_text())
    studies = rec["studies"]
    assert {(s["method"], s["setting"]) for s in studies} == {
        (m, setting_key(sc, sp)) for m in tunable_methods() for sc, sp in SETTINGS}
    assert all(s["n_trials"] >= 50 and len(s["trials"]) == s["n_trials"] for s in studies)
    assert all(s["trials"][0]["number"] == 0 and s["trials"][0]["default"] for s in studies)
    assert len({s["sampler_seed"] for s in studies}) == len(studies)
    assert all(s["edges"] == {} for s in studies), [(s["method"], s["setting"], s["edges"]) for s in studies if s["edges"]]
    frozen = json.loads(tuned_path("cpu", "fashion-mnist").read_text())
    for s in studies:
        assert frozen[s["setting"]][s["method"]] == s["chosen"], (s["method"], s["setting"])


def test_docs_tuning_shows_the_committed_record():
    """docs/tuning.md's spaces, adequacy and chosen-values tables and its best-so-far SVG are what
    tuning_report builds from the committed record (and the modules' spaces) now."""
    from pathlib import Path

    from advunlearn.studies.tuning_report import adequacy_markdown, best_so_far_svg, chosen_markdown, spaces_markdown

    root = Path(__file__).resolve().parents[1]
    studies = json.loads((root / "results" / "tuning" / "cpu-fashion-mnist.json").read_text())["studies"]
    doc = (root / "docs" / "tuning.md").read_text()
    for table in (spaces_markdown(), adequacy_markdown(studies), chosen_markdown(studies)):
        assert table in doc, table.splitlines()[0]
    assert (root / "docs" / "img" / "tuning-best-so-far.svg").read_text() == best_so_far_svg(studies)
