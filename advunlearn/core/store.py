"""Run directories keyed by config hash; safetensors + JSON checkpoints; atomic writes; done markers.

Layout: ``<root>/<kind>/<hash>/`` holding ``config.json`` (what produced it), the artifact files, and
``DONE`` written last.  An artifact without ``DONE`` is treated as absent and recomputed; one whose
metadata does not match what the caller expects raises :class:`CheckpointError` instead of being
silently reused.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

MARKER = "DONE"


class StoreError(RuntimeError):
    """The results folder cannot be written (read-only, disk full, ...)."""


class CheckpointError(RuntimeError):
    """A stored checkpoint is corrupt, truncated or belongs to another model/dataset."""


def config_hash(config: Any) -> str:
    """Stable 16-hex-digit hash of a JSON-able config."""
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _write_error(path: Path, e: OSError) -> StoreError:
    """What went wrong writing ``path`` and the fix that fits it (not 'free space' for a folder in the way)."""
    folder = "choose another results folder (--results / ADVUNLEARN_RESULTS)"
    if e.errno == errno.ENOSPC:
        why, fix = "the disk is full", f"Free space or {folder}"
    elif e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        why, fix = "the folder is not writable (read-only or no permission)", f"Make it writable or {folder}"
    elif e.errno == errno.EISDIR:
        why, fix = "it is a folder", "Give the path of a file to write instead (e.g. a .json file inside it)"
    elif e.errno in (errno.ENOTDIR, errno.EEXIST):  # mkdir where a file stands
        why, fix = "a part of its path is a file, not a folder", "Choose a path whose parents are folders"
    else:
        why, fix = e.strerror or str(e), "Choose another path"
    return StoreError(f"cannot write {path}: {why}. {fix}.")


def folder_to_write(flag: str, path, example: str = "") -> Path:
    """``path`` as a folder this process can create or write into; a ConfigError naming ``flag``
    otherwise (found before any work starts, not after hours of it)."""
    from .config import ConfigError

    path = Path(path)
    hint = f" (e.g. {example})" if example else ""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file, not a folder; give a folder{hint}")
    there = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not there.is_dir():
        raise ConfigError(f"{flag} {path}: {there} is a file, so the folder cannot be created; give a folder{hint}")
    if not os.access(there, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {there} is not writable; give a folder you can write to{hint}")
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results should be readable like any file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise _write_error(path, e) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default).encode())


def _json_default(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def read_json(path: str | os.PathLike) -> Any:
    """A stored JSON file; a missing or corrupt one is a :class:`CheckpointError` that says which folder
    to delete (a stored artifact's folder is recomputed only as a whole)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; delete its folder {path.parent} to recompute it") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is corrupt (not valid JSON: {e}); delete its folder {path.parent} "
                              "to recompute it") from None


def save_state(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """safetensors file + ``<path>.json`` (the metadata and the file's sha256), both written atomically
    (tensors first)."""
    from safetensors.torch import save

    path = Path(path)
    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                metadata={"advunlearn": json.dumps(meta, sort_keys=True, default=_json_default)})
    atomic_write_bytes(path, data)
    atomic_write_json(path.with_suffix(".json"), {**meta, "sha256": hashlib.sha256(data).hexdigest()})


