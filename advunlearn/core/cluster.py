"""The Ray connection: connect to a cluster (or start a local instance), the tasks' resources and
environment, and close it again.

Shared by the batch's Ray backend (:mod:`advunlearn.batch.ray_backend`, one notebook run per task)
and the worker pools of :func:`advunlearn.experiments.workers.run_tasks` (shadow models, tuning
studies); see ``docs/ray.md``.

* A task asks for ``ADVUNLEARN_RAY_CPUS`` CPUs (default 1) and, when a run's ``device`` is
  ``cuda``, one GPU (or ``ADVUNLEARN_RAY_GPUS_PER_RUN`` of one); it computes with
  ``ADVUNLEARN_THREADS`` set to that CPU count, and the driver's other ``ADVUNLEARN_*`` variables
  are passed on to it.
* Token authentication: ``ray start`` turns it on when ``RAY_AUTH_MODE`` is unset and a token is
  found (``~/.ray/auth_token``, which a local ``ray.init()`` writes, ``RAY_AUTH_TOKEN`` or
  ``RAY_AUTH_TOKEN_PATH``), but ``ray.init(address=...)`` does not.  Connecting to an address, this
  module applies ``ray start``'s rule (see :func:`_client_auth_like_ray_start`), which also sets
  ``RAY_AUTH_MODE=token`` in this process's environment; a client in token mode still connects to
  a cluster without authentication.

Ray is imported lazily: the rest of the package works without the ``ray`` extra.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

from .config import ConfigError, check_range


ENV_CPUS = "ADVUNLEARN_RAY_CPUS"


ENV_RETRIES = "ADVUNLEARN_RAY_RETRIES"


ENV_GPUS = "ADVUNLEARN_RAY_GPUS_PER_RUN"


ENV_CONNECT_TIMEOUT = "ADVUNLEARN_RAY_CONNECT_TIMEOUT"


ENV_PROBE_TIMEOUT = "ADVUNLEARN_RAY_PROBE_TIMEOUT"


INSTALL_HINT = "install the extra: pip install 'advunlearn[ray]'"


_NODES_TAG = "ADVUNLEARN-RAY-NODES "


# The connection this module opened in check_cluster, reused by run_on_ray and closed there.
_STATE: dict[str, Any] = {}


_SIGTERM: dict[str, Any] = {}  # the SIGTERM handler found before ray.init replaced it


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(f"backend='ray' needs Ray, which is not installed; {INSTALL_HINT}") from None
    return ray


def _env_number(name: str, default: float, lo: float, integer: bool = True) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} must be {'an integer' if integer else 'a number'} >= {lo:g}") from None
    check_range(name, value, lo, integer=integer)
    return value


def cpus_per_run() -> int:
    """CPUs one run reserves on the cluster (``ADVUNLEARN_RAY_CPUS``, default 1)."""
    return int(_env_number(ENV_CPUS, 1, 1))


def gpus_per_run() -> float:
    """The share of a GPU one ``device: cuda`` run reserves (``ADVUNLEARN_RAY_GPUS_PER_RUN``, default 1).

    0.25 lets four runs share one GPU.  That pays for Algorithm 1 and the attacker (batch 128: four
    runs together did 2.97x one run's work on an H100) but not for batch-512 pretraining, which
    fills the GPU alone (benchmarks/RESULTS.md).  Ray only counts the share; memory is not split.
    """
    share = _env_number(ENV_GPUS, 1.0, 0.01, integer=False)
    if share > 1:
        raise ConfigError(f"{ENV_GPUS}={share:g} is not allowed; it must be in [0.01, 1] "
                          "(the share of one GPU a run reserves)")
    return share


def max_retries() -> int:
    """How often Ray re-runs a run whose worker died (``ADVUNLEARN_RAY_RETRIES``, default 2)."""
    return int(_env_number(ENV_RETRIES, 2, 0))


def run_resources(params: dict) -> dict[str, float]:
    """The Ray resources one run asks for: CPUs, plus a GPU (or a share of one) when its device is ``cuda``."""
    # "auto" runs on whatever the node has, so it asks for CPUs only (a GPU node may still give it one).
    return {"num_cpus": cpus_per_run(), "num_gpus": gpus_per_run() if params.get("device") == "cuda" else 0}


def task_env(threads: int) -> dict[str, str]:
    """Environment variables of every task: the driver's ADVUNLEARN_* plus ADVUNLEARN_THREADS."""
    env = {k: v for k, v in os.environ.items() if k.startswith("ADVUNLEARN_")}
    env["ADVUNLEARN_THREADS"] = str(threads)
    env["ADVUNLEARN_PROGRESS"] = "0"
    return env


def _split_address(address: str) -> tuple[str, int]:
    """(host, port) of ``HOST:PORT`` or ``ray://HOST:PORT``; ConfigError for anything else."""
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"address={address!r} is not a Ray address; use HOST:PORT (the head's GCS port, "
                          "6379 unless `ray start --head --port` said otherwise), ray://HOST:10001 (Ray Client), "
                          "'auto' (the cluster started on this machine) or leave it out (a local Ray instance)")
    return host, int(port)


