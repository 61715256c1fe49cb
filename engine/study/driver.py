"""The study driver: make (or reopen) a study directory and run its trials to the end, crash-only.

Nothing the driver holds in memory is needed again: the manifest records every trial and its
overrides before the first one starts, and each trial's run directory records where it stands. A
driver killed anywhere is continued by ``sgl study --resume STUDY_DIR`` (or ``sgl resume``):
finished trials are kept, interrupted ones resume from their checkpoints, the rest start.
"""

from __future__ import annotations

import datetime as _dt
import os
import signal
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import Interrupted, RunDirError, StudyError
from ..faults import crash_point
from ..rundir.claim import RunLock
from .display import StudyProgress
from .executors import make_executor
from .launch import busy, check_unchanged, command, completed, not_started, outcome
from .manifest import Manifest, StudyDir, TrialRecord, now
from .resources import trial_env
from .trials import StudyPlan, digest, load_study


def start_study(spec_path: str | Path, overrides: Iterable[str] = (), vary: Iterable[str] = (), *,
                executor: str | None = None, address: str | None = None, parallel: int | None = None,
                threads: int | None = None, study_dir: str | Path | None = None, plugins: Iterable[str] = (),
                progress: bool = True) -> Path:
    """`sgl study`: check every trial, make the study directory, run the trials, write the table."""
    overrides, vary = list(overrides), list(vary)
    checked = load_study(spec_path, overrides, vary)  # bad input stops here, before anything starts
    section = checked.section
    wants_gpu = any(not c.plan.run.cpu for c in checked.compiled)
    runner = make_executor(executor or section.executor, address or section.address)
    try:
        slots = runner.slots(len(checked.trials), wants_gpu, parallel or section.parallel, threads or section.threads)
        study = load_study(spec_path, overrides, vary, extra=[f"run.threads={slots.threads}"])
        path = _new_study_dir(study, study_dir)
        runner.check_storage(path, Path(spec_path).resolve())
        with _locked(path):
            sdir = StudyDir(path)
            manifest = _manifest(study, runner.name, address or section.address, slots, list(plugins))
            manifest.uses_gpu = wants_gpu
            sdir.write(manifest)
            crash_point("study_start")
            _drive(sdir, manifest, runner, progress)
    finally:
        runner.close()
    return path


def resume_study(study_dir: str | Path, *, executor: str | None = None, address: str | None = None,
                 retry_failed: bool = False, progress: bool = True) -> Path:
    """`sgl study --resume`: run what is missing; failed trials are kept (``retry_failed``: run again)."""
    sdir = StudyDir(study_dir)
    manifest = sdir.read()
    for trial in not_started(sdir, manifest):  # an edited spec is refused before anything starts
        check_unchanged(manifest, trial)
    with _locked(sdir.path):
        runner = make_executor(executor or manifest.executor, address if address is not None else manifest.address)
        try:
            slots = runner.slots(len(manifest.trials), manifest.uses_gpu, None, manifest.threads)
            runner.capacity = min(slots.parallel, manifest.parallel) if runner.name == "local" else slots.parallel
            runner.check_storage(sdir.path, Path(manifest.spec))
            for trial in manifest.trials:
                if trial.state == "failed" and retry_failed:
                    trial.state, trial.reason = "pending", None
            manifest.executor = runner.name
            sdir.write(manifest)
            _drive(sdir, manifest, runner, progress)
        finally:
            runner.close()
    return sdir.path


def _manifest(study: StudyPlan, executor: str, address: str | None, slots, plugins: list[str]) -> Manifest:
    records = [TrialRecord(id=t.name, index=t.index, values=t.labels, overrides=t.overrides, digest=digest(c))
               for t, c in zip(study.trials, study.compiled)]
    vary = {key: [] for key in study.section.vary}
    for trial in study.trials:
        for choice in trial.choices:
            if choice.label not in vary[choice.key]:
                vary[choice.key].append(choice.label)
    return Manifest(name=study.name, spec=str(study.spec_path.resolve()), base_overrides=study.base_overrides,
                    vary=vary, rows=study.rows, metrics=list(study.section.table.metrics), executor=executor,
                    address=address, parallel=slots.parallel, threads=slots.threads, trials=records,
                    gpus=list(slots.gpus), plugins=plugins)


