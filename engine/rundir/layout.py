"""The run directory's layout: the one place that knows its file names, and what the run appends.

A checkpoint records how long the append-only files were when it was taken, so a resumed run cuts
the lines written after it. Nothing here imports torch: reports read run directories without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import RunDirError
from ..summary import Summary, read_summary
from .claim import RunLock
from .files import _json_safe, atomic_write_bytes, atomic_write_text, read_json, write_json


class RunDir:
    """The files of one run. Only the main process makes one that writes (``writer=True``); the
    others get the same paths and write nothing."""

    def __init__(self, path: Path, writer: bool = True) -> None:
        self.path = Path(path)
        self.writer = writer
        self._metrics = None

    # -- layout (docs/run-directory.md describes every file)
    @property
    def spec(self) -> Path:
        return self.path / "spec.yaml"

    @property
    def resolved_spec(self) -> Path:
        return self.path / "spec.resolved.yaml"

    @property
    def plan_text(self) -> Path:
        return self.path / "plan.txt"

    @property
    def plan_json(self) -> Path:
        return self.path / "plan.json"

    @property
    def run_info(self) -> Path:
        return self.path / "run.json"

    @property
    def env(self) -> Path:
        return self.path / "env.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    @property
    def previous_checkpoint(self) -> Path:
        """The checkpoint before the last one: kept so an unreadable last one costs one interval."""
        return self.path / "checkpoints" / "previous.pt"

    @property
    def architectures(self) -> Path:
        """The folder of the learners' architectures (``genotypes/``, the name of its first kind)."""
        return self.path / "genotypes"

    def architecture(self, learner: str) -> Path:
        return self.architectures / f"{learner}.json"

    def architecture_history(self, learner: str) -> Path:
        return self.architectures / f"{learner}.history.jsonl"

    def architecture_files(self) -> dict[str, Path]:
        """Every learner's architecture file, by learner name (sorted)."""
        return {p.stem: p for p in sorted(self.architectures.glob("*.json"))}

    def architecture_histories(self) -> dict[str, Path]:
        """Every learner's architecture history file, by learner name (sorted)."""
        suffix = self.architecture_history("").name
        return {p.name[: -len(suffix)]: p for p in sorted(self.architectures.glob(f"*{suffix}"))}

    def relative(self, path: Path) -> str:
        """How summary.json names a file of the run: relative to the run directory."""
        return path.relative_to(self.path).as_posix()

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def trackers(self) -> Path:
        """The other trackers' stores (``trackers/mlflow``, ``trackers/wandb``, ...) and their run ids."""
        return self.path / "trackers"

    def model(self, stage: str) -> Path:
        return self.path / "models" / f"{stage}.pt"

    @property
    def models(self) -> Path:
        return self.path / "models"

    def export(self, name: str, suffix: str) -> Path:
        return self.path / "export" / f"{name}{suffix}"

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete the temporary files of writes a kill interrupted (``.<name>.*.tmp``)."""
        removed = []
        if not self.writer or not self.path.is_dir():
            return removed
        for tmp in self.path.rglob(".*.tmp"):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
        return removed

    def _partly_set_up(self) -> bool:
        """Whether ``write_start`` began here (its first files, or their temporaries) but did not finish."""
        names = [p.name for p in (self.spec, self.resolved_spec, self.plan_text, self.plan_json, self.env, self.run_info)]
        return self.path.is_dir() and ((self.path / RunLock.NAME).exists() or any(
            (self.path / name).exists() or any(self.path.glob(f".{name}.*.tmp")) for name in names))

    def is_run(self) -> bool:
        return self.path.is_dir() and any(p.exists() for p in (self.run_info, self.summary, self.metrics))

    # -- reading
    def read_run_info(self) -> dict[str, Any]:
        if not self.run_info.exists():
            if self._partly_set_up():
                raise RunDirError(f"{str(self.path)!r} was stopped while it was being set up, before anything ran (it has "
                                  f"no {self.run_info.name}); start it again with the same sgl run command and "
                                  f"--run-dir {str(self.path)!r} --overwrite")
            raise RunDirError(f"{str(self.path)!r} is not an sgl run directory (no {self.run_info.name})")
        info = read_json(self.run_info)
        if not info:
            raise RunDirError(f"{self.run_info} is not readable JSON")
        return info

    def read_summary(self) -> Summary | None:
        """The run's summary; None before it has one (a damaged file raises SummaryUnreadable)."""
        return read_summary(self.summary)

    # -- writing
    def write_start(self, *, spec_text: str, resolved_yaml: str, plan_text: str, plan_json: str,
                    run_info: dict[str, Any], env: dict[str, Any]) -> None:
        if not self.writer:
            return
        atomic_write_text(self.spec, spec_text)
        atomic_write_text(self.resolved_spec, resolved_yaml)
        atomic_write_text(self.plan_text, plan_text)
        atomic_write_text(self.plan_json, plan_json)
        write_json(self.env, env)
        write_json(self.run_info, run_info)  # last: a directory with run.json is completely set up

    def log(self, record: dict[str, Any]) -> None:
        """Append one line to metrics.jsonl (flushed: a kill loses at most the line being written)."""
        if not self.writer:
            return
        if self._metrics is None:
            self._metrics = open(self.metrics, "a", encoding="utf-8")
        self._metrics.write(json.dumps(_json_safe(record), default=float, allow_nan=False) + "\n")
        self._metrics.flush()

    def append_jsonl(self, path: Path, record: dict[str, Any]) -> None:
        if not self.writer:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def write_json(self, path: Path, data: Any) -> None:
        if self.writer:
            write_json(path, data)

    def write_bytes(self, path: Path, data: bytes) -> None:
        if self.writer:
            atomic_write_bytes(path, data)

    def _appendables(self) -> list[Path]:
        return [self.metrics, *self.architecture_histories().values()]

    def offsets(self) -> dict[str, int]:
        """Sizes of the append-only files now: stored in a checkpoint to cut them back on resume."""
        if self._metrics is not None:
            self._metrics.flush()
        return {p.relative_to(self.path).as_posix(): p.stat().st_size for p in self._appendables() if p.exists()}

    def truncate(self, offsets: dict[str, int]) -> None:
        """Drop what was appended after the checkpoint being resumed."""
        if not self.writer:
            return
        for path in self._appendables():
            size = offsets.get(path.relative_to(self.path).as_posix())
            if size is None:
                path.unlink(missing_ok=True)
            elif path.exists():
                with open(path, "r+b") as handle:
                    handle.truncate(size)

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