def load_state(path: str | os.PathLike, expect: dict | None = None, device="cpu") -> tuple[dict, dict]:
    """Load tensors and metadata; check each key of ``expect`` against the stored metadata."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    want = _checksum(path)
    try:
        blob = path.read_bytes()
        if hashlib.sha256(blob).hexdigest() != want:
            raise CheckpointError(f"checkpoint {path} is corrupt or truncated: it does not match the checksum "
                                  f"written with it (its bytes changed on disk); delete its folder {path.parent} "
                                  "to recompute it")
        tensors = load(blob)
        header_len = int.from_bytes(blob[:8], "little")
        header = json.loads(blob[8:8 + header_len])
        meta = json.loads(header.get("__metadata__", {}).get("advunlearn", "{}"))
    except CheckpointError:
        raise
    except (SafetensorError, ValueError, json.JSONDecodeError, OSError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: {e}); "
                              f"delete its folder {path.parent} to recompute it") from None
    for k, v in (expect or {}).items():
        if k in meta and meta[k] != v:
            raise CheckpointError(f"checkpoint {path} has {k}={meta[k]!r} but {v!r} was expected; "
                                  "it belongs to another model or dataset")
    return {k: t.to(device) for k, t in tensors.items()}, meta


def _checksum(path: Path) -> str:
    """The sha256 that :func:`save_state` wrote beside ``path``; a checkpoint without it is never loaded
    (its bytes could not be checked)."""
    side = path.with_suffix(".json")
    try:
        want = json.loads(side.read_text()).get("sha256")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} has lost its metadata file {side.name}, which holds its checksum, "
                              f"so it cannot be checked; delete its folder {path.parent} to recompute it") from None
    except (OSError, ValueError, AttributeError) as e:  # unreadable, not JSON, not an object
        raise CheckpointError(f"{side} (the checksum of {path.name}) is corrupt or truncated ({type(e).__name__}: "
                              f"{e}); delete its folder {path.parent} to recompute it") from None
    if not isinstance(want, str) or len(want) != 64:
        raise CheckpointError(f"{side} holds no sha256 checksum of {path.name}; delete its folder {path.parent} "
                              "to recompute it")
    return want


def save_model(path: str | os.PathLike, model: nn.Module, meta: dict) -> None:
    save_state(path, model.state_dict(), meta)


def load_model(path: str | os.PathLike, model: nn.Module, expect: dict | None = None) -> dict:
    """Load weights into ``model`` (which fixes the architecture); returns the metadata."""
    device = next(model.parameters()).device
    state, meta = load_state(path, expect, device)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    bad = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or extra or bad:
        raise CheckpointError(f"checkpoint {path} does not fit a {getattr(model, 'arch', type(model).__name__)} "
                              f"model (missing {missing[:3]}, unexpected {extra[:3]}, shape mismatch {bad[:3]}); "
                              "it belongs to another architecture")
    model.load_state_dict(state)
    return meta


class Store:
    """Artifacts under ``root``, one folder per (kind, config hash)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, kind: str, config: Any) -> Path:
        return self.root / kind / config_hash(config)

    def done(self, kind: str, config: Any) -> bool:
        return (self.path(kind, config) / MARKER).exists()

    def begin(self, kind: str, config: Any) -> Path:
        """Fresh folder for a new artifact; a half-written earlier attempt is discarded."""
        d = self.path(kind, config)
        try:
            if d.exists() and not (d / MARKER).exists():
                shutil.rmtree(d)
            d.mkdir(parents=True, exist_ok=True)
            atomic_write_json(d / "config.json", config)
        except OSError as e:
            raise _write_error(d, e) from None
        return d

    def finish(self, d: Path) -> None:
        atomic_write_bytes(d / MARKER, b"ok\n")

    def cached(self, kind: str, config: Any, compute: Callable[[Path], Any], load: Callable[[Path], Any]):
        """``load(dir)`` if the artifact is done, else ``compute(dir)`` then mark it done.

        An exclusive lock per artifact (``fcntl.flock`` on ``<hash>.lock``) makes concurrent runs that
        need the same artifact (a batch on several workers sharing one store) compute it once: the
        others wait, then load it.
        """
        if self.done(kind, config):
            return load(self.path(kind, config)), True
        with self._lock(kind, config):
            if self.done(kind, config):
                return load(self.path(kind, config)), True
            d = self.begin(kind, config)
            out = compute(d)
            self.finish(d)
        return out, False

    @contextlib.contextmanager
    def _lock(self, kind: str, config: Any):
        path = self.path(kind, config).with_suffix(".lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(path, "a")
        except OSError as e:
            raise _write_error(path, e) from None
        try:
            try:
                import fcntl

                fcntl.flock(fh, fcntl.LOCK_EX)
            except (ImportError, OSError):  # no POSIX locks (Windows, some network file systems)
                pass
            yield
        finally:
            fh.close()


__all__ = ["Store", "StoreError", "folder_to_write", "CheckpointError", "config_hash", "save_model", "load_model",
           "save_state", "load_state", "atomic_write_json", "atomic_write_bytes", "read_json"]
