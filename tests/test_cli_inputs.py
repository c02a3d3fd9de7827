"""Bad paths and values for the newer commands (report --update/--check, publish, tune, ulira, batch,
notebooks): each is refused before any work starts, with one line that names the problem and what is
allowed, a non-zero exit status, no traceback, and nothing written, changed or removed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from advunlearn import cli

ROOT = Path(__file__).resolve().parents[1]
ROW = {"dataset": "fashion-mnist", "scheme": "random", "sparsity": 0.0, "method": "retrain",
       "UA": 12.0, "RA": 99.0, "TA": 85.0, "MIA_efficacy": 20.0, "run_time_s": 3.0}


def snapshot(root: Path) -> dict:
    """Every file's bytes and every folder under ``root``: equal snapshots = nothing changed."""
    out = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = p.read_bytes() if p.is_file() and not p.is_symlink() else (
            f"-> {os.readlink(p)}" if p.is_symlink() else "dir")
    return out


def run_cli(capsys, *args) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("advunlearn: error: "), err
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------------------------------------------
# report --update / --check: a document is rewritten whole or not at all
# ---------------------------------------------------------------------------------------------------
def _results(tmp_path, name="toy-table"):
    d = tmp_path / name
    for seed in (0, 1):
        run = d / "runs" / f"seed{seed}"
        run.mkdir(parents=True)
        recs = [{**ROW, "seed": seed, "method": m, "UA": ua + seed} for m, ua in (("retrain", 12.0), ("ft", 1.0))]
        (run / "result.json").write_text(json.dumps(recs))
    return d


TWO_BLOCKS = ("# title\n\n<!-- report toy-table table1 -->\nstale one\n{close1}"
              "between\n\n<!-- report toy-table table1/fashion-mnist/random -->\nstale two\n<!-- /report -->\n\nend\n")


@pytest.mark.parametrize("doc, line, needle", [
    (TWO_BLOCKS.format(close1=""), 3, "is not closed before the next '<!-- report toy-table table1/fashion-mnist/random -->' on line 7"),
    ("x\n<!-- report toy-table table1 -->\nstale\n", 2, "is never closed"),
    ("x\n<!-- /report -->\n<!-- report toy-table table1 -->\nstale\n<!-- /report -->\n", 2, "closes no block"),
    ("x\n<!-- report toy-table table1 -->\nstale\n<!-- /report -->\n<!-- /report -->\n", 5, "closes no block"),
    ("x\n<!-- report table1 -->\nstale\n<!-- /report -->\n", 2, "is malformed"),
    ("x\n<!-- report toy-table table1 -->\nstale\n<!-- /report\n", 4, "is malformed"),
], ids=["unclosed-before-next", "unclosed-at-end", "stray-close-first", "stray-close-after", "open-without-part",
        "close-without-end"])
@pytest.mark.parametrize("mode", ["--update", "--check"])
def test_unbalanced_markers_leave_the_document_unchanged(tmp_path, capsys, doc, line, needle, mode):
    d = _results(tmp_path)
    path = tmp_path / "README.md"
    path.write_text(doc)
    before = snapshot(tmp_path)
    rc, out, err = run_cli(capsys, "report", d, mode, path)
    msg = one_error_line(err)
    assert rc == 2 and needle in msg and f"line {line}" in msg and str(path) in msg, msg
    assert snapshot(tmp_path) == before  # byte for byte, and no report folder either


def test_update_rewrites_every_block_when_the_markers_pair_up(tmp_path, capsys):
    d = _results(tmp_path)
    path = tmp_path / "README.md"
    path.write_text(TWO_BLOCKS.format(close1="<!-- /report -->\n"))
    rc, out, err = run_cli(capsys, "report", d, "--update", path, "--check", path)
    assert rc == 0 and "2 block(s) rewritten" in out, err
    text = path.read_text()
    assert "stale" not in text and text.startswith("# title\n\n") and "between\n" in text and text.endswith("\n\nend\n")
    assert text.count("<!-- /report -->") == 2 and "| FT |" in text


