"""Starting and resuming runs in their directories: compile, set up Accelerate and the directory,
execute with the directory's recorder as the run's sink.

`sgl run` and `sgl resume` (and ``sgl.run`` / ``sgl.resume``) call ``run_spec`` and ``resume_run``;
everything a run in progress needs is in its directory.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Iterable

from ..errors import RunDirError
from ..plan.compile import Compiled, compile_spec
from ..plan.types import RunPlan
from ..run.accelerator import make_accelerator
from ..run.checkpoint import Cursor
from ..run.distributed import Collectives
from ..run.executor import Executor, RunOptions
from ..run.progress import make_console
from ..run.runtime import build_runtime
from .checkpoints import CheckpointUnreadable, no_usable_checkpoint
from .claim import RunLock, new_run_dir
from .layout import RunDir
from .recorder import FigureMaker, Recorder
from .resume import ResumePoint, read_resume_point, shared_checkpoint
from .setup import finish_start, write_start
from .trackers import not_installed


def run_spec(spec_path: str | Path, overrides: Iterable[str] = (), options: RunOptions | None = None, *,
             figures: FigureMaker | None = None) -> Path:
    """`sgl run`: compile the spec, make a run directory and execute the plan. ``figures`` draws the
    run's figures at its end, for trackers that keep files."""
    options = options or RunOptions()
    overrides = list(overrides)
    compiled = compile_spec(spec_path, overrides, require_data=True)  # data that is not there: refused here
    accelerator = _accelerator(compiled.plan)
    runtime = build_runtime(compiled.plan, accelerator, compiled.base_dir)  # loads data: fails before a run directory exists
    path, lock = _shared_run_dir(runtime.collectives, compiled, options)
    rundir = RunDir(path, writer=accelerator.is_main_process)
    try:
        if options.progress and rundir.writer:
            make_console().print(f"run directory: {path}", soft_wrap=True, markup=False)
        write_start(rundir, compiled, Path(spec_path), overrides, runtime.bundle.task, accelerator)
        executor = _executor(runtime, rundir, compiled.plan, compiled.spec.model_dump(mode="json"), options, figures)
        executor.checkpoint_start()  # a kill before the first epoch ends can resume from here
        executor.execute(Cursor())
    except BaseException as exc:
        raise _in(rundir, exc)
    finally:
        if lock is not None:
            lock.release()
    return path


def resume_run(run_dir: str | Path, options: RunOptions | None = None, *, figures: FigureMaker | None = None) -> Path:
    """`sgl resume`: continue a run from its last checkpoint with nothing else given.

    The last checkpoint is used, or the previous one when the last cannot be read or does not fit
    the run (saying so). A run whose last stage ended but whose summary was never written (a kill at
    the very end) gets its summary now. With several processes, the main process reads the run
    directory and every process resumes from what it read (``resume.py``): the others need no copy.
    """
    options = options or RunOptions()
    point, main = read_resume_point(run_dir)
    rundir = RunDir(Path(run_dir), writer=False)
    try:
        accelerator = _accelerator(point.plan)
        rundir = RunDir(Path(run_dir), writer=accelerator.is_main_process)
        # a set-up a kill cut short is finished (by the main process, which read it)
        finished = finish_start(rundir, main.info, main.compiled, accelerator) if main is not None and rundir.writer else []
        if point.has_checkpoint:
            executor, cursor = _restore(rundir, point, accelerator, options, figures)
        else:
            executor, cursor = _from_the_start(rundir, point, accelerator, options, figures, finished), Cursor()
        for note in point.notes:
            executor.progress.message(f"note: {note}")
        if cursor.stage >= len(point.plan.stages) and point.complete:
            executor.progress.message(f"{rundir.path} is already complete; nothing to resume")
            return rundir.path
        executor.execute(cursor)
    except BaseException as exc:
        raise _in(rundir, exc)
    finally:
        if main is not None:
            main.lock.release()
    return rundir.path


