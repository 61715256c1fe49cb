"""Starting and resuming runs: compile the spec, set up Accelerate, the run directory, then execute.

`sgl run` and `sgl resume` call ``run_spec`` and ``resume_run``; everything they need to know about
a run in progress is in its directory.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Iterable

from .compile import Compiled, compile_spec
from .execute import CHECKPOINT_FORMAT, Cursor, Executor, RunOptions, has_tensorboard
from .plan import StageGraph
from .rundir import RunDir, RunDirError, environment, new_run_dir, read_run_info


def run_spec(spec_path: str | Path, overrides: Iterable[str] = (), options: RunOptions | None = None) -> Path:
    """`sgl run`: compile the spec, make a run directory and execute the plan."""
    options = options or RunOptions()
    overrides = list(overrides)
    compiled = compile_spec(spec_path, overrides)
    accelerator = _accelerator(compiled.spec)
    executor = Executor(compiled, accelerator, options)  # loads data: fails before a run directory exists
    path = _shared_run_dir(accelerator, compiled, options)
    rundir = RunDir(path, writer=accelerator.is_main_process)
    spec_file = Path(spec_path)
    task = executor.bundle.task
    run_info = {
        "name": compiled.spec.name,
        "spec": str(spec_file.resolve()),
        "base_dir": str(compiled.base_dir.resolve()),
        "overrides": overrides,
        "seed": compiled.spec.seed,
        "format": CHECKPOINT_FORMAT,
        "task": {"num_classes": task.num_classes, "in_channels": task.in_channels, "image_size": task.image_size},
    }
    rundir.write_start(
        spec_text=spec_file.read_text(encoding="utf-8"),
        resolved_yaml=resolved_yaml(compiled),
        plan_text=_plan_text(compiled.graph),
        run_info=run_info,
        env=environment(accelerator, compiled.base_dir),
    )
    executor.execute(Cursor(), rundir)
    return path


def resume_run(run_dir: str | Path, options: RunOptions | None = None) -> Path:
    """`sgl resume`: continue a run from its last checkpoint with nothing else given."""
    options = options or RunOptions()
    path = Path(run_dir)
    info = read_run_info(path)
    compiled = compile_spec(path / "spec.resolved.yaml", base_dir=Path(info["base_dir"]))
    accelerator = _accelerator(compiled.spec)
    rundir = RunDir(path, writer=accelerator.is_main_process)
    state = rundir.load_checkpoint()
    if state.get("format") != CHECKPOINT_FORMAT:
        raise RunDirError(f"checkpoint format {state.get('format')} is not {CHECKPOINT_FORMAT}")
    executor = Executor(compiled, accelerator, options)
    cursor = executor.restore(state, rundir)
    if cursor.phase >= len(compiled.graph.phases):
        executor.progress.message(f"{path} is already complete; nothing to resume")
        return path
    executor.execute(cursor, rundir)
    return path


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


def _plan_text(graph: StageGraph) -> str:
    from rich.console import Console

    from .plan_view import plan_text

    console = Console(record=True, width=140, file=io.StringIO(), color_system=None)
    plan_text(graph, console)
    return console.export_text()


def _accelerator(spec: Any):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if spec.deterministic:
        # cuBLAS needs this before its first use to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") not in (None, spec.run.mixed_precision) and not _distributed():
        # A second run in one process (tests, notebooks) with another precision: start afresh.
        AcceleratorState._reset_state(reset_partial_state=True)
    if spec.run.tensorboard == "on" and not has_tensorboard():
        raise RunDirError("run.tensorboard is 'on' but tensorboard is not installed (pip install tensorboard)")
    return Accelerator(cpu=spec.run.cpu, mixed_precision=spec.run.mixed_precision)


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _shared_run_dir(accelerator: Any, compiled: Compiled, options: RunOptions) -> Path:
    """The main process picks the run directory; the others are told which."""
    from accelerate.utils import broadcast_object_list

    box: list[Any] = [None]
    if accelerator.is_main_process:
        output = compiled.spec.run.output
        # normpath: show runs/quickstart/..., not specs/../runs/quickstart/...
        output = Path(os.path.normpath(output if output.is_absolute() else compiled.base_dir / output))
        box[0] = str(new_run_dir(output, compiled.spec.name, options.run_dir, options.overwrite))
    if accelerator.num_processes > 1:
        broadcast_object_list(box)
    return Path(box[0])
