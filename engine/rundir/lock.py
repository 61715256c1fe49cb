"""The lock of a run directory: held for the life of the run or resume that uses it."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from ..errors import RunDirError, one_line
from .links import open_no_follow


class RunLock:
    """An exclusive lock on a run directory for the life of a run (``<run>/.lock``, flock'ed).

    The kernel releases it when the process ends, however it ends, so a killed run never leaves
    a directory locked; a second ``sgl run --run-dir`` or ``sgl resume`` on it is refused.
    """

    NAME = ".lock"

    def __init__(self, path: Path, handle: Any) -> None:
        self.path = path
        self._handle = handle

    @classmethod
    def take(cls, run_dir: Path) -> "RunLock":
        import fcntl

        lock_file = Path(run_dir) / cls.NAME
        try:
            handle = open_no_follow(lock_file, "rw")  # never through a link: the lock is rewritten
        except OSError as exc:
            raise RunDirError(f"cannot lock run directory {str(run_dir)!r}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = one_line(handle.read(200).strip()) or "another process"
            handle.close()
            raise RunDirError(f"run directory {str(run_dir)!r} is in use by another run ({holder}); "
                              "wait for it to end, or use another directory") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {platform.node()}\n")
        handle.flush()
        return cls(lock_file, handle)

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
