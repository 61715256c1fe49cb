"""``python -m sgl.engine.study.child ARGS``: the `sgl ARGS` of one trial, ended with its driver.

The kernel kills the trial (SIGKILL, as ``kill -9`` would) when the process that started it ends
(Linux's parent-death signal, kept across the exec), so a driver killed anywhere leaves no trial
running on: each is left as a killed run, which its checkpoint resumes bit for bit. Elsewhere
the trial goes on, and a resumed study waits for its run directory's lock.
"""

from __future__ import annotations

import os
import signal
import sys

PARENT = "SGL_STUDY_PARENT"  # the pid that started the trial: it may have ended before the signal was set


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL))
    parent = os.environ.pop(PARENT, "")
    if parent.isdigit() and os.getppid() != int(parent):
        os._exit(128 + signal.SIGKILL)


if __name__ == "__main__":
    _die_with_parent()
    os.execv(sys.executable, [sys.executable, "-m", "sgl.engine.cli", *sys.argv[1:]])
