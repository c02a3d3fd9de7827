"""Stopping long commands cleanly: SIGTERM and SIGHUP raise like Ctrl-C, and the clean-up after a stop
runs with further stop signals held off.

One mechanism for every command that starts processes (``batch``'s notebooks, the worker pools of
``run``, ``tune`` and ``ulira``): the stop reaches the main thread as a ``KeyboardInterrupt``
(:class:`Stopped` for SIGTERM/SIGHUP), the code that started the processes ends them in its
``except BaseException`` clause (:func:`signals_held` around it), and the command line exits with
128 + the signal's number.
"""

from __future__ import annotations

import contextlib
import signal
import threading

STOP_SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP reached the process (SIGINT raises KeyboardInterrupt itself)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals():
    """Within: SIGTERM and SIGHUP raise :class:`Stopped` in the main thread, as Ctrl-C raises
    KeyboardInterrupt, so that the work in progress ends its child processes before the command exits.

    A signal that is ignored (``nohup`` ignores SIGHUP) stays ignored; outside the main thread
    nothing changes (Python delivers signals only there).  The previous handlers come back on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Stopped(signum)

    saved = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
            saved[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


@contextlib.contextmanager
def signals_held():
    """Within: SIGINT, SIGTERM and SIGHUP are blocked in this thread (delivered on exit), so that a
    second Ctrl-C or SIGTERM cannot cut short the clean-up of a stop."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, set(STOP_SIGNALS))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


__all__ = ["Stopped", "stop_on_signals", "signals_held", "STOP_SIGNALS"]
