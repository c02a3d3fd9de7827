"""Optional phase timing for profiling (``benchmarks/profile_methods.py``); free when off.

Code marks its phases with ``with phase("name"):``.  Nothing is measured unless a
:func:`phase_timer` is active, in which case :func:`phase` returns a shared no-op context (one
global lookup per phase).  Times are *exclusive*: a phase nested in another (the sensitivity pass
inside an attacker step) is counted under its own name only, so the phases of one run add up to
the time spent inside any of them.  On CUDA the timer synchronises the device at each boundary
(only while timing, so the measured split is real; the untimed run is unaffected).
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from typing import Iterator

_ACTIVE: "PhaseTimer | None" = None
_NULL = contextlib.nullcontext()


class PhaseTimer:
    """Exclusive seconds and call counts per phase name."""

    def __init__(self, sync: bool = False):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list] = []  # [name, start, child seconds]
        self._sync = sync

    def _now(self) -> float:
        if self._sync:
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
        return time.perf_counter()

    @contextlib.contextmanager
    def region(self, name: str) -> Iterator[None]:
        frame = [name, self._now(), 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            total = self._now() - frame[1]
            self._stack.pop()
            self.seconds[name] += total - frame[2]
            self.calls[name] += 1
            if self._stack:
                self._stack[-1][2] += total

    def total(self) -> float:
        return sum(self.seconds.values())

    def as_dict(self) -> dict[str, dict]:
        return {k: {"s": self.seconds[k], "calls": self.calls[k]} for k in self.seconds}


def phase(name: str):
    """Context manager timing ``name`` under the active :func:`phase_timer` (a no-op otherwise)."""
    t = _ACTIVE
    return _NULL if t is None else t.region(name)


@contextlib.contextmanager
def phase_timer(sync: bool = False) -> Iterator[PhaseTimer]:
    """Activate a :class:`PhaseTimer` for the block (not re-entrant: an inner one replaces the outer)."""
    global _ACTIVE
    prev, t = _ACTIVE, PhaseTimer(sync)
    _ACTIVE = t
    try:
        yield t
    finally:
        _ACTIVE = prev


__all__ = ["phase", "phase_timer", "PhaseTimer"]
