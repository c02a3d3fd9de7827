"""The tuning protocol: the same budget and criterion for every method, tuning seeds only, resumable,
frozen values picked up by the profile."""

import json

import pytest

from advunlearn.config import ConfigError
from advunlearn.tuning import (CRITERION, REPORTING_SEEDS, distance, freeze, record_markdown, run_study,
                               tunable_methods, tune)


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


def test_a_study_starts_from_the_default_resumes_and_freezes(tmp_path, one_thread):
    kw = dict(dataset="digits", profile="tiny", seeds=[100], storage=tmp_path / "db", results=tmp_path / "store")
    rec = run_study("ft", "random", 0.0, n_trials=2, **kw)
    assert rec["n_trials"] == 2 and rec["seeds"] == [100]
    first = rec["trials"][0]
    assert first["default"] and first["params"]["epochs"] == 2  # the tiny digits profile's FT recipe
    assert rec["chosen_score"] == min(t["score"] for t in rec["trials"])
    assert all(set(p) >= set(CRITERION) for t in rec["trials"] for p in t["per_seed"])
    # resuming with a larger budget runs only the missing trials
    again = run_study("ft", "random", 0.0, n_trials=3, **kw)
    assert again["n_trials"] == 3 and [t["params"] for t in again["trials"][:2]] == [t["params"] for t in rec["trials"]]
    path = freeze([again], "tiny", "digits", folder=tmp_path / "tuned", record_path=tmp_path / "record.json")
    frozen = json.loads(path.read_text())
    assert frozen == {"random-dense": {"ft": again["chosen"]}}
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["studies"][0]["trials"] and "| random-dense | ft | 3 |" in record_markdown(record)


def test_frozen_values_are_what_the_profile_runs(tmp_path, monkeypatch):
    from advunlearn.experiment import Experiment
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