def _new_study_dir(study: StudyPlan, explicit: str | Path | None) -> Path:
    if explicit is not None:
        path = Path(explicit)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise StudyError(f"study directory {str(path)!r} exists and is not empty; continue it with "
                             f"`sgl study --resume {path}`, or name another")
        path.mkdir(parents=True, exist_ok=True)
        return path
    plan = study.compiled[0].plan
    output = plan.run.output if plan.run.output.is_absolute() else study.compiled[0].base_dir / plan.run.output
    parent = Path(os.path.normpath(output)) / plan.name
    parent.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for suffix in range(1, 10_000):
        path = parent / (f"study-{stamp}" if suffix == 1 else f"study-{stamp}-{suffix}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise StudyError(f"no free study directory name under {parent}")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One driver per study: a second one is refused while the first lives (the kernel frees the lock)."""
    try:
        lock = RunLock.take(path)
    except RunDirError:
        holder = (path / RunLock.NAME).read_text(encoding="utf-8", errors="replace").strip() or "another process"
        raise StudyError(f"study {str(path)!r} is being run by another driver ({holder}); wait for it to end") from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _signals() -> Iterator[list[int]]:
    """Count Ctrl-C and SIGTERM instead of dying: each one is passed on to the running trials."""
    count = [0]
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def note(signum, frame):
        count[0] += 1

    for sig in previous:
        signal.signal(sig, note)
    try:
        yield count
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _drive(sdir: StudyDir, manifest: Manifest, runner, progress: bool) -> None:
    display = StudyProgress(sdir, manifest, enabled=progress)
    todo = deque(t for t in manifest.trials if t.state not in ("completed", "failed"))
    free_gpus = list(manifest.gpus) if runner.name == "local" else []
    held: dict[str, str | None] = {}
    display.event(f"study {sdir.path}: {len(todo)} of {len(manifest.trials)} trial(s) to run; {runner.describe()}, "
                  f"{manifest.threads} thread(s) each")
    with _signals() as signals, display:
        passed_on = 0
        while todo or runner.running():
            if not signals[0]:
                _start_some(sdir, manifest, runner, display, todo, free_gpus, held)
            for trial_id, code in runner.wait(1.0):
                cpu = getattr(runner, "cpu_seconds", {}).pop(trial_id, None)
                _ended(sdir, manifest, display, manifest.trial(trial_id), code, free_gpus, held, cpu)
            if signals[0] > passed_on:
                passed_on = signals[0]
                display.event("interrupted: asking every running trial to checkpoint and stop")
                runner.interrupt()
                todo.clear()
            display.refresh()
        if signals[0]:
            raise Interrupted(f"study stopped; continue with: sgl study --resume {sdir.path}")
    crash_point("study_end")
    _finish(sdir, manifest, display)


def _start_some(sdir, manifest, runner, display, todo, free_gpus, held) -> None:
    waiting = []
    while todo and len(runner.running()) < runner.capacity:
        trial = todo.popleft()
        run_dir = sdir.trial(trial.id)
        if completed(run_dir):
            trial.state, trial.ended = "completed", trial.ended or now()
            sdir.write(manifest)
            display.event(f"{trial.id}: already complete")
            continue
        if busy(run_dir):
            waiting.append(trial)
            continue
        args = command(sdir, manifest, trial)
        gpu = free_gpus.pop(0) if free_gpus else None
        runner.start(trial.id, args, trial_env(dict(os.environ), manifest.threads, gpu), sdir.trial_log(trial.id))
        held[trial.id] = gpu
        trial.state, trial.attempts, trial.started, trial.device = "running", trial.attempts + 1, now(), gpu
        trial.exit_code = trial.reason = trial.ended = None
        sdir.write(manifest)
        display.started(trial)
        how = "resumed" if "resume" in args else "started"
        display.event(f"{trial.id}: {how}{' on GPU ' + gpu if gpu else ''} (log: {sdir.trial_log(trial.id)})")
    if waiting:
        todo.extend(waiting)
        if not runner.running():
            display.event(f"waiting for {', '.join(t.id for t in waiting)}: held by another process")
            time.sleep(2.0)


def _ended(sdir, manifest, display, trial: TrialRecord, code: int, free_gpus, held, cpu: float | None) -> None:
    gpu = held.pop(trial.id, None)
    if gpu is not None:
        free_gpus.append(gpu)
    if cpu is not None:
        trial.cpu_seconds = round((trial.cpu_seconds or 0.0) + cpu, 2)
    trial.state, trial.reason = outcome(sdir, trial, code)
    trial.exit_code, trial.ended = code, now()
    sdir.write(manifest)
    display.event(f"{trial.id}: {trial.state}" + (f" ({trial.reason})" if trial.reason else ""))


def _finish(sdir: StudyDir, manifest: Manifest, display: StudyProgress) -> None:
    from .report import write_study_report

    result = write_study_report(sdir.path)
    manifest.state = "complete"
    sdir.write(manifest)
    done = sum(t.state == "completed" for t in manifest.trials)
    failed = [t for t in manifest.trials if t.state == "failed"]
    display.event(f"study complete: {done} of {len(manifest.trials)} trial(s) completed"
                  + (f", {len(failed)} failed ({', '.join(t.id for t in failed)})" if failed else "")
                  + f"; table: {result['markdown_table']}")
