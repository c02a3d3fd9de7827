"""Ours against the best baseline, seed by seed (paired interval and verdict), and the standing table."""

import statistics

import pytest

from advunlearn.report.comparison import paired, paired_markdown, standing, standing_markdown, t_interval, verdict


def _rec(method, seed, ua, scheme="random", sparsity=0.0):
    # Retrain sits at UA = 10 and the other three metrics agree: a method's Avg. Disparity is |UA - 10| / 4
    return {"dataset": "fashion-mnist", "scheme": scheme, "sparsity": sparsity, "seed": seed, "method": method,
            "UA": ua, "RA": 99.0, "TA": 85.0, "MIA_efficacy": 20.0, "run_time_s": 1.0}


def _records(ours_uas, baseline_uas, other_uas):
    recs = []
    for s, (o, b, x) in enumerate(zip(ours_uas, baseline_uas, other_uas)):
        recs += [_rec("retrain", s, 10.0), _rec("retrain_seed2", s, 10.4), _rec("ours", s, o),
                 _rec("salun", s, b), _rec("ft", s, x), _rec("ours_no_vss", s, 10.0)]
    return recs


def test_t_interval_matches_the_textbook():
    mean, lo, hi = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.7764451051977987 * statistics.stdev([1, 2, 3, 4, 5]) / 5 ** 0.5  # t(0.975, 4)
    assert (mean, lo, hi) == pytest.approx((3.0, 3.0 - half, 3.0 + half))
    with pytest.raises(ValueError, match="at least 2 seeds"):
        t_interval([1.0])
    assert verdict(-2, -0.1) == "wins" and verdict(0.1, 2) == "loses" and verdict(-1, 1) == "within the noise"


def test_ours_wins_when_every_seed_is_closer_to_retrain():
    rows = paired(_records([10.4, 10.8, 10.2, 10.6, 10.4], [14.0, 13.0, 15.0, 14.4, 13.6], [30] * 5))
    (r,) = rows
    assert r["opponent"] == "salun" and r["seeds"] == [0, 1, 2, 3, 4]     # not FT, not the ablation
    assert r["diffs"] == pytest.approx([(0.4 - 4.0) / 4, (0.8 - 3.0) / 4, (0.2 - 5.0) / 4, (0.6 - 4.4) / 4,
                                        (0.4 - 3.6) / 4])
    assert r["verdict"] == "wins" and r["high"] < 0
    assert r["noise_floor"] == pytest.approx(0.1)
    assert "**wins**" in paired_markdown(rows) and "SalUn" in paired_markdown(rows)


def test_a_mixed_record_is_within_the_noise_and_a_worse_one_loses():
    mixed = paired(_records([12.0, 8.5, 13.0, 9.0, 11.0], [11.0, 11.5, 9.0, 12.0, 10.5], [30] * 5))
    assert mixed[0]["verdict"] == "within the noise" and mixed[0]["low"] < 0 < mixed[0]["high"]
    worse = paired(_records([16.0, 17.0, 15.5, 16.5, 18.0], [11.0, 11.5, 10.5, 12.0, 10.8], [30] * 5))
    assert worse[0]["verdict"] == "loses" and worse[0]["low"] > 0


def test_standing_ranks_methods_before_and_after():
    before = _records([14.0] * 3, [11.0] * 3, [30.0] * 3)
    after = _records([10.5] * 3, [12.0] * 3, [30.0] * 3)
    rows = {r["method"]: r for r in standing(before, after)}
    # before: the ablation (disparity 0) #1, SalUn (0.25) #2, Ours (1.0) #3, FT #4
    assert [rows[m]["rank_before"] for m in ("ours_no_vss", "salun", "ours", "ft")] == [1, 2, 3, 4]
    assert rows["ours"]["rank_after"] < rows["salun"]["rank_after"]
    assert rows["retrain_seed2"]["rank_before"] is None                           # the noise floor: no rank
    md = standing_markdown(list(rows.values()))
    assert "| random, dense | Ours | 1.00 (#3) | 0.12 (#" in md


def test_the_report_has_the_paired_part(tmp_path):
    import json

    from advunlearn.report.document import document_parts

    (tmp_path / "r.json").write_text(json.dumps(_records([10.4, 10.8, 10.2], [14.0, 13.0, 15.0], [30] * 3)))
    parts = document_parts(tmp_path)
    assert "paired" in parts and "**wins**" in parts["paired"]


def test_ulira_over_seeds_has_a_student_t_interval():
    from advunlearn.report.ulira import ulira_seeds_markdown, ulira_seeds_rows

    def rec(method, seed, acc, score):
        return {"dataset": "fashion-mnist", "scheme": "random", "sparsity": 0.0, "seed": seed, "profile": "cpu",
                "method": method, "record": "ulira", "ulira": {"accuracy": acc, "n_shadows": 24},
                "neurips": {"score": score}}

    recs = [rec("retrain", s, 0.50 + 0.01 * s, 0.18) for s in range(3)] + \
        [rec("ours", s, a, 0.08) for s, a in enumerate((0.70, 0.74, 0.72))]
    rows = {r["method"]: r for r in ulira_seeds_rows(recs)}
    ours = rows["ours"]
    half = 4.302652729911275 * statistics.stdev([0.70, 0.74, 0.72]) / 3 ** 0.5   # t(0.975, 2)
    assert ours["seeds"] == [0, 1, 2] and ours["accuracy"] == pytest.approx(0.72)
    assert ours["accuracy_ci"] == pytest.approx((0.72 - half, 0.72 + half))
    md = ulira_seeds_markdown(recs)
    assert "| 0, 1, 2 | 72.0 [" in md and "**Retrain (floor)**" in md


def test_a_sibling_folder_of_earlier_runs_gives_the_standing_part(tmp_path):
    """`<name>-<suffix>` beside a results folder (the same batch run earlier) gives the part
    `standing/<name>-<suffix>`, which the README's check compares like every other block."""
    import json

    from advunlearn.report.document import check_document, document_parts, update_document

    before = _records([14.0] * 3, [11.0] * 3, [10.8] * 3)   # Ours last, behind the ablation, FT and SalUn
    after = _records([10.4] * 3, [13.0] * 3, [30.0] * 3)    # Ours second, behind its ablation only
    for name, recs in (("table", after), ("table-protocol1", before), ("table-empty", [])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text(json.dumps(recs))
    parts = document_parts(tmp_path / "table")
    assert "standing/table-protocol1" in parts and "standing/table-empty" not in parts
    assert parts["standing/table-protocol1"] == standing_markdown(standing(before, after))
    row = next(line for line in parts["standing/table-protocol1"].splitlines() if line.startswith("| random, dense | Ours |"))
    assert row == "| random, dense | Ours | 1.00 (#4) | 0.10 (#2) |"  # the ablation (UA 10) ranks first
    doc = tmp_path / "README.md"
    doc.write_text("<!-- report table standing/table-protocol1 -->\nold\n<!-- /report -->\n")
    assert check_document(tmp_path / "table", doc)  # stale: a problem
    assert update_document(tmp_path / "table", doc) == 1 and check_document(tmp_path / "table", doc) == []