def _in(rundir: RunDir, exc: BaseException) -> BaseException:
    """``exc``, marked with the run directory it happened in: messages that advise a resume say
    exactly which (``exc.run_dir``)."""
    try:
        if getattr(exc, "run_dir", None) is None:
            exc.run_dir = rundir.path  # type: ignore[attr-defined]
    except AttributeError:  # an exception type that takes no attributes
        pass
    return exc


def _accelerator(plan: RunPlan) -> Any:
    missing = not_installed(plan.run.trackers)
    if missing:
        raise RunDirError(missing)
    return make_accelerator(plan)


def _executor(runtime: Any, rundir: RunDir, plan: RunPlan, spec: dict[str, Any], options: RunOptions,
              figures: FigureMaker | None) -> Executor:
    recorder = Recorder(rundir, plan.run.trackers, spec, figures)
    return Executor(runtime, recorder, options)


def _restore(rundir: RunDir, point: ResumePoint, accelerator: Any, options: RunOptions,
             figures: FigureMaker | None) -> tuple[Executor, Cursor]:
    """An executor restored from the newest checkpoint that reads and fits (a fresh runtime each try);
    every process takes the same checkpoint, or none."""
    failures: list[str] = []
    paths = (rundir.checkpoint, rundir.previous_checkpoint)
    collectives = Collectives(accelerator)
    for path in paths:
        try:
            state = shared_checkpoint(path, collectives)
        except CheckpointUnreadable as exc:
            failures.append(str(exc))
            continue
        executor = _executor(build_runtime(point.plan, accelerator, point.base_dir), rundir, point.plan, point.spec, options, figures)
        unfit = None
        try:
            cursor = executor.restore(state)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            unfit = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if collectives.any_of([unfit is not None])[0]:
            failures.append(f"{path}: does not fit this run ({unfit or 'on another process'})")
            continue
        if failures:
            moved = [_set_aside(p) for p in paths if p != path and p.exists() and rundir.writer]
            kept = f" (kept as {', '.join(str(m) for m in moved)})" if moved else ""
            executor.progress.message(f"[yellow]{'; '.join(failures)}[/yellow]{kept} — resumed from {path} instead")
        return executor, cursor
    raise no_usable_checkpoint(rundir, failures)


def _from_the_start(rundir: RunDir, point: ResumePoint, accelerator: Any, options: RunOptions,
                    figures: FigureMaker | None, finished: list[str] = ()) -> Executor:
    """A run stopped before its first checkpoint (or while it was being set up: ``finished`` are the
    set-up files written now): nothing had trained, so it starts again from the beginning, as
    ``run_spec`` would have gone on."""
    executor = _executor(build_runtime(point.plan, accelerator, point.base_dir), rundir, point.plan, point.spec, options, figures)
    when = f"while it was being set up (now finished: {', '.join(finished)})" if finished else "before its first checkpoint"
    executor.progress.message(f"{rundir.path} was stopped {when}; starting it from the beginning")
    executor.checkpoint_start()
    return executor


def _set_aside(path: Path) -> Path:
    """Move an unusable checkpoint out of the way (never delete what a run wrote)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"unusable-{stamp}-{path.name}")
    os.replace(path, target)
    return target


def _shared_run_dir(collectives: Collectives, compiled: Compiled, options: RunOptions) -> tuple[Path, RunLock | None]:
    """The main process makes (and locks) the run directory; the others are told which — or told
    that it failed, so that every process stops with the same message instead of waiting."""
    made: tuple[str, str] = ("error", "")
    lock = None
    if collectives.is_main:
        output = compiled.plan.run.output
        # normpath: show runs/quickstart/..., not specs/../runs/quickstart/...
        output = Path(os.path.normpath(output if output.is_absolute() else compiled.base_dir / output))
        try:
            path, lock = new_run_dir(output, compiled.plan.name, options.run_dir, options.overwrite)
            made = ("ok", str(path))
        except RunDirError as exc:
            made = ("error", str(exc))
        except OSError as exc:
            made = ("error", f"cannot make a run directory under {output}: {exc.strerror or exc}")
    status, value = collectives.broadcast_object(made)
    if status != "ok":
        raise RunDirError(value)
    return Path(value), lock
