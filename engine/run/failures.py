"""One process's error stops every process of a run within seconds, with that error's message.

A process that fails on its own (out of memory, a data error: anything but a collective that
failed) announces it on the run's rendezvous store and aborts its process group: the others,
waiting with it in a collective or entering the next one, get an error at once instead of waiting
``run.dist_timeout``, read the announcement and stop with the failing process's message. A watcher
thread aborts the group of a process that sees another's announcement, for backends that do not
notice by themselves that a peer has aborted (NCCL between GPUs of one machine).

The main process writes the summary; a failing process that is not the main one waits (seconds)
until it has, since launchers stop every process as soon as one has exited.
"""

from __future__ import annotations

import threading
import traceback
from datetime import timedelta
from typing import Any

FAILED = "sgl/failed"          # the first failure announced: "process R failed: ..."
SUMMARY = "sgl/summary"        # set once the main process has written the summary


def _default_store() -> Any:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    try:
        return dist.distributed_c10d._get_default_store()
    except (RuntimeError, ValueError, AttributeError):
        return None


def abort_processes() -> None:
    """Abort this process's groups: its peers' collectives with it fail at once."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    abort = getattr(dist.distributed_c10d, "_abort_process_group", None)
    try:
        abort() if abort is not None else dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - an already broken group: nothing more to abort
        pass


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class FailureBoard:
    """The run's announcements of failures, for one process (inert with one process)."""

    def __init__(self, rank: int, world: int) -> None:
        self.rank = rank
        self.store = _default_store() if world > 1 else None  # kept: it outlives an aborted group
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def announce(self, exc: BaseException) -> str:
        """Say that this process failed with ``exc`` (the first announcement of the run is kept),
        print its traceback, and abort the process group. Returns what the others are told."""
        message = f"process {self.rank} failed: {describe(exc)}"
        traceback.print_exception(exc)
        if self.store is not None:
            try:
                self.store.compare_set(FAILED, "", message)
            except Exception:  # noqa: BLE001 - the store gone with its host: the peers time out instead
                pass
        self.stop_watching()
        abort_processes()
        return message

    def announced(self) -> str | None:
        """A failure another process announced, if any."""
        if self.store is None:
            return None
        try:
            if not self.store.check([FAILED]):
                return None
            message = self.store.get(FAILED).decode("utf-8", "replace")
        except Exception:  # noqa: BLE001
            return None
        return None if message.startswith(f"process {self.rank} ") else message

    def summary_written(self) -> None:
        if self.store is not None:
            try:
                self.store.set(SUMMARY, "1")
            except Exception:  # noqa: BLE001
                pass

    def wait_for_summary(self, seconds: float = 30.0) -> None:
        if self.store is not None:
            try:
                self.store.wait([SUMMARY], timedelta(seconds=seconds))
            except Exception:  # noqa: BLE001 - the main process is gone or slow: leave anyway
                pass

    # -- the watcher
    def watch(self, every: float = 1.0) -> None:
        if self.store is None or self._watcher is not None:
            return

        def run() -> None:
            while not self._stop.wait(every):
                if self.announced() is not None:
                    abort_processes()
                    return

        self._watcher = threading.Thread(target=run, name="sgl-failure-watch", daemon=True)
        self._watcher.start()

    def stop_watching(self) -> None:
        self._stop.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5)
        self._watcher = None
