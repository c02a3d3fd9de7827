"""One Ctrl-C or one SIGTERM stops ``advunlearn tune --workers 2`` and ``advunlearn ulira --workers 2``
at once: no process of theirs is left (none reparented to PID 1), no traceback, exit status 128 + the
signal's number, queued work never starts, and a rerun completes with every finished trial or shadow
output kept (a trial the stop cut short is failed at once and run again).

Each command runs as a terminal starts it (:mod:`_terminal`: a session of its own, the stop signals at
their defaults), so the tests hold when the suite itself runs with SIGINT ignored (``nohup``, ``&``).
The signal goes once the first trial or shadow has finished (polled), not after a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _terminal import popen

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ("ga", "ft", "rl")  # three studies on two workers: one is queued when the stop comes


def _env():
    # One thread in the command's own process too, as in its workers: the store keys carry the thread
    # count, and ulira's main process reads the outputs its workers stored.
    env = {**os.environ, "ADVUNLEARN_PROGRESS": "0", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT),
           "ADVUNLEARN_THREADS": "1"}
    env.pop("ADVUNLEARN_STORE", None)
    return env


class _Command:
    """``advunlearn ARGS`` started as from a terminal; its output read line by line as it comes."""

    def __init__(self, args: list[str], cwd: Path):
        self.p = popen([sys.executable, "-m", "advunlearn.cli", *args], cwd=cwd, env=_env(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._read, args=(s, buf), daemon=True)
                         for s, buf in ((self.p.stdout, self.out), (self.p.stderr, self.err))]
        for t in self._threads:
            t.start()

    @staticmethod
    def _read(stream, buf):
        for line in stream:
            buf.append(line)

    def text(self) -> str:
        return "".join(self.out) + "".join(self.err)

    def wait(self, timeout: float) -> int:
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running {timeout} s after the stop:\n{self.text()[-3000:]}") from None
        for t in self._threads:
            t.join(timeout=10)
        return rc

    def group(self) -> list[int]:
        """Processes still in the command's process group (its session), zombies aside."""
        ps = subprocess.run(["ps", "-o", "pid=,stat=", "-g", str(self.p.pid)], capture_output=True, text=True).stdout
        return [int(l.split()[0]) for l in ps.splitlines() if l.strip() and not l.split()[1].startswith("Z")]

    def kill(self):
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _children(pid: int) -> set[int]:
    """The descendants of ``pid`` (from /proc), so that one reparented to PID 1 is still found by its pid."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_bytes().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            if k not in out:
                out.add(k)
                todo.append(k)
    return out


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != b"Z"


def _stop(cmd: _Command, sig: int) -> tuple[int, set[int], float]:
    """Send ``sig`` as a user would (Ctrl-C: SIGINT to the foreground group; SIGTERM: `kill PID` to the
    command alone); returns (exit status, descendants seen before, seconds to exit)."""
    kids = _children(cmd.p.pid)
    assert len([k for k in kids if _running(k)]) >= 2, f"no worker processes running: {kids}\n{cmd.text()}"
    t0 = time.perf_counter()
    if sig == signal.SIGINT:
        os.killpg(cmd.p.pid, signal.SIGINT)
    else:
        os.kill(cmd.p.pid, sig)
    rc = cmd.wait(timeout=40)
    return rc, kids, time.perf_counter() - t0


def _assert_nothing_left(cmd: _Command, kids: set[int]):
    left, alive = [], []
    for _ in range(50):  # exiting processes get a moment (the spawn context's resource tracker, say)
        left, alive = cmd.group(), [k for k in kids if _running(k)]
        if not left and not alive:
            break
        time.sleep(0.2)
    cmd.kill()  # (never leave them to the next test)
    for k in alive:
        try:
            os.kill(k, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not left and not alive, f"left running after the stop: group {left}, workers {alive}"


def _assert_stopped(cmd: _Command, rc: int, sig: int, secs: float):
    name = signal.Signals(sig).name
    err = "".join(cmd.err)
    assert rc == 128 + sig, f"exit status {rc}, expected {128 + sig}\n{cmd.text()[-3000:]}"
    assert f"stopped by {name}" in err and "Traceback" not in cmd.text(), cmd.text()[-3000:]
    assert secs < 30, secs


# ------------------------------------------------------------------------------------------ tune

def _trials(storage: Path, settled: bool = False) -> dict[str, dict[str, list]]:
    """{study: {state: [(number, params, value), ...]}} read from the studies' SQLite files.

    While the command runs (``settled=False``) a file is opened read-only and one not ready yet (no
    tables, or locked) is left out.  Once it has ended (``settled=True``) every file must be read: a
    worker terminated in the middle of a write leaves a hot journal, which only a read-write
    connection rolls back (a read-only one fails with SQLITE_READONLY_ROLLBACK), as the rerun does.
    """
    out = {}
    for db in sorted(storage.glob("*.db")):
        try:
            con = sqlite3.connect(str(db) if settled else f"file:{db}?mode=ro", uri=not settled, timeout=5)
            rows = con.execute("SELECT t.trial_id, t.number, t.state, v.value FROM trials t "
                               "LEFT JOIN trial_values v ON v.trial_id = t.trial_id").fetchall()
            params = con.execute("SELECT trial_id, param_name, param_value FROM trial_params").fetchall()
            con.close()
        except sqlite3.Error as e:
            if settled:
                raise AssertionError(f"{db} cannot be read after the command ended: {e}") from None
            continue  # not created yet, or mid-write
        by_trial: dict[int, list] = {}
        for tid, name, val in params:
            by_trial.setdefault(tid, []).append((name, val))
        st: dict[str, list] = {}
        for tid, number, state, value in rows:
            st.setdefault(state, []).append((number, tuple(sorted(by_trial.get(tid, []))), value))
        out[db.stem] = {k: sorted(v) for k, v in st.items()}
    return out


def _wait_for(pred, cmd: _Command, timeout: float, what: str):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if pred():
            return
        if cmd.p.poll() is not None:
            raise AssertionError(f"the command ended before {what}:\n{cmd.text()[-3000:]}")
        time.sleep(0.2)
    cmd.kill()
    raise AssertionError(f"no {what} within {timeout} s:\n{cmd.text()[-3000:]}")


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    """One artifact store for the tune tests: the tuning seed's original and Retrain are trained once."""
    return tmp_path_factory.mktemp("tune-store")