def _resolve(address: str | None) -> str | None:
    """The address to connect to, or None to start a local instance (what ``ray.init()`` would do)."""
    if address not in (None, "", "auto"):
        if address == "local":
            return None
        _split_address(address)
        return address
    try:  # RAY_ADDRESS, or a cluster started with `ray start` on this machine: what ray.init() finds
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:  # a Ray without this helper: RAY_ADDRESS only
        found = os.environ.get("RAY_ADDRESS") or None
        found = None if found == "local" else found
    else:
        try:
            found = canonicalize_bootstrap_address(address or None)
        except (ConnectionError, ValueError) as e:
            raise ConfigError(f"address={address!r}: {e}") from None
    if address == "auto" and not found:
        raise ConfigError("address='auto' but no Ray cluster runs on this machine; start one with "
                          "`ray start --head` or pass --address HEAD:6379")
    return found


def _tcp_check(address: str, timeout: float = 5.0) -> None:
    host, port = _split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        why = "timed out" if isinstance(e, socket.timeout) else (e.strerror or str(e))
        raise ConfigError(f"cannot reach the Ray cluster at address={address!r} ({why}); start its head with "
                          "`ray start --head --port=6379` and pass --address HEAD_IP:6379, or leave --address "
                          "out to start a local Ray instance") from None


def _client_auth_like_ray_start() -> None:
    """Send this machine's Ray token when ``RAY_AUTH_MODE`` is unset and a token exists.

    A head started here with ``ray start`` requires the token in that case, and the error Ray gives
    a client without it ("Failed to connect to Ray cluster") does not say why.  Ray's own rule,
    from its (private) module; a Ray without token authentication lacks it and needs nothing.
    """
    import logging

    try:
        from ray._private.authentication import authentication_token_setup as auth
    except ImportError:
        return
    log = logging.getLogger(auth.__name__)
    level = log.level
    log.setLevel(logging.ERROR)  # its "token authentication is enabled" warning
    try:
        from ray._raylet import AuthenticationTokenLoader

        # Read the token as it is now: an earlier local instance in this process may have cached its own.
        AuthenticationTokenLoader.instance().reset_cache()
        auth.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    except Exception:  # a changed private API: connect as Ray would; the error below explains failures
        pass
    finally:
        log.setLevel(level)


_PROBE_SRC = r"""
import json, logging, sys
import ray
from advunlearn.core.cluster import _client_auth_like_ray_start
_client_auth_like_ray_start()
ray.init(address=sys.argv[1], log_to_driver=False, logging_level=logging.ERROR)
nodes = [{"alive": bool(n.get("Alive")), "host": n.get("NodeManagerHostname") or n.get("NodeManagerAddress"),
          "node_id": n.get("NodeID"), "resources": n.get("Resources") or {}} for n in ray.nodes()]
print(sys.argv[2] + json.dumps(nodes), flush=True)
ray.shutdown()
"""


