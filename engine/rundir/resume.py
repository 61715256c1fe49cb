"""What a resume starts from, read once, by the main process, for every process of the run.

The main process reads the run directory — run.json, the resolved spec, the summary, which
checkpoints exist — and every other process is told (``read_resume_point``): no process decides by
itself from its own disk whether to restore, start again or stop. A checkpoint reaches every
process as the main process read it (``shared_checkpoint``): from a process's own disk when that
holds the very same file (same SHA-256), else sent by the main process. So processes on machines
that do not share the run directory's disk resume all the same, and a stale copy on a local disk is
never restored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RunDirError, SpecError, os_error
from ..plan.compile import Compiled
from ..plan.types import RunPlan
from ..run.accelerator import bootstrap
from ..run.distributed import Collectives
from ..summary import SummaryUnreadable
from .checkpoints import CheckpointUnreadable, checkpoint_bytes, load_checkpoint, read_checkpoint
from .claim import RunLock
from .layout import RunDir
from .reader import RunFiles


@dataclass(frozen=True)
class ResumePoint:
    """What every process resumes from, as the main process read it (sent as plain data)."""

    plan: RunPlan
    spec: dict[str, Any]   # the resolved spec as JSON data (for the trackers)
    base_dir: Path         # the run's spec paths are relative to it
    has_checkpoint: bool   # checkpoints/last.pt or previous.pt exists
    complete: bool         # its summary says the run completed
    notes: tuple[str, ...] = ()  # what the reader should be told (a run.json from before digests)


@dataclass(frozen=True)
class MainRead:
    """What only the main process holds after reading: the lock, and what finishing a set-up a kill
    cut short needs (``run.json``'s contents and the compiled spec)."""

    lock: RunLock
    info: dict[str, Any]
    compiled: Compiled


def read_resume_point(run_dir: str | Path) -> tuple[ResumePoint, MainRead | None]:
    """The main process's reading of ``run_dir``, on every process; the main process also takes the
    directory's lock (with what it read, returned; None elsewhere). The definition is refused when it
    was edited since the run began, and data that is not there before anything starts. When the main
    process cannot read the run, every process raises the same error."""
    held: dict[str, Any] = {}

    def read() -> tuple[str, Any]:
        try:
            files = RunFiles(run_dir)
            files.info  # noqa: B018 - refuses a directory that is not a (completely set up) run
            compiled = files.compile(require_data=True)  # refuses a definition edited since the run began
            held["lock"] = RunLock.take(files.path)
            held["main"] = (files.info, compiled)
            rundir = RunDir(files.path, writer=True)
            rundir.remove_stale_temporaries()
            exists = any(p.exists() for p in (rundir.checkpoint, rundir.previous_checkpoint))
            return "ok", ResumePoint(compiled.plan, compiled.spec.model_dump(mode="json"), compiled.base_dir, exists,
                                     _completed(rundir), tuple(files.notes))
        except SpecError as exc:
            return "spec", exc.problems
        except RunDirError as exc:
            return "run", str(exc)
        except OSError as exc:  # the path given cannot be read (too long, no access, a link loop)
            return "run", f"cannot read the run directory: {os_error(exc)}"
        except Exception as exc:  # noqa: BLE001 - raised on the main process below, told to the others
            held["error"] = exc
            return "error", f"{type(exc).__name__}: {exc}"

    with bootstrap() as share:
        kind, value = share(read)
    if kind != "ok" and "lock" in held:
        held.pop("lock").release()
    if "error" in held:
        raise held["error"]
    if kind == "spec":
        raise SpecError(value)
    if kind == "run":
        raise RunDirError(value)
    if kind == "error":
        raise RunDirError(f"the main process could not read the run directory: {value}")
    main = MainRead(held["lock"], *held["main"]) if "lock" in held else None
    return value, main


def _completed(rundir: RunDir) -> bool:
    """Whether the run's summary says it completed (a damaged summary is written anew)."""
    try:
        summary = rundir.read_summary()
    except SummaryUnreadable:
        return False
    return summary is not None and summary.status == "completed"


def shared_checkpoint(path: Path, collectives: Collectives) -> dict[str, Any]:
    """The checkpoint ``path`` (each process's own path to it) as the main process reads it, on every
    process; CheckpointUnreadable on every process when the main process cannot read it."""
    if collectives.world == 1:
        return read_checkpoint(path)
    news: tuple[str, str] | None = None
    state, data = None, None
    if collectives.is_main:
        try:
            data = checkpoint_bytes(path)
            state = load_checkpoint(path, data)
            news = ("ok", hashlib.sha256(data).hexdigest())
        except CheckpointUnreadable as exc:
            news = ("unreadable", str(exc))
    status, value = collectives.broadcast_object(news)
    if status != "ok":
        raise CheckpointUnreadable(value)
    if not collectives.is_main:
        state = _same_file(path, value)
    if any(collectives.gather_objects(state is None)):  # someone has no copy, or another one: send it
        sent = collectives.broadcast_object(data)
        if state is None:
            state = load_checkpoint(path, sent)
    return state


def _same_file(path: Path, digest: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` on this process's disk when it is the very file the main process read."""
    try:
        data = checkpoint_bytes(path)
    except (CheckpointUnreadable, OSError):
        return None
    if hashlib.sha256(data).hexdigest() != digest:
        return None
    return load_checkpoint(path, data)