def _tune_args(storage: Path, store: Path, trials: int) -> list[str]:
    return ["tune", "--dataset", "digits", "--profile", "tiny", "--methods", ",".join(STUDIES), "--settings",
            "random-dense", "--seeds", "100", "--trials", str(trials), "--workers", "2", "--storage", str(storage),
            "--results", str(store)]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_one_signal_stops_tune_with_its_workers_and_a_rerun_keeps_every_finished_trial(tmp_path, shared_store, sig):
    storage = tmp_path / "db"
    cmd = _Command(_tune_args(storage, shared_store, 200), tmp_path)

    def finished():
        return any(s.get("COMPLETE") for s in _trials(storage).values())

    _wait_for(finished, cmd, 240, "finished trial")
    rc, kids, secs = _stop(cmd, sig)
    _assert_stopped(cmd, rc, sig, secs)
    _assert_nothing_left(cmd, kids)

    before = _trials(storage, settled=True)
    done = {k: v.get("COMPLETE", []) for k, v in before.items()}
    cut = {k: len(v.get("RUNNING", [])) for k, v in before.items()}
    assert sum(map(len, done.values())) >= 1 and sum(cut.values()) >= 1, before
    # the queued study never started: only its published values wait in it
    started = [k for k, v in before.items() if set(v) - {"WAITING"}]
    assert len(started) <= 2, before

    # The rerun resumes: finished trials kept, the ones cut short failed at once and run again.
    budget = max(len(v) for v in done.values()) + 1
    again = _Command(_tune_args(storage, shared_store, budget), tmp_path)
    rc = again.wait(timeout=240)
    assert rc == 0, again.text()[-3000:]
    after = _trials(storage, settled=True)
    assert sorted(after) == [f"{m}.random-dense" for m in sorted(STUDIES)]
    for name, st in after.items():
        assert len(st.get("COMPLETE", [])) == budget, (name, st)
        assert set(done.get(name, [])) <= set(st["COMPLETE"]), (name, done.get(name), st["COMPLETE"])
        assert not st.get("RUNNING") and not st.get("WAITING"), (name, st)
        assert len(st.get("FAIL", [])) == cut.get(name, 0), (name, st)


# ------------------------------------------------------------------------------------------ ulira

def _outputs(store: Path) -> dict[str, float]:
    """The finished shadow outputs in ``store``: {folder: time of its done marker}."""
    return {str(m.parent): m.stat().st_mtime_ns for m in (store / "shadow-obs").glob("*/DONE")}


def _ulira_args(store: Path) -> list[str]:
    return ["ulira", "--dataset", "digits", "--profile", "tiny", "--device", "cpu", "--shadows", "4", "--boot", "0",
            "--methods", "retrain,ft", "--workers", "2", "--results", str(store), "--out", str(store.parent / "u")]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_one_signal_stops_ulira_with_its_workers_and_a_rerun_reuses_every_finished_shadow(tmp_path, sig):
    store = tmp_path / "store"
    cmd = _Command(_ulira_args(store), tmp_path)
    _wait_for(lambda: any("shadow" in l and "computed" in l for l in cmd.out), cmd, 240, "finished shadow")
    rc, kids, secs = _stop(cmd, sig)
    _assert_stopped(cmd, rc, sig, secs)
    _assert_nothing_left(cmd, kids)
    finished = [int(l.split()[1].rstrip(":")) for l in cmd.out if l.strip().startswith("shadow")]
    assert finished and len(finished) < 4, cmd.text()
    before = _outputs(store)
    assert len(before) >= 4 * len(finished), before  # original, reference, retrain, ft of each finished shadow

    again = _Command(_ulira_args(store), tmp_path)
    rc = again.wait(timeout=240)
    assert rc == 0, again.text()[-3000:]
    after = _outputs(store)
    assert len(after) == 16 and all(after[k] == t for k, t in before.items()), (before, after)  # none redone
    for line in again.out:
        if line.strip().startswith("shadow") and int(line.split()[1].rstrip(":")) in finished:
            assert "computed -" in line, again.text()
