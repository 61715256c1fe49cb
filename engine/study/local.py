"""The local executor: trials as processes on this machine, a few at a time (embedded: nothing to start).

Every executor offers the driver the same few calls: ``capacity`` (trials at once), ``start``,
``wait`` (the trials that ended, with their exit codes), ``interrupt`` (ask every running trial to
checkpoint and stop) and ``close``. A trial is ``sgl ARGS`` in a process of its own session (a
Ctrl-C reaches the driver, which asks each trial once), ended by the kernel if the driver dies.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from .child import PARENT
from .manifest import now
from .resources import Slots, choose, cpu_count, visible_gpus


def trial_command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "sgl.engine.study.child", *args]


def open_log(path: Path, args: list[str]):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "ab")
    handle.write(f"\n=== {now()}: sgl {' '.join(args)}\n".encode())
    handle.flush()
    return handle


class LocalExecutor:
    name = "local"

    def __init__(self, capacity: int = 1) -> None:
        self.capacity = capacity
        self._procs: dict[str, tuple[subprocess.Popen, object]] = {}
        self.cpu_seconds: dict[str, float] = {}  # CPU time of each ended trial (user + system)

    def describe(self) -> str:
        return f"local executor: {self.capacity} trial(s) at once"

    def slots(self, trials: int, wants_gpu: bool, parallel: int | None, threads: int | None) -> Slots:
        slots = choose(trials, cpu_count(), visible_gpus() if wants_gpu else (), parallel, threads)
        self.capacity = slots.parallel
        return slots

    def check_storage(self, study: Path, spec: Path) -> None:
        """Every trial runs on this machine: it sees what the driver wrote."""

    def start(self, trial_id: str, args: list[str], env: dict[str, str], log: Path) -> None:
        handle = open_log(log, args)
        env = {**env, PARENT: str(os.getpid())}
        try:
            proc = subprocess.Popen(trial_command(args), env=env, stdout=handle, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except BaseException:
            handle.close()
            raise
        self._procs[trial_id] = (proc, handle)

    def running(self) -> list[str]:
        return list(self._procs)

    def wait(self, timeout: float) -> list[tuple[str, int]]:
        deadline = time.monotonic() + timeout
        while True:
            ended = []
            for tid, (proc, _) in self._procs.items():
                # a child's CPU time joins RUSAGE_CHILDREN when it is reaped: around this one poll, it is its own
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                if proc.poll() is not None:
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    self.cpu_seconds[tid] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                    ended.append((tid, proc.returncode))
            for tid, _ in ended:
                self._procs.pop(tid)[1].close()
            if ended or not self._procs or time.monotonic() >= deadline:
                return ended
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def interrupt(self) -> None:
        for proc, _ in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def close(self) -> None:
        for proc, handle in self._procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            handle.close()
        self._procs.clear()
