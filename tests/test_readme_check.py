"""The README's tables are checked against the published result files they were built from."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from advunlearn.report import check_document, report_parts, update_document

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = sorted(p for p in (ROOT / "results" / "published").glob("*") if p.is_dir())


def _records(tmp_path):
    recs = []
    for seed in (0, 1):
        for m, ua in (("retrain", 12.0), ("ft", 1.0 + seed), ("ours", 10.0 + seed)):
            recs.append({"dataset": "fashion-mnist", "scheme": "random", "sparsity": 0.0, "seed": seed, "method": m,
                         "UA": ua, "RA": 99.0, "TA": 85.0 + seed, "MIA_efficacy": 20.0 - seed, "run_time_s": 3.0})
    d = tmp_path / "toy-table"
    d.mkdir()
    (d / "records.json").write_text(json.dumps(recs))
    return d


def test_update_then_check_passes_and_one_changed_number_fails(tmp_path):
    d = _records(tmp_path)
    doc = tmp_path / "README.md"
    doc.write_text("# title\n\n<!-- report toy-table table1 -->\nstale\n<!-- /report -->\n\ntext after\n")
    assert check_document(d, doc)  # stale block
    assert update_document(d, doc) == 1
    assert check_document(d, doc) == []
    text = doc.read_text()
    assert "text after" in text and report_parts(json.loads((d / "records.json").read_text()))["table1"].strip() in text
    # change one number in the table: the check names the block and shows the line
    m = re.search(r"\| FT \| (\d+\.\d\d)", text)
    changed = text[:m.start(1)] + f"{float(m.group(1)) + 0.01:.2f}" + text[m.end(1):]
    doc.write_text(changed)
    problems = check_document(d, doc)
    assert len(problems) == 1 and "toy-table table1 differs" in problems[0] and "| FT |" in problems[0]
    # the command line exits non-zero, and 0 once the block is rebuilt
    cli = [sys.executable, "-m", "advunlearn.cli", "report", str(d), "--check", str(doc)]
    r = subprocess.run(cli, capture_output=True, text=True)
    assert r.returncode == 1 and "differs" in r.stderr
    update_document(d, doc)
    assert subprocess.run(cli, capture_output=True, text=True).returncode == 0


def test_a_document_without_a_block_for_the_folder_does_not_pass(tmp_path):
    d = _records(tmp_path)
    doc = tmp_path / "README.md"
    doc.write_text("no tables here\n")
    (problem,) = check_document(d, doc)
    assert "no '<!-- report toy-table PART -->' block" in problem and "table1" in problem


def test_a_block_naming_an_unknown_part_is_reported(tmp_path):
    d = _records(tmp_path)
    doc = tmp_path / "README.md"
    doc.write_text("<!-- report toy-table table9 -->\nx\n<!-- /report -->\n")
    (problem,) = check_document(d, doc)
    assert "no such part" in problem and "table1/fashion-mnist/random" in problem


def test_every_published_table_matches_the_readme():
    assert PUBLISHED, "results/published holds no table"
    for d in PUBLISHED:
        assert check_document(d, ROOT / "README.md") == [], d.name


def _fake_run(root, name, state, rows=None):
    import json

    d = root / "runs" / name
    d.mkdir(parents=True)
    (d / "status.json").write_text(json.dumps({"state": state, "settings": "abc", "params": {"seed": 0}}))
    (d / "params.json").write_text(json.dumps({"seed": 0}))
    (d / "04_evaluation.ipynb").write_text("{}")
    if rows is not None:
        (d / "result.json").write_text(json.dumps(rows))
    return d


def test_publish_copies_finished_runs_only_and_refuses_an_unfinished_batch(tmp_path):
    import csv

    from advunlearn.batch import publish
    from advunlearn.core.config import ConfigError

    src, dest = tmp_path / "batch", tmp_path / "published"
    row = {"dataset": "fashion-mnist", "scheme": "random", "sparsity": 0.0, "seed": 0, "method": "retrain",
           "UA": 12.0, "RA": 99.0, "TA": 85.0, "MIA_efficacy": 20.0}
    _fake_run(src, "a_seed0", "done", [row, {**row, "method": "ours", "UA": 11.0}])
    _fake_run(src, "b_seed1", "running")
    with pytest.raises(ConfigError, match="1 run\\(s\\) of .* are not done \\(b_seed1\\)"):
        publish(src, dest)
    assert not dest.exists()  # nothing written on refusal
    (dest / "runs" / "stale_run").mkdir(parents=True)
    got = publish(src, dest, allow_partial=True)
    assert got == {"runs": 1, "rows": 2, "skipped": ["b_seed1"], "removed": ["stale_run"]}
    assert sorted(p.name for p in (dest / "runs").iterdir()) == ["a_seed0"]  # the stale run is gone
    assert sorted(p.name for p in (dest / "runs" / "a_seed0").iterdir()) == ["params.json", "result.json",
                                                                            "status.json"]
    rows = list(csv.DictReader(open(dest / "results.csv")))
    assert [(r["run"], r["method"], r["UA"]) for r in rows] == [("a_seed0", "retrain", "12.0"),
                                                                ("a_seed0", "ours", "11.0")]
    with pytest.raises(ConfigError, match="no runs/ folder"):
        publish(tmp_path / "nowhere", dest)


def _ulira_record(method, acc, scheme="random"):
    return {"record": "ulira", "method": method, "dataset": "fashion-mnist", "scheme": scheme, "sparsity": 0.0,
            "seed": 0, "profile": "cpu",
            "ulira": {"n_shadows": 24, "accuracy": acc, "accuracy_ci": [acc - 0.02, acc + 0.02], "auc": acc + 0.01,
                      "auc_ci": [acc - 0.01, acc + 0.03], "tpr@1%": 0.05, "tpr@1%_ci": [0.04, 0.06],
                      "tpr@0.1%": None, "tpr@0.1%_note": "unresolved: 500 negatives < 1/FPR = 1000"},
            "neurips": {"score": 0.1, "score_ci": [0.09, 0.11], "forgetting_quality": 0.12,
                        "forgetting_quality_ci": [0.11, 0.13], "ra_ratio": 1.0, "ta_ratio": 0.99}}


def test_readme_check_covers_ulira_tables(tmp_path):
    import json

    from advunlearn.report.document import document_parts

    res = tmp_path / "fm-ulira"
    res.mkdir()
    (res / "random.json").write_text(json.dumps([_ulira_record("retrain", 0.5), _ulira_record("salun", 0.9),
                                                 _ulira_record("ours", 0.7)]))
    (res / "memorized.json").write_text(json.dumps([_ulira_record("retrain", 0.51, "memorized")]))
    parts = document_parts(res)
    assert set(parts) == {"ulira", "ulira/random", "ulira/memorized"}
    rows = [ln for ln in parts["ulira/random"].splitlines() if ln.startswith("| fashion-mnist")]
    assert [r.split(" | ")[1] for r in rows] == ["**Retrain (floor)**", "SalUn", "Ours"]  # registry order, labels
    doc = tmp_path / "README.md"
    doc.write_text(f"x\n<!-- report fm-ulira ulira/random -->\nold\n<!-- /report -->\n")
    assert update_document(res, doc) == 1
    assert check_document(res, doc) == []
    doc.write_text(doc.read_text().replace("90.0 [88.0, 92.0]", "91.0 [88.0, 92.0]"))
    problems = check_document(res, doc)
    assert len(problems) == 1 and "ulira/random differs" in problems[0]