def _probe_address(address: str) -> list[dict]:
    """Connect from a throw-away process (ray.init can hang for minutes on a wrong port) and list the nodes."""
    import threading

    timeout = _env_number(ENV_CONNECT_TIMEOUT, 60, 1, integer=False)
    cmd = [sys.executable, "-c", _PROBE_SRC, address, _NODES_TAG]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    err_lines: list[str] = []
    refused = threading.Event()  # Ray retries a refused token for about 20 s; the first refusal says enough

    def read_err():
        for raw in proc.stderr:
            line = raw.decode(errors="replace")
            err_lines.append(line)
            if "InvalidAuthToken" in line or "AuthenticationError" in line:
                refused.set()
                return

    out_parts: list[bytes] = []
    readers = [threading.Thread(target=read_err, daemon=True),
               threading.Thread(target=lambda: out_parts.append(proc.stdout.read()), daemon=True)]
    for r in readers:
        r.start()
    t_end = time.monotonic() + timeout
    while proc.poll() is None and not refused.is_set() and time.monotonic() < t_end:
        refused.wait(0.1)
    timed_out = proc.poll() is None and not refused.is_set()
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for r in readers:
        r.join(5)
    out = b"".join(out_parts)
    proc.stdout.close()
    proc.stderr.close()
    if refused.is_set():
        raise ConfigError(f"the Ray cluster at address={address!r} requires token authentication and refused "
                          "this machine (no token sent, or another one): put the head's ~/.ray/auth_token in "
                          "~/.ray/auth_token here or name it with RAY_AUTH_TOKEN_PATH (or RAY_AUTH_TOKEN), and "
                          "leave RAY_AUTH_MODE unset or set it to 'token'; see \"Token authentication\" in "
                          "Ray's security documentation")
    if timed_out:
        raise ConfigError(f"address={address!r} accepts connections but gave no Ray cluster within {timeout:g} s "
                          f"({ENV_CONNECT_TIMEOUT}); is it the head's GCS port (6379 by default, not the "
                          "dashboard's 8265; Ray Client's 10001 needs ray://HOST:10001)?")
    for line in out.decode(errors="replace").splitlines():
        if line.startswith(_NODES_TAG):
            return json.loads(line[len(_NODES_TAG):])
    text = "".join(err_lines)
    lines = [l for l in text.splitlines() if l.strip()]
    msg = next((l for l in reversed(lines) if "Error" in l or "error" in l), lines[-1] if lines else "no output")
    raise ConfigError(f"cannot connect to the Ray cluster at address={address!r}: {msg.strip()[:400]}")


def _node_list(ray) -> list[dict]:
    return [{"alive": bool(n.get("Alive")), "host": n.get("NodeManagerHostname") or n.get("NodeManagerAddress"),
             "node_id": n.get("NodeID"), "resources": n.get("Resources") or {}} for n in ray.nodes()]


def _is_rays(handler) -> bool:
    return (getattr(handler, "__module__", None) or "").startswith("ray.")


def _keep_sigterm() -> None:
    """Remember the SIGTERM handler that ``ray.init`` is about to replace with its own (``sys.exit``),
    so that :func:`shutdown` gives it back."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        h = signal.getsignal(signal.SIGTERM)
        if not _is_rays(h):  # (a handler Ray left behind is not the caller's)
            _SIGTERM["before"] = h


def _restore_sigterm() -> None:
    """The caller's SIGTERM handler back, once Ray is shut down (if Ray's is still the one installed)."""
    import signal
    import threading

    if "before" not in _SIGTERM or threading.current_thread() is not threading.main_thread():
        return
    before = _SIGTERM.pop("before")
    if _is_rays(signal.getsignal(signal.SIGTERM)):
        signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)


def _init(ray, target: str | None) -> None:
    """Connect (or start a local instance) with the tasks' environment as the job's runtime_env.
    Ray installs a SIGTERM handler of its own in this process; :func:`shutdown` puts back the one found here."""
    import logging

    _keep_sigterm()

    # A job-level runtime_env lets Ray's prestarted workers take the runs (a per-task one would
    # start a separate pool of workers).
    env = {"env_vars": task_env(cpus_per_run())}
    if target is None:  # a fresh local instance; the dashboard is not needed to run tasks
        try:
            ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                     runtime_env=env)
        except Exception as e:  # e.g. "The current node timed out during startup" on a loaded machine
            try:
                ray.shutdown()
            except Exception:
                pass
            _restore_sigterm()
            raise ConfigError(f"could not start a local Ray instance ({type(e).__name__}: {e}); start one with "
                              "`ray start --head` and pass --address, or use --backend local") from None
    else:
        _client_auth_like_ray_start()
        try:
            ray.init(address=target, log_to_driver=False, logging_level=logging.WARNING, runtime_env=env)
        except BaseException:
            _restore_sigterm()
            raise


def shutdown() -> None:
    """Close the Ray connection (and the local instance) this module opened; no-op otherwise."""
    if _STATE.pop("owned", False):
        import ray

        ray.shutdown()
        _restore_sigterm()
    _STATE.clear()
