"""The batch grid on a real Ray cluster: a head started with `ray start` on this machine's CPUs.

The main test SIGKILLs the Ray worker process of one run while its notebook executes; Ray must run
it again, the orphaned notebook must be ended, and the batch must finish with every run present
once and the same numbers as the local backend on the same grid.
"""

import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
import ray  # the dev install includes the ray extra; a missing Ray must fail here

from advunlearn.batch import load_config, run_batch, run_id
from advunlearn.batch import ray_backend
from advunlearn.core import cluster
from advunlearn.core.config import ConfigError
from _terminal import popen

# The batch's own notebook; Retrain and FT only, and ADVUNLEARN_FAST=1 (profile tiny), keep a run
# to seconds of compute.
NOTEBOOK = "04_evaluation"
TIMING_KEYS = {"run_time_s", "time_s", "wall_s"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_procs(tmp: Path, client_port: int) -> list[psutil.Process]:
    """The processes of the cluster this test started (its temp dir is in their command lines)."""
    found = {}
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if str(tmp) in cmd or ("ray.util.client.server" in cmd and f"--port={client_port}" in cmd):
            found[p.pid] = p
            try:
                for c in p.children(recursive=True):  # workers (ray::IDLE) and agents of the raylet
                    found[c.pid] = c
            except psutil.Error:
                pass
    found.pop(os.getpid(), None)
    return list(found.values())


def _stop_cluster(tmp: Path, client_port: int) -> None:
    procs = _cluster_procs(tmp, client_port)
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass


@pytest.fixture(scope="module")
def ray_head():
    """A one-node cluster with 2 CPUs and no GPU; yields its address HOST:PORT.

    Its token, in the file named by RAY_AUTH_TOKEN_PATH, is what `ray start` does when it finds
    ~/.ray/auth_token (which any local ray.init() writes): with RAY_AUTH_MODE unset, the batch must
    find the token and connect with it.
    """
    tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    ray_cli = Path(sys.executable).with_name("ray")
    token = tmp / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env["RAY_AUTH_TOKEN_PATH"] = str(token)
    err = ""
    for _ in range(2):  # on a busy machine the raylet can miss its 15 s agent deadline; try once more
        port, client = _free_port(), _free_port()
        cmd = [str(ray_cli), "start", "--head", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
               f"--temp-dir={tmp}", f"--ray-client-server-port={client}", "--include-dashboard=false",
               "--include-log-monitor=false", "--no-monitor", "--disable-usage-stats"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
        if r.returncode == 0:
            break
        err = (r.stdout + r.stderr)[-2000:]
        _stop_cluster(tmp, client)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.fail(f"`ray start --head` failed twice:\n{err}")
    saved = os.environ.get("RAY_AUTH_TOKEN_PATH")
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        if saved is None:
            os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
        else:
            os.environ["RAY_AUTH_TOKEN_PATH"] = saved
        _stop_cluster(tmp, client)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def fast_env(monkeypatch):
    monkeypatch.setenv("ADVUNLEARN_FAST", "1")
    monkeypatch.setenv("ADVUNLEARN_PROGRESS", "0")
    monkeypatch.setenv("ADVUNLEARN_THREADS", "1")  # the local backend then computes exactly what a task does
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for k in (cluster.ENV_CPUS, cluster.ENV_RETRIES, cluster.ENV_CONNECT_TIMEOUT):
        monkeypatch.delenv(k, raising=False)


def _config(tmp_path: Path, name: str, seeds=(0, 1), device: str = "cpu") -> Path:
    p = tmp_path / f"{name}.yaml"
    # Different seeds share no stored artifact, so concurrent runs never build the same one.
    p.write_text(f"name: {name}\nnotebook: {NOTEBOOK}\ntimeout: 600\nreport: false\n"
                 f"grid:\n  seed: {list(seeds)}\n"
                 f"params:\n  dataset: digits\n  scheme: random\n  profile: tiny\n  device: {device}\n"
                 "  methods: [retrain, ft]\n")
    return p


class WorkerKiller(threading.Thread):
    """SIGKILLs the Ray worker of the first attempt of ``run_dir`` once its notebook is executing."""

    def __init__(self, run_dir: Path, mid_run: bool):
        super().__init__(daemon=True)
        self.run_dir, self.mid_run = run_dir, mid_run
        self.killed_pid, self.orphans, self.guards, self.error = None, [], [], None
        self.stop = threading.Event()

    def run(self):
        try:
            self._run()
        except Exception as e:  # reported by the test
            self.error = e

    def _run(self):
        pid = None
        while pid is None and not self.stop.wait(0.1):
            try:
                att = json.loads((self.run_dir / ray_backend.WORKER_FILE).read_text())["attempts"]
                pid = att[0]["pid"]
            except (OSError, ValueError, KeyError, IndexError):
                pass
        if pid is None:
            return
        worker = psutil.Process(pid)
        t_kernel = None
        while not self.stop.wait(0.1):
            cmds = {}
            for p in worker.children(recursive=True):
                try:
                    cmds[p] = " ".join(p.cmdline())
                except psutil.Error:
                    pass
            nb = [p for p, c in cmds.items() if "-m papermill" in c or "ipykernel_launcher" in c]
            has_kernel = any("ipykernel_launcher" in cmds[p] for p in nb)
            if has_kernel and t_kernel is None:
                t_kernel = time.monotonic()
            if nb and (not self.mid_run or (t_kernel and time.monotonic() - t_kernel > 1)):
                self.orphans = nb
                self.guards = [p for p, c in cmds.items() if "psutil.Process(int(sys.argv[1]))" in c]
                self.killed_pid = pid
                os.kill(pid, signal.SIGKILL)
                return


def _orphans_left(killer: WorkerKiller) -> list[int]:
    """PIDs of the killed worker's notebook processes still alive once its watchdog has finished.

    The watchdog kills them after the worker's death, concurrently with Ray reporting that death to
    the driver, so the batch may return first: wait for the watchdog, then look.
    """
    assert killer.guards, "the killed worker had no watchdog"
    _, alive = psutil.wait_procs(killer.guards, timeout=30)
    assert not alive, f"the watchdog did not finish: {[p.pid for p in alive]}"
    return [p.pid for p in killer.orphans if _alive(p)]


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _strip_timing(x):
    if isinstance(x, dict):
        return {k: _strip_timing(v) for k, v in x.items() if k not in TIMING_KEYS}
    if isinstance(x, list):
        return [_strip_timing(v) for v in x]
    return x


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return sorted((_strip_timing(r) for r in csv.DictReader(f)), key=lambda r: (r["run"], r.get("method", "")))


# ------------------------------------------------------------------------------ no cluster needed

def test_missing_ray_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'advunlearn\[ray\]'"):
        ray_backend.check_cluster("127.0.0.1:6379", [{"device": "cpu"}])


def test_unreachable_address_fails_fast_before_any_run(tmp_path, fast_env):
    cfg = _config(tmp_path, "bad")
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"cannot reach the Ray cluster at address='127.0.0.1:1'"):
        run_batch(cfg, results=tmp_path / "out", backend="ray", address="127.0.0.1:1", log=lambda m: None)
    assert time.monotonic() - t0 < 30
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="not a Ray address"):
        run_batch(cfg, results=tmp_path / "out", backend="ray", address="headnode", log=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_port_that_is_not_ray_times_out_with_a_hint(tmp_path, fast_env, monkeypatch):
    # A listening port that never speaks Ray's protocol (like the dashboard's 8265 given by mistake):
    # ray.init would wait for minutes; the check gives up after ADVUNLEARN_RAY_CONNECT_TIMEOUT.
    monkeypatch.setenv(cluster.ENV_CONNECT_TIMEOUT, "8")
    srv = socket.socket()
    srv.bind(("0.0.0.0", 0))
    srv.listen(8)
    address = f"127.0.0.1:{srv.getsockname()[1]}"
    t0 = time.monotonic()
    try:
        with pytest.raises(ConfigError, match="gave no Ray cluster within 8 s.*GCS port"):
            ray_backend.check_cluster(address, [{"device": "cpu"}])
    finally:
        srv.close()
    assert time.monotonic() - t0 < 30


def test_resource_check_names_what_is_missing(monkeypatch):
    cpu_node = [{"alive": True, "host": "a", "node_id": "n1", "resources": {"CPU": 2.0}}]
    gpu_node = [{"alive": True, "host": "b", "node_id": "n2", "resources": {"CPU": 8.0, "GPU": 1.0}}]
    ray_backend._check_resources(cpu_node, [{"device": "cpu"}, {"device": "auto"}], "x")
    ray_backend._check_resources(cpu_node + gpu_node, [{"device": "cuda"}, {"device": "cpu"}], "x")
    with pytest.raises(ConfigError, match=r"1 run\(s\) ask for device='cuda'.*has no GPU \(1 node\(s\), 2 CPU\(s\), 0 GPU"):
        ray_backend._check_resources(cpu_node, [{"device": "cuda"}, {"device": "cpu"}], "x")
    with pytest.raises(ConfigError, match="no live node"):
        ray_backend._check_resources([{**cpu_node[0], "alive": False}], [{"device": "cpu"}], "x")
    monkeypatch.setenv(cluster.ENV_CPUS, "4")
    assert cluster.run_resources({"device": "cuda"}) == {"num_cpus": 4, "num_gpus": 1}
    with pytest.raises(ConfigError, match=r"each run asks for 4 CPU\(s\) \(ADVUNLEARN_RAY_CPUS\)"):
        ray_backend._check_resources(cpu_node, [{"device": "cpu"}], "x")
    ray_backend._check_resources(gpu_node, [{"device": "cpu"}], "x")  # 8 CPUs: fits
    monkeypatch.setenv(cluster.ENV_CPUS, "0")
    with pytest.raises(ConfigError, match="ADVUNLEARN_RAY_CPUS"):
        cluster.cpus_per_run()
    # several runs sharing one GPU
    monkeypatch.setenv(cluster.ENV_CPUS, "4")
    half_gpu = [{**gpu_node[0], "resources": {"CPU": 8.0, "GPU": 0.5}}]
    with pytest.raises(ConfigError, match="has no node with a GPU"):
        ray_backend._check_resources(half_gpu, [{"device": "cuda"}], "x")
    monkeypatch.setenv(cluster.ENV_GPUS, "0.75")
    with pytest.raises(ConfigError, match=r"0\.75 of a GPU each \(ADVUNLEARN_RAY_GPUS_PER_RUN\)"):
        ray_backend._check_resources(half_gpu, [{"device": "cuda"}], "x")
    monkeypatch.setenv(cluster.ENV_GPUS, "0.25")
    assert cluster.run_resources({"device": "cuda"}) == {"num_cpus": 4, "num_gpus": 0.25}
    assert cluster.run_resources({"device": "cpu"})["num_gpus"] == 0
    ray_backend._check_resources(half_gpu, [{"device": "cuda"}], "x")
    for bad in ("2", "0", "half"):
        monkeypatch.setenv(cluster.ENV_GPUS, bad)
        with pytest.raises(ConfigError, match="ADVUNLEARN_RAY_GPUS_PER_RUN"):
            cluster.gpus_per_run()
    monkeypatch.delenv(cluster.ENV_GPUS)
    monkeypatch.setenv(cluster.ENV_RETRIES, "two")
    with pytest.raises(ConfigError, match="ADVUNLEARN_RAY_RETRIES='two' must be an integer"):
        cluster.max_retries()


def test_task_env_passes_settings_and_pins_threads(monkeypatch):
    monkeypatch.setenv("ADVUNLEARN_FAST", "1")
    monkeypatch.setenv("ADVUNLEARN_THREADS", "16")
    monkeypatch.setenv("UNRELATED_VAR", "x")
    env = cluster.task_env(3)
    assert env["ADVUNLEARN_FAST"] == "1" and env["ADVUNLEARN_THREADS"] == "3" and "UNRELATED_VAR" not in env


def test_failure_status_names_the_cause(tmp_path):
    from ray.exceptions import RayTaskError, WorkerCrashedError

    d = tmp_path / "run"
    d.mkdir()
    (d / ray_backend.WORKER_FILE).write_text(json.dumps({"attempts": [{"pid": 1, "started": time.time() - 5},
                                                                      {"pid": 2, "started": time.time() - 2}]}))
    st = ray_backend._record_failure(d, {"seed": 0}, WorkerCrashedError(), time.time())
    assert st == json.loads((d / "status.json").read_text())
    assert st["state"] == "failed" and st["params"] == {"seed": 0} and 4 < st["wall_s"] < 60
    assert st["error"].startswith("Ray gave up after 2 attempt(s): WorkerCrashedError: The worker died")
    err = RayTaskError("run_task", "Traceback (most recent call last):\nOSError: [Errno 28] No space left on device",
                       OSError(28, "No space left on device"))
    st = ray_backend._record_failure(d, {"seed": 0}, err, time.time())
    assert st["error"] == "the Ray task raised OSError: [Errno 28] No space left on device"
    # A notebook that had finished before its worker went away keeps its done status.
    (d / "result.json").write_text("[]")
    (d / "status.json").write_text(json.dumps({"state": "done", "wall_s": 3.0, "params": {"seed": 0}}))
    assert ray_backend._record_failure(d, {"seed": 0}, WorkerCrashedError(), time.time())["state"] == "done"
    assert json.loads((d / "status.json").read_text())["state"] == "done"


# ------------------------------------------------------------------------------ a real cluster

@pytest.mark.slow
def test_cuda_grid_is_refused_before_any_run_and_the_local_instance_is_shut_down(tmp_path, fast_env):
    # No address: the batch starts a local Ray instance (this machine: CPUs only), finds no GPU
    # for the cuda runs, and stops the instance again before raising.
    cfg = _config(tmp_path, "gpu", device="cuda")
    with pytest.raises(ConfigError, match=r"2 run\(s\) ask for device='cuda'.*local Ray instance has no GPU"):
        run_batch(cfg, results=tmp_path / "out", backend="ray", address=None, log=lambda m: None)
    assert not (tmp_path / "out").exists()
    assert not ray.is_initialized()
    assert not [c for c in psutil.Process().children(recursive=True) if c.name() in ("raylet", "gcs_server")]


@pytest.mark.slow
def test_killed_worker_is_retried_and_the_table_matches_the_local_backend(ray_head, tmp_path, fast_env):
    cfg = _config(tmp_path, "grid")
    runs = load_config(cfg).runs()
    names = sorted(run_id(p) for p in runs)
    target = tmp_path / "ray" / "runs" / run_id(runs[0])
    killer = WorkerKiller(target, mid_run=True)
    killer.start()
    logs = []
    try:
        rc = run_batch(cfg, results=tmp_path / "ray", backend="ray", address=ray_head, log=logs.append)
    finally:
        killer.stop.set()
        killer.join(10)
    assert killer.error is None, killer.error
    assert killer.killed_pid, "the worker was never killed"
    assert rc == 0, "\n".join(logs)

    # Ray ran the killed run again in a fresh worker; the other run went through in one attempt.
    attempts = json.loads((target / ray_backend.WORKER_FILE).read_text())["attempts"]
    assert len(attempts) == 2 and attempts[0]["pid"] == killer.killed_pid != attempts[1]["pid"]
    other = tmp_path / "ray" / "runs" / run_id(runs[1])
    assert len(json.loads((other / ray_backend.WORKER_FILE).read_text())["attempts"]) == 1
    # The killed worker's notebook (papermill and its kernel) did not outlive it.
    assert killer.orphans and not _orphans_left(killer)
    done = [l for l in logs if " done in " in l]
    assert len(done) == 2 and [l for l in done if "attempt 2" in l and target.name in l], logs
    for name in names:
        st = json.loads((tmp_path / "ray" / "runs" / name / "status.json").read_text())
        assert st["state"] == "done" and set(st) == {"state", "wall_s", "params", "settings", "threads"}

    rc = run_batch(cfg, results=tmp_path / "local", backend="local", log=lambda m: None)
    assert rc == 0
    ray_rows, local_rows = _csv_rows(tmp_path / "ray" / "results.csv"), _csv_rows(tmp_path / "local" / "results.csv")
    # Every run exactly once (one row per method it ran), and the same numbers as the local backend.
    assert sorted({r["run"] for r in ray_rows}) == names
    assert set(Counter((r["run"], r.get("method")) for r in ray_rows).values()) == {1}
    assert len(ray_rows) == 4 and all(float(r["UA"]) >= 0 and float(r["TA"]) > 50 for r in ray_rows)
    assert ray_rows == local_rows
    for name in names:
        got = json.loads((tmp_path / "ray" / "runs" / name / "result.json").read_text())
        want = json.loads((tmp_path / "local" / "runs" / name / "result.json").read_text())
        assert _strip_timing(got) == _strip_timing(want), name
        assert sorted(r["method"] for r in got) == ["ft", "retrain"]  # the notebook wrote its records


@pytest.mark.slow
def test_run_is_recorded_failed_when_retries_are_exhausted(ray_head, tmp_path, fast_env, monkeypatch):
    monkeypatch.setenv(cluster.ENV_RETRIES, "0")
    cfg = _config(tmp_path, "noretry", seeds=(3,))
    (params,) = load_config(cfg).runs()
    run_dir = tmp_path / "out" / "runs" / run_id(params)
    killer = WorkerKiller(run_dir, mid_run=False)
    killer.start()
    logs = []
    try:
        rc = run_batch(cfg, results=tmp_path / "out", backend="ray", address=ray_head, log=logs.append)
    finally:
        killer.stop.set()
        killer.join(10)
    assert killer.error is None, killer.error
    assert killer.killed_pid and rc == 1
    st = json.loads((run_dir / "status.json").read_text())
    assert set(st) == {"state", "wall_s", "params", "settings", "error"} and st["state"] == "failed"
    assert st["params"] == params and st["wall_s"] > 0
    assert st["error"].startswith("Ray gave up after 1 attempt(s):") and "Worker" in st["error"], st["error"]
    assert not (run_dir / "result.json").exists()
    assert any(l.startswith(f"[1/1] {run_dir.name} FAILED: Ray gave up") for l in logs), logs
    assert killer.orphans and not _orphans_left(killer)
    batch = json.loads((tmp_path / "out" / "batch_status.json").read_text())
    assert batch["failed"] == 1 and batch["done"] == 0


@pytest.mark.slow
def test_cluster_with_token_auth_refusing_this_machine_is_a_config_error(ray_head, tmp_path, fast_env, monkeypatch):
    # A client that sends no token (RAY_AUTH_MODE=disabled here) is refused by the head; Ray itself
    # says only "Failed to connect to Ray cluster".
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_gcs_rpc_server_connect_timeout_s", "3")  # Ray's retries, shortened
    cfg = _config(tmp_path, "auth", seeds=(0,))
    with pytest.raises(ConfigError, match=r"requires token authentication and refused this machine.*RAY_AUTH_TOKEN_PATH"):
        run_batch(cfg, results=tmp_path / "out", backend="ray", address=ray_head, log=lambda m: None)
    assert not (tmp_path / "out").exists()
    assert not ray.is_initialized()


def _notebook_procs(res: Path, timeout: float = 240) -> list[psutil.Process]:
    """Papermill and its kernel of the run writing under ``res``, once the kernel is executing."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        for p in psutil.process_iter(["cmdline"]):
            if "papermill" in " ".join(p.info["cmdline"] or []) and str(res) in " ".join(p.info["cmdline"] or []):
                try:
                    kids = [k for k in p.children() if "ipykernel" in " ".join(k.cmdline())]
                except psutil.Error:
                    continue
                if kids:
                    time.sleep(1.5)
                    return [p, *kids]
        time.sleep(0.2)
    raise AssertionError(f"no notebook kernel under {res} within {timeout} s")


@pytest.mark.slow
def test_stopped_ray_batch_leaves_no_notebook(ray_head, tmp_path, fast_env):
    """Ctrl-C on the driver: the run's papermill and kernel on the cluster end with the batch (its
    worker is cancelled, and the notebook dies with the worker), and the batch says so in one line.
    SIGKILL of the driver's group ends them the same way (Ray kills a dead driver's workers); that
    case is left out here to keep the test short."""
    cfg = tmp_path / "stop.yaml"
    cfg.write_text(f"name: stop\nnotebook: {NOTEBOOK}\ntimeout: 600\nreport: false\ngrid:\n  seed: [5]\n"
                   "params:\n  dataset: digits\n  profile: tiny\n  device: cpu\n  methods: [ft]\n")
    res = tmp_path / "out"
    cmd = [sys.executable, "-m", "advunlearn.cli", "batch", str(cfg), "--results", str(res), "--backend", "ray",
           "--address", ray_head]
    # as a terminal starts it: SIGINT at its default even when this suite runs with it ignored (nohup, `&`)
    p = popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        nb = _notebook_procs(res)
    except AssertionError:
        p.kill()
        raise AssertionError(p.communicate()) from None
    os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's foreground group
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "stopped by SIGINT" in err and "Traceback" not in err, out + err
    _, alive = psutil.wait_procs(nb, timeout=30)
    alive = [q for q in alive if _alive(q)]
    assert not alive, f"left running after Ctrl-C: {alive}"
    assert not (res / "runs" / run_id(load_config(cfg).runs()[0]) / "status.json").exists()
