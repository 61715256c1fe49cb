"""The run directory: what a run writes, written so that nothing is lost on a crash or a kill.

Every file that is replaced (checkpoints, summaries, genotypes) is written to a temporary file
and renamed; metrics are appended line by line and flushed. A checkpoint records how long
metrics.jsonl was when it was taken, so a resumed run cuts the lines written after it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"
CHECKPOINT = "checkpoints/last.pt"


class RunDirError(Exception):
    """A run directory that cannot be used as asked (exists, missing, incomplete)."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def new_run_dir(output: Path, name: str, explicit: Path | None = None, overwrite: bool = False) -> Path:
    """``explicit`` or ``<output>/<name>/<timestamp>``; never reuses a non-empty folder unless told to."""
    if explicit is not None:
        path = explicit
        if path.exists() and any(path.iterdir()):
            if not overwrite:
                raise RunDirError(f"run directory {str(path)!r} exists and is not empty (use --overwrite to replace it)")
            import shutil

            shutil.rmtree(path)
    else:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = output / name / stamp
        suffix = 1
        while path.exists():
            suffix += 1
            path = output / name / f"{stamp}-{suffix}"
    path.mkdir(parents=True, exist_ok=True)
    return path


class RunDir:
    """Files of one run. Only the main process makes one that writes (``writer=True``)."""

    def __init__(self, path: Path, writer: bool = True) -> None:
        self.path = path
        self.writer = writer
        self._metrics = None

    # -- layout
    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    def genotype_file(self, learner: str) -> Path:
        return self.path / "genotypes" / f"{learner}.json"

    def genotype_history(self, learner: str) -> Path:
        return self.path / "genotypes" / f"{learner}.history.jsonl"

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    # -- writing
    def write_start(self, *, spec_text: str, resolved_yaml: str, plan_text: str, run_info: dict[str, Any], env: dict[str, Any]) -> None:
        if not self.writer:
            return
        atomic_write_text(self.path / "spec.yaml", spec_text)
        atomic_write_text(self.path / "spec.resolved.yaml", resolved_yaml)
        atomic_write_text(self.path / "plan.txt", plan_text)
        write_json(self.path / RUN_FILE, run_info)
        write_json(self.path / "env.json", env)

    def log(self, record: dict[str, Any]) -> None:
        if not self.writer:
            return
        if self._metrics is None:
            self._metrics = open(self.metrics_file, "a", encoding="utf-8")
        self._metrics.write(json.dumps(record, default=float) + "\n")
        self._metrics.flush()

    def _appendables(self) -> list[Path]:
        return [self.metrics_file, *sorted((self.path / "genotypes").glob("*.history.jsonl"))]

    def offsets(self) -> dict[str, int]:
        """Sizes of the append-only files now: stored in a checkpoint to cut them back on resume."""
        if self._metrics is not None:
            self._metrics.flush()
        return {str(p.relative_to(self.path)): p.stat().st_size for p in self._appendables() if p.exists()}

    def truncate(self, offsets: dict[str, int]) -> None:
        """Drop what was appended after the checkpoint being resumed."""
        if not self.writer:
            return
        for path in self._appendables():
            size = offsets.get(str(path.relative_to(self.path)))
            if size is None:
                path.unlink(missing_ok=True)
            elif path.exists():
                with open(path, "r+b") as handle:
                    handle.truncate(size)

    def append_jsonl(self, path: Path, record: dict[str, Any]) -> None:
        if not self.writer:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def last_record(self, **match: Any) -> dict[str, Any]:
        """The last metrics line whose fields equal ``match`` (empty when none)."""
        if self._metrics is not None:
            self._metrics.flush()
        if not self.metrics_file.exists():
            return {}
        found: dict[str, Any] = {}
        with open(self.metrics_file, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                if all(record.get(k) == v for k, v in match.items()):
                    found = record
        return found

    def write_json(self, relative: str | Path, data: Any) -> None:
        if self.writer:
            write_json(self.path / relative, data)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        if not self.writer:
            return
        import io

        import torch

        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.checkpoint, buffer.getvalue())

    def load_checkpoint(self) -> dict[str, Any]:
        import torch

        if not self.checkpoint.exists():
            raise RunDirError(f"{str(self.path)!r} has no checkpoint ({CHECKPOINT}) to resume from")
        return torch.load(self.checkpoint, map_location="cpu", weights_only=True)

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None


def read_run_info(path: Path) -> dict[str, Any]:
    info_file = path / RUN_FILE
    if not info_file.exists():
        raise RunDirError(f"{str(path)!r} is not an sgl run directory (no {RUN_FILE})")
    return json.loads(info_file.read_text(encoding="utf-8"))


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
