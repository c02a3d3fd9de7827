"""Start a command as a terminal starts it: in a session of its own (its process group is its pid),
with SIGINT, SIGTERM and SIGHUP at their default dispositions whatever this test process inherited.

A suite started in the background (``make test &``, ``nohup make test``, a job scheduler) has SIGINT
(and under nohup SIGHUP) ignored, and an ignored signal stays ignored across fork and exec: a command
started from it would never see the Ctrl-C a test sends.  The command is run through a small Python
that resets the dispositions and then execs it (same pid), which, unlike ``preexec_fn``, is safe in a
test process with threads.
"""

from __future__ import annotations

import subprocess
import sys

_RESET = ("import os, signal, sys\n"
          "for n in ('SIGINT', 'SIGTERM', 'SIGHUP'):\n"
          "    signal.signal(getattr(signal, n), signal.SIG_DFL)\n"
          "os.execvp(sys.argv[1], sys.argv[1:])\n")


def as_in_a_terminal(cmd: list[str]) -> list[str]:
    """``cmd`` run with the stop signals at their default dispositions (then exec'd: the same pid)."""
    return [sys.executable, "-c", _RESET, *cmd]


def popen(cmd: list[str], **kw) -> subprocess.Popen:
    """:class:`subprocess.Popen` of ``cmd`` as a terminal starts it (see the module docstring)."""
    return subprocess.Popen(as_in_a_terminal(cmd), start_new_session=True, **kw)
