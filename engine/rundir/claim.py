"""Claiming a run directory: made atomically and locked for the life of the run that owns it."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
from pathlib import Path
from typing import Any

from ..errors import RunDirError


def new_run_dir(output: Path, name: str, explicit: Path | None = None, overwrite: bool = False) -> tuple[Path, "RunLock"]:
    """Make the run directory — ``explicit`` or ``<output>/<name>/<timestamp>`` — and take its lock.

    The directory is created atomically (``mkdir`` fails if it exists), so two runs started in the
    same second get two directories; a non-empty ``explicit`` folder is reused only with
    ``overwrite``, and never while another run holds it.
    """
    if explicit is not None:
        path = Path(explicit)
        if path.exists() and not path.is_dir():
            raise RunDirError(f"run directory {str(path)!r} exists and is not a directory")
        if path.is_dir() and any(path.iterdir()):
            if not overwrite:
                raise RunDirError(f"run directory {str(path)!r} exists and is not empty (use --overwrite to replace it)")
            with RunLock.take(path):  # not while another run is using it
                pass
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        return path, RunLock.take(path)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (output / name).mkdir(parents=True, exist_ok=True)
    for suffix in range(1, 10_000):
        path = output / name / (stamp if suffix == 1 else f"{stamp}-{suffix}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path, RunLock.take(path)
    raise RunDirError(f"no free run directory name under {output / name} for {stamp}")


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
            handle = open(lock_file, "a+")
        except OSError as exc:
            raise RunDirError(f"cannot lock run directory {str(run_dir)!r}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
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