@pytest.mark.parametrize("mode", ["--update", "--check"])
def test_a_result_file_cut_in_half_is_an_error_naming_it(tmp_path, capsys, mode):
    d = _results(tmp_path)
    path = tmp_path / "README.md"
    path.write_text(TWO_BLOCKS.format(close1="<!-- /report -->\n"))
    cut = d / "runs" / "seed1" / "result.json"
    cut.write_bytes(cut.read_bytes()[: len(cut.read_bytes()) // 2])
    before = snapshot(tmp_path)
    rc, out, err = run_cli(capsys, "report", d, mode, path)
    msg = one_error_line(err)
    assert rc == 2 and str(cut) in msg and "not valid JSON" in msg, msg
    assert snapshot(tmp_path) == before


def test_a_result_file_cut_in_half_stops_the_report_too(tmp_path, capsys):
    d = _results(tmp_path)
    (d / "runs" / "seed0" / "result.json").write_text('[{"dataset": "fashion-mnist", "sch')
    rc, out, err = run_cli(capsys, "report", d)
    msg = one_error_line(err)
    assert rc == 2 and "seed0/result.json" in msg and not (d / "report").exists()


def test_a_misspelled_part_is_an_error_naming_the_allowed_parts(tmp_path, capsys):
    d = _results(tmp_path)
    path = tmp_path / "README.md"
    path.write_text(TWO_BLOCKS.format(close1="<!-- /report -->\n").replace("toy-table table1 -->", "toy-table tabel1 -->"))
    before = snapshot(tmp_path)
    rc, out, err = run_cli(capsys, "report", d, "--update", path)
    msg = one_error_line(err)
    assert rc == 2 and "'tabel1' on line 3" in msg and "allowed: table1, table1/fashion-mnist/random" in msg, msg
    assert snapshot(tmp_path) == before  # the well-named block is not rewritten alone


def test_update_of_a_document_without_a_block_for_the_folder_is_an_error(tmp_path, capsys):
    d = _results(tmp_path)
    path = tmp_path / "README.md"
    path.write_text("# nothing here\n<!-- report other-folder table1 -->\nx\n<!-- /report -->\n")
    before = snapshot(tmp_path)
    rc, out, err = run_cli(capsys, "report", d, "--update", path)
    msg = one_error_line(err)
    assert rc == 2 and "no '<!-- report toy-table PART -->' block" in msg and "table1" in msg
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("args, needle", [
    (["--check", "{tmp}/missing.md"], "--check {tmp}/missing.md does not exist"),
    (["--update", "{tmp}/missing.md"], "--update {tmp}/missing.md does not exist"),
    (["--update", "{tmp}/toy-table"], "--update {tmp}/toy-table is a folder"),
    (["--check", "{tmp}/toy-table"], "--check {tmp}/toy-table is a folder"),
    (["--check", "{tmp}/latin1.md"], "is not UTF-8"),
    (["--out", "{tmp}/afile"], "--out {tmp}/afile is a file, not a folder"),
    (["--out", "{tmp}/afile/report"], "{tmp}/afile is a file, so the folder cannot be created"),
    (["--update", "{tmp}/README.md", "--out", "{tmp}/r"], "--out applies to the report's files only"),
], ids=["check-missing", "update-missing", "update-folder", "check-folder", "check-not-utf8", "out-file",
        "out-under-file", "update-with-out"])
def test_report_paths(tmp_path, capsys, args, needle):
    d = _results(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "latin1.md").write_bytes("caf\xe9\n".encode("latin-1"))
    (tmp_path / "README.md").write_text("<!-- report toy-table table1 -->\nx\n<!-- /report -->\n")
    before = snapshot(tmp_path)
    rc, out, err = run_cli(capsys, "report", d, *[a.format(tmp=tmp_path) for a in args])
    msg = one_error_line(err)
    assert rc == 2 and needle.format(tmp=tmp_path) in msg, msg
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------------------
# publish: never anything in the source; says what it removes in the destination
# ---------------------------------------------------------------------------------------------------
def _batch(root: Path) -> Path:
    for name, state in (("a_seed0", "done"), ("b_seed1", "running")):
        d = root / "runs" / name
        d.mkdir(parents=True)
        (d / "status.json").write_text(json.dumps({"state": state, "settings": "abc", "params": {"seed": 0}}))
        (d / "params.json").write_text(json.dumps({"seed": 0}))
        if state == "done":
            (d / "result.json").write_text(json.dumps([{**ROW, "seed": 0}]))
    return root


@pytest.mark.parametrize("dest", ["{src}", "{src}/../batch", "{src}/.", "link", "{src}/published", "{tmp}"],
                         ids=["same", "same-by-dotdot", "same-by-dot", "same-by-symlink", "inside-src", "holds-src"])
def test_publish_refuses_a_destination_that_is_or_touches_the_source(tmp_path, capsys, dest):
    src = _batch(tmp_path / "batch")
    (tmp_path / "link").symlink_to(src)
    before = snapshot(tmp_path)
    dest = dest.format(src=src, tmp=tmp_path)
    dest = str(tmp_path / dest) if dest == "link" else dest
    rc, out, err = run_cli(capsys, "publish", "--partial", src, dest)
    msg = one_error_line(err)
    assert rc == 2 and ("same folder" in msg or "lies inside" in msg) and "results/published/batch" in msg, msg
    assert snapshot(tmp_path) == before  # b_seed1, the unfinished run, is still there


def test_publish_says_what_it_removes_from_the_destination(tmp_path, capsys):
    src = _batch(tmp_path / "batch")
    dest = tmp_path / "published"
    for old in ("old_run", "c_seed2"):
        (dest / "runs" / old).mkdir(parents=True)
        (dest / "runs" / old / "result.json").write_text("{}")
    src_before = snapshot(src)
    rc, out, err = run_cli(capsys, "publish", "--partial", src, dest)
    assert rc == 0, err
    assert f"removing {dest / 'runs' / 'c_seed2'}: not a finished run of {src}" in out
    assert f"removing {dest / 'runs' / 'old_run'}" in out and "2 old run(s) removed" in out
    assert sorted(p.name for p in (dest / "runs").iterdir()) == ["a_seed0"]
    assert snapshot(src) == src_before


def test_publish_with_a_corrupt_record_removes_nothing(tmp_path, capsys):
    src = _batch(tmp_path / "batch")
    (src / "runs" / "a_seed0" / "result.json").write_text('[{"dataset": ')
    dest = tmp_path / "published"
    (dest / "runs" / "old_run").mkdir(parents=True)
    before = snapshot(tmp_path)
    rc, out, err = run_cli(capsys, "publish", "--partial", src, dest)
    msg = one_error_line(err)
    assert rc == 2 and "result.json is corrupt" in msg and "removing" not in out
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("src, dest, needle", [
    ("batch", "afile", "DEST {tmp}/afile: {tmp}/afile is a file; DEST must be a folder"),
    ("batch", "afile/x", "{tmp}/afile is a file, so the folder cannot be created"),
    ("batch", "dest_runs_file", "dest_runs_file/runs is a file"),
    ("afile", "out", "SRC {tmp}/afile is a file"),
    ("nowhere", "out", "has no runs/ folder"),
], ids=["dest-file", "dest-under-file", "dest-runs-file", "src-file", "src-missing"])
def test_publish_paths(tmp_path, capsys, src, dest, needle):
    _batch(tmp_path / "batch")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "dest_runs_file").mkdir()
    (tmp_path / "dest_runs_file" / "runs").write_text("x")
    before = snapshot(tmp_path)
    rc, out, err = run_cli(capsys, "publish", "--partial", tmp_path / src, tmp_path / dest)
    msg = one_error_line(err)
    assert rc == 2 and needle.format(tmp=tmp_path) in msg, msg
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------------------
# tune, ulira, batch, notebooks: checked before any work (none of these cases trains a model)
# ---------------------------------------------------------------------------------------------------
TUNE = ["tune", "--dataset", "digits", "--profile", "tiny", "--trials", "2", "--storage", "{tmp}/tuning",
        "--results", "{tmp}/store"]
ULIRA = ["ulira", "--dataset", "digits", "--profile", "tiny", "--results", "{tmp}/store", "--shadows", "4"]
METHODS = "ft, ga, ff, iu, rl, salun, neggrad_plus, scrub, scrub_r, l1_sparse, ssd, ours"
CASES = [
    (TUNE + ["--workers", "0"], "--workers=0 is out of range; allowed: [1, inf]"),
    (TUNE + ["--workers", "-3"], "--workers=-3 is out of range; allowed: [1, inf]"),
    (TUNE + ["--trials", "0"], "--trials=0 is out of range; allowed: [1, inf]"),
    (TUNE + ["--methods", ","], "--methods ',' names nothing; give a comma-separated subset of ft, ga"),
    (TUNE + ["--methods", "ft,sgd"], "--methods: 'sgd' is not allowed; choose from ft, ga"),
    (TUNE + ["--settings", ","], "--settings ',' names nothing; give a comma-separated subset of random-dense"),
    (TUNE + ["--settings", "random-dens"], "'random-dens' is not allowed; choose from random-dense, random-sparse"),
    (TUNE + ["--slots", "bogus=2"], "--slots 'bogus=2': method 'bogus' is not allowed; choose from ft, ga"),
    (TUNE + ["--slots", "ours=0"], "--slots 'ours=0' must be METHOD=N with N >= 1"),
    (TUNE + ["--slots", "ours=2", "ours=3"], "--slots names 'ours' twice"),
    (TUNE + ["--backend", "spark"], "backend='spark' is not allowed; choose one of 'local', 'ray'"),
    (TUNE + ["--address", "auto"], "--address applies with --backend ray only"),
    (TUNE + ["--storage", "{tmp}/afile"], "--storage {tmp}/afile is a file, not a folder"),
    (TUNE + ["--storage", "{tmp}/afile/sub"], "{tmp}/afile is a file, so the folder cannot be created"),
    (TUNE + ["--results", "{tmp}/afile"], "--results {tmp}/afile is a file, not a folder"),
    (TUNE + ["--freeze", "--tuned-dir", "{tmp}/afile"], "--tuned-dir {tmp}/afile is a file, not a folder"),
    (TUNE + ["--freeze", "--tuned-dir", "{tmp}/tuned", "--record", "{tmp}/adir"],
     "--record {tmp}/adir is a folder; give the path of the file to write"),
    (TUNE + ["--freeze", "--tuned-dir", "{tmp}/tuned_clash"], "tiny-digits.json is a folder"),
    (TUNE + ["--record", "{tmp}/r.json"], "--record applies with --freeze only"),
    (TUNE + ["--tuned-dir", "{tmp}/tuned"], "--tuned-dir applies with --freeze only"),
    (ULIRA + ["--methods", "ft"], "--methods 'ft' lacks retrain: the NeurIPS 2023 score"),
    (ULIRA + ["--methods", ","], "--methods ',' names nothing; give a comma-separated subset of"),
    (ULIRA + ["--out", "{tmp}/afile"], "--out {tmp}/afile is a file, not a folder"),
    (ULIRA + ["--workers", "0"], "--workers=0 is out of range; allowed: [1, inf]"),
    (ULIRA + ["--shadows", "5"], "--shadows 5 must be even"),
    (ULIRA + ["--shadows", "2"], "--shadows=2 is out of range; allowed: [4, inf]"),
    (ULIRA + ["--boot", "-1"], "--boot=-1 is out of range; allowed: [0, inf]"),
    (ULIRA + ["--targets", "1"], "--targets=1 is out of range; allowed: [2, "),
    (ULIRA + ["--scheme", "memorized", "--targets", "100000"], "--targets=100000 is out of range; allowed: [2, "),
    (ULIRA + ["--scheme", "memorized", "--memorization-shadows", "0"],
     "--memorization-shadows=0 is out of range; allowed: [2, inf]"),
    (ULIRA + ["--backend", "local"], "backend='local' is not allowed; choose one of 'process', 'ray'"),
    (["batch", "demo", "--dry-run", "--results", "{tmp}/afile"], "--results {tmp}/afile is a file, not a folder"),
    (["batch", "demo", "--results", "{tmp}/afile"], "--results {tmp}/afile is a file, not a folder"),
    (["notebooks", "{tmp}/afile"], "DIR {tmp}/afile is a file, not a folder"),
    (["notebooks", "{tmp}/nbfile"], "DIR {tmp}/nbfile: {tmp}/nbfile/notebooks is a file, where the course needs a folder"),
    (["notebooks", "{tmp}/nbclash"], "00_start_here.ipynb is a folder, where the course copies a file"),
]


def _case_id(args) -> str:
    skip = len(TUNE) if args[0] == "tune" else len(ULIRA) if args[0] == "ulira" else 1
    return " ".join([args[0], *args[skip:]]).replace("{tmp}/", "")


@pytest.mark.parametrize("args, needle", CASES, ids=[_case_id(c[0]) for c in CASES])
def test_bad_input_is_one_line_before_any_work(tmp_path, capsys, args, needle):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    (tmp_path / "nbfile").mkdir()
    (tmp_path / "nbfile" / "notebooks").write_text("x")
    (tmp_path / "nbclash" / "notebooks" / "00_start_here.ipynb").mkdir(parents=True)
    (tmp_path / "tuned_clash" / "tiny-digits.json").mkdir(parents=True)
    before = snapshot(tmp_path)
    rc, out, err = run_cli(capsys, *[a.format(tmp=tmp_path) for a in args])
    msg = one_error_line(err)
    assert rc == 2 and needle.format(tmp=tmp_path) in msg, msg
    assert snapshot(tmp_path) == before


def test_the_command_line_prints_one_line_not_a_traceback(tmp_path):
    """The same through the console script's process (the module's main), for two of the cases above."""
    (tmp_path / "afile").write_text("x")
    for args, needle in ((["notebooks", str(tmp_path / "afile")], "is a file, not a folder"),
                         (["report", str(tmp_path), "--check", str(tmp_path / "missing.md")], "does not exist")):
        r = subprocess.run([sys.executable, "-m", "advunlearn.cli", *args], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1


def test_a_marker_quoted_in_a_code_block_is_text(tmp_path, capsys):
    d = _results(tmp_path)
    path = tmp_path / "README.md"
    path.write_text("Write a block like this:\n\n```\n<!-- report NAME PART -->\n```\n\n"
                    "<!-- report toy-table table1 -->\nstale\n<!-- /report -->\n")
    rc, out, err = run_cli(capsys, "report", d, "--update", path)
    assert rc == 0 and "1 block(s) rewritten" in out, err
    assert path.read_text().startswith("Write a block like this:\n\n```\n<!-- report NAME PART -->\n```\n\n")


def test_a_record_with_a_bad_value_is_one_line(tmp_path, capsys):
    d = _results(tmp_path)
    bad = d / "runs" / "seed0" / "result.json"
    bad.write_text(json.dumps([{**ROW, "seed": 0, "UA": "abc"}]))
    rc, out, err = run_cli(capsys, "report", d)
    msg = one_error_line(err)
    assert rc == 2 and f"{bad}[0]: bad value in result record" in msg and not (d / "report").exists()


@pytest.mark.parametrize("args, flag", [(TUNE, "--storage {tmp}/ro/tuning"), (ULIRA + ["--out", "{tmp}/ro/u"], "--out {tmp}/ro/u"),
                                        (["notebooks", "{tmp}/ro/course"], "DIR {tmp}/ro/course")],
                         ids=["tune-storage", "ulira-out", "notebooks"])
def test_an_unwritable_folder_is_found_before_any_work(tmp_path, capsys, monkeypatch, args, flag):
    """A read-only folder (root may write anywhere, so the permission check is simulated)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if Path(p) == ro and mode & os.W_OK else real(p, mode, **k))
    args = [a.replace("{tmp}/tuning", "{tmp}/ro/tuning") for a in args]
    before = snapshot(tmp_path)
    rc, out, err = run_cli(capsys, *[a.format(tmp=tmp_path) for a in args])
    msg = one_error_line(err)
    assert rc == 2 and f"{flag.format(tmp=tmp_path)}: {ro} is not writable" in msg, msg
    assert snapshot(tmp_path) == before
