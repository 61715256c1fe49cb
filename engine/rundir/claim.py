"""Claiming a run directory: made atomically and locked for the life of the run that owns it."""

from __future__ import annotations

import datetime as _dt
import shutil
from pathlib import Path

from ..errors import RunDirError
from .layout import RunDir
from .links import is_link
from .lock import RunLock

__all__ = ["RunLock", "new_run_dir"]


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
            if (path / RunLock.NAME).exists():  # a run holds its lock while it runs: never replace one in use
                with RunLock.take(path):
                    pass
            _check_replaceable(path)
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


def _check_replaceable(path: Path) -> None:
    """--overwrite replaces a run directory (or an empty one), never a folder that holds anything else."""
    if is_link(path):
        raise RunDirError(f"--overwrite: {str(path)!r} is a symbolic link; give the directory itself, or another --run-dir")
    rundir = RunDir(path, writer=False)
    foreign = rundir.foreign_entries()
    if foreign or not rundir.looks_like_run():
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        found = f"it holds {shown}, which no run writes" if foreign else "it has none of a run's files (run.json, .lock, ...)"
        raise RunDirError(f"--overwrite replaces only a run directory, and {str(path)!r} is not one: {found}. Nothing "
                          "was deleted; choose another --run-dir, or move those files away yourself")
