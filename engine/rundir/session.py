"""Starting and resuming runs: compile the spec, set up Accelerate and the run directory, execute.

`sgl run` and `sgl resume` call ``run_spec`` and ``resume_run``; everything a run in progress needs
is in its directory.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

from ..run.checkpoint import CHECKPOINT_FORMAT, Checkpointer, CheckpointUnreadable, Cursor, no_usable_checkpoint, read_checkpoint
from ..plan.compile import Compiled, compile_spec
from ..run.distributed import Collectives
from ..errors import RunDirError
from ..run.executor import Executor, RunOptions
from .recorder import Recorder, has_tensorboard
from .layout import RunDir
from .claim import RunLock, new_run_dir
from ..plan.types import RunPlan
from ..run.runtime import build_runtime


def run_spec(spec_path: str | Path, overrides: Iterable[str] = (), options: RunOptions | None = None) -> Path:
    """`sgl run`: compile the spec, make a run directory and execute the plan."""
    options = options or RunOptions()
    overrides = list(overrides)
    compiled = compile_spec(spec_path, overrides)
    accelerator = make_accelerator(compiled.plan)
    runtime = build_runtime(compiled.plan, accelerator, compiled.base_dir)  # loads data: fails before a run directory exists
    path, lock = _shared_run_dir(runtime.collectives, compiled, options)
    rundir = RunDir(path, writer=accelerator.is_main_process)
    spec_file = Path(spec_path)
    task = runtime.bundle.task
    rundir.write_start(
        spec_text=spec_file.read_text(encoding="utf-8"),
        resolved_yaml=resolved_yaml(compiled),
        plan_text=plan_text(compiled.plan),
        run_info={
            "name": compiled.plan.name,
            "spec": str(spec_file.resolve()),
            "base_dir": str(compiled.base_dir.resolve()),
            "overrides": overrides,
            "seed": compiled.plan.seed,
            "format": CHECKPOINT_FORMAT,
            "task": {"num_classes": task.num_classes, "in_channels": task.in_channels, "image_size": task.image_size},
        },
        env=environment(accelerator, compiled.base_dir),
    )
    executor = _executor(runtime, rundir, compiled.plan, options)
    executor.checkpoint_start()  # a kill before the first epoch ends can resume from here
    try:
        executor.execute(Cursor())
    finally:
        if lock is not None:
            lock.release()
    return path


def compile_run(run_dir: str | Path) -> tuple[RunDir, Compiled]:
    """A run directory's plan, from its resolved spec (paths relative to the original spec's folder)."""
    rundir = RunDir(Path(run_dir))
    info = rundir.read_run_info()
    return rundir, compile_spec(rundir.resolved_spec, base_dir=Path(info["base_dir"]))


def resume_run(run_dir: str | Path, options: RunOptions | None = None) -> Path:
    """`sgl resume`: continue a run from its last checkpoint with nothing else given.

    The last checkpoint is used, or the previous one when the last cannot be read or does not fit
    the run (saying so). A run whose last stage ended but whose summary was never written (a kill at
    the very end) gets its summary now.
    """
    options = options or RunOptions()
    rundir, compiled = compile_run(run_dir)
    accelerator = make_accelerator(compiled.plan)
    main = accelerator.is_main_process
    lock = RunLock.take(rundir.path) if main else None
    try:
        rundir = RunDir(rundir.path, writer=main)
        rundir.remove_stale_temporaries()
        if any(p.exists() for p in Checkpointer(rundir).paths()):
            executor, cursor = _restore(rundir, compiled, accelerator, options)
        else:
            executor, cursor = _from_the_start(rundir, compiled, accelerator, options), Cursor()
        if cursor.stage >= len(compiled.plan.stages) and rundir.read_summary().get("status") == "completed":
            executor.progress.message(f"{rundir.path} is already complete; nothing to resume")
            return rundir.path
        executor.execute(cursor)
    finally:
        if lock is not None:
            lock.release()
    return rundir.path


def _executor(runtime: Any, rundir: RunDir, plan: RunPlan, options: RunOptions) -> Executor:
    return Executor(runtime, Recorder(rundir, plan.run.tensorboard), options)


def _restore(rundir: RunDir, compiled: Compiled, accelerator: Any, options: RunOptions) -> tuple[Executor, Cursor]:
    """An executor restored from the newest checkpoint that reads and fits (a fresh runtime each try)."""
    failures: list[str] = []
    for path in Checkpointer(rundir).paths():
        try:
            state = read_checkpoint(path)
        except CheckpointUnreadable as exc:
            failures.append(str(exc))
            continue
        executor = _executor(build_runtime(compiled.plan, accelerator, compiled.base_dir), rundir, compiled.plan, options)
        try:
            cursor = executor.restore(state)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            failures.append(f"{path}: does not fit this run ({reason})")
            continue
        if failures:
            moved = [_set_aside(p) for p in Checkpointer(rundir).paths() if p != path and p.exists() and rundir.writer]
            kept = f" (kept as {', '.join(str(m) for m in moved)})" if moved else ""
            executor.progress.message(f"[yellow]{'; '.join(failures)}[/yellow]{kept} — resumed from {path} instead")
        return executor, cursor
    raise no_usable_checkpoint(rundir, failures)


def _from_the_start(rundir: RunDir, compiled: Compiled, accelerator: Any, options: RunOptions) -> Executor:
    """A run stopped after it was set up but before its first checkpoint: nothing had trained, so it
    starts again from the beginning, as ``run_spec`` would have gone on."""
    executor = _executor(build_runtime(compiled.plan, accelerator, compiled.base_dir), rundir, compiled.plan, options)
    executor.progress.message(f"{rundir.path} was stopped before its first checkpoint; starting it from the beginning")
    executor.checkpoint_start()
    return executor


def _set_aside(path: Path) -> Path:
    """Move an unusable checkpoint out of the way (never delete what a run wrote)."""
    import datetime as _datetime

    stamp = _datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"unusable-{stamp}-{path.name}")
    os.replace(path, target)
    return target


def resolved_yaml(compiled: Compiled) -> str:
    from ruamel.yaml import YAML

    data = compiled.spec.model_dump(mode="json")
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    buffer = io.StringIO()
    buffer.write(f"# {compiled.spec.name}: the spec as run (defaults filled, overrides applied).\n")
    yaml.dump(data, buffer)
    return buffer.getvalue()


def plan_text(plan: RunPlan) -> str:
    from rich.console import Console

    from ..plan.view import plan_text as show

    console = Console(record=True, width=140, file=io.StringIO(), color_system=None)
    show(plan, console)
    return console.export_text()


def make_accelerator(plan: RunPlan):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if plan.deterministic:
        # cuBLAS needs this before its first use to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if launched and launched != plan.run.mixed_precision:
        import click

        click.echo(f"note: `accelerate launch` asked for mixed precision {launched!r}; the spec's run.mixed_precision "
                   f"({plan.run.mixed_precision!r}) is used (override it: run.mixed_precision={launched})", err=True)
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") not in (None, plan.run.mixed_precision) and not _distributed():
        # A second run in one process (tests, notebooks) with another precision: start afresh.
        AcceleratorState._reset_state(reset_partial_state=True)
    if plan.run.tensorboard == "on" and not has_tensorboard():
        raise RunDirError("run.tensorboard is 'on' but tensorboard is not installed (pip install tensorboard)")
    from datetime import timedelta

    from accelerate.utils import InitProcessGroupKwargs

    # Several processes and no GPU (torchrun on a CPU machine): Accelerate forms a group of CPU
    # processes only when told cpu=True; otherwise each would start its own single-process run.
    cpu = plan.run.cpu or (_distributed() and not _has_accelerator())
    timeout = InitProcessGroupKwargs(timeout=timedelta(seconds=plan.run.dist_timeout))
    return Accelerator(cpu=cpu, mixed_precision=plan.run.mixed_precision, kwargs_handlers=[timeout])


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


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


def environment(accelerator: Any, base_dir: Path) -> dict[str, Any]:
    """Versions, command, git commit and devices: what someone needs to reproduce the run."""
    from importlib import metadata

    versions = {}
    for package in ("sgl", "torch", "torchvision", "accelerate", "pydantic", "ruamel.yaml", "numpy", "scikit-learn"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        commit = subprocess.run(
            ["git", "-C", str(base_dir), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "command": sys.argv,
        "python": sys.version,
        "platform": platform.platform(),
        "hostname": platform.node(),
        "versions": versions,
        "git_commit": commit,
        "device": str(accelerator.device),
        "num_processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
    }
