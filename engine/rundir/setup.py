"""What a run directory is set up with before anything trains: the spec as given and as resolved,
the plan (as text and as JSON), run.json and env.json."""

from __future__ import annotations

import datetime as _dt
import io
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..plan.compile import Compiled
from ..plan.types import RunPlan
from ..plan.view import plan_json
from ..run.checkpoint import CHECKPOINT_FORMAT
from .layout import RunDir


def write_start(rundir: RunDir, compiled: Compiled, spec_path: Path, overrides: list[str], task: Any,
                accelerator: Any) -> None:
    """Every file a run directory holds before its first checkpoint (run.json last: a directory
    with run.json is completely set up)."""
    rundir.write_start(
        spec_text=spec_path.read_text(encoding="utf-8"),
        resolved_yaml=resolved_yaml(compiled),
        plan_text=plan_text(compiled.plan),
        plan_json=plan_json(compiled.plan) + "\n",
        run_info={
            "name": compiled.plan.name,
            "spec": str(spec_path.resolve()),
            "base_dir": str(compiled.base_dir.resolve()),
            "overrides": overrides,
            "seed": compiled.plan.seed,
            "format": CHECKPOINT_FORMAT,
            "task": {"num_classes": task.num_classes, "in_channels": task.in_channels, "image_size": task.image_size},
        },
        env=environment(accelerator, compiled.base_dir),
    )


def resolved_yaml(compiled: Compiled) -> str:
    from ruamel.yaml import YAML

    # A study section is no part of the run: each trial of a study is the spec without it.
    data = compiled.spec.model_dump(mode="json", exclude={"study"})
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
