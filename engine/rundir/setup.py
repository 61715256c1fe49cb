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
from .definition import digest, digests, resolved_yaml
from .layout import RunDir

__all__ = ["environment", "finish_start", "plan_text", "resolved_yaml", "write_start"]


def write_start(rundir: RunDir, compiled: Compiled, spec_path: Path, overrides: list[str], task: Any,
                accelerator: Any) -> None:
    """Every file a run directory holds before its first checkpoint: run.json first, with the
    digests of the others (so a resume notices an edit, and can finish a set-up a kill cut short)."""
    texts = {"spec.yaml": spec_path.read_text(encoding="utf-8"), "spec.resolved.yaml": resolved_yaml(compiled),
             "plan.txt": plan_text(compiled.plan), "plan.json": plan_json(compiled.plan) + "\n"}
    rundir.write_start(
        spec_text=texts["spec.yaml"],
        resolved_yaml=texts["spec.resolved.yaml"],
        plan_text=texts["plan.txt"],
        plan_json=texts["plan.json"],
        run_info={
            "name": compiled.plan.name,
            "spec": str(spec_path.resolve()),
            "base_dir": str(compiled.base_dir.resolve()),
            "overrides": overrides,
            "seed": compiled.plan.seed,
            "format": CHECKPOINT_FORMAT,
            "task": {"num_classes": task.num_classes, "in_channels": task.in_channels, "image_size": task.image_size},
            "digests": digests(texts),
        },
        env=environment(accelerator, compiled.base_dir),
    )


def finish_start(rundir: RunDir, info: dict[str, Any], compiled: Compiled, accelerator: Any) -> list[str]:
    """Write the set-up files a kill kept from being written (run.json says what they hold); returns
    what was written. spec.yaml comes from the original spec when it still has the recorded digest."""
    missing = rundir.missing_setup()
    if not missing or not rundir.writer:
        return missing
    spec_text = ""
    if "spec.yaml" in missing:
        try:
            original = Path(str(info.get("spec"))).read_bytes()
        except OSError:
            original = None
        recorded = (info.get("digests") or {}).get("spec.yaml")
        if original is None or digest("spec.yaml", original) != recorded:
            missing.remove("spec.yaml")  # cannot be told again: left out, the rest still written
        else:
            spec_text = original.decode("utf-8")
    rundir.write_missing_setup(spec_text=spec_text if "spec.yaml" in missing else None, resolved_yaml=resolved_yaml(compiled),
                               plan_text=plan_text(compiled.plan), plan_json=plan_json(compiled.plan) + "\n",
                               env=environment(accelerator, compiled.base_dir))
    return missing


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
