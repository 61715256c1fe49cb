"""The run directory's layout: the one place that knows its file names, and what the run appends.

A checkpoint records how long the append-only files were when it was taken, so a resumed run cuts
the lines written after it. Nothing here imports torch: reports read run directories without it.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

from ..errors import RunDirError
from ..summary import Summary, read_summary
from .lock import RunLock
from .files import _json_safe, atomic_write_bytes, atomic_write_text, read_json, write_json
from .links import check_inside, misplaced, open_no_follow, refusal

#: What a run directory holds at its top (docs/run-directory.md): its files, and its folders.
FILES = ("run.json", "spec.yaml", "spec.resolved.yaml", "plan.txt", "plan.json", "env.json", "metrics.jsonl",
         "summary.json", "report.html", "report.md", RunLock.NAME)
FOLDERS = ("checkpoints", "genotypes", "figures", "tensorboard", "models", "export")
#: Files a run is set up with, in the order they are written (run.json first: it says how to finish).
SETUP = ("run.json", "spec.yaml", "spec.resolved.yaml", "plan.txt", "plan.json", "env.json")


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
        """Whether ``write_start`` began here (its first file, or its temporary) but did not finish."""
        return self.path.is_dir() and ((self.path / RunLock.NAME).exists() or any(
            (self.path / name).exists() or any(self.path.glob(f".{name}.*.tmp")) for name in SETUP))

    def is_run(self) -> bool:
        return self.path.is_dir() and any(p.exists() for p in (self.run_info, self.summary, self.metrics))

    def missing_setup(self) -> list[str]:
        """The set-up files a kill kept from being written (after run.json, which says how to write them)."""
        return [name for name in SETUP if not (self.path / name).is_file()]

    def check_links(self) -> None:
        """Refuse a directory with links (or FIFOs, devices) where its files belong: reading or
        writing through them could reach anything, or wait for ever."""
        if self.path.is_dir():
            found = misplaced(self.path, FILES, FOLDERS)
            if found:
                raise RunDirError(refusal(self.path, found))

    def foreign_entries(self) -> list[str]:
        """What the top of the directory holds that no run writes (a reason never to delete it)."""
        known = {*FILES, *FOLDERS}
        return sorted(p.name for p in self.path.iterdir()
                      if p.name not in known and not (p.name.startswith(".") and p.name.endswith(".tmp")))

    def looks_like_run(self) -> bool:
        """Whether a run (or a run's set-up, or a lock) began here."""
        return any((self.path / name).exists() for name in (*SETUP, "metrics.jsonl", "summary.json", RunLock.NAME))

    # -- reading
    def read_run_info(self) -> dict[str, Any]:
        if not self.run_info.exists():
            if self._partly_set_up():
                raise RunDirError(f"{str(self.path)!r} was stopped while it was being set up, before anything ran (it "
                                  f"has no {self.run_info.name}, which records its spec); start it again with the same "
                                  f"`sgl run` command and --run-dir {shlex.quote(str(self.path))} --overwrite")
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
        """The set-up files, run.json first: it records how to write the others (the original spec,
        its overrides, the digests of what they hold), so a kill part-way can be finished by resume."""
        if not self.writer:
            return
        write_json(self.run_info, run_info)
        self.write_missing_setup(spec_text=spec_text, resolved_yaml=resolved_yaml, plan_text=plan_text,
                                 plan_json=plan_json, env=env)

    def write_missing_setup(self, *, spec_text: str | None, resolved_yaml: str, plan_text: str, plan_json: str,
                            env: dict[str, Any]) -> None:
        """Write the set-up files (after run.json) that are not there yet, in order (spec.yaml only
        when its text is known)."""
        if not self.writer:
            return
        texts = {self.spec: spec_text, self.resolved_spec: resolved_yaml, self.plan_text: plan_text, self.plan_json: plan_json}
        for path, text in texts.items():
            if text is not None and not path.is_file():
                atomic_write_text(path, text)
        if not self.env.is_file():
            write_json(self.env, env)

    def log(self, record: dict[str, Any]) -> None:
        """Append one line to metrics.jsonl (flushed: a kill loses at most the line being written)."""
        if not self.writer:
            return
        if self._metrics is None:
            self._metrics = open_no_follow(self.metrics, "a")
        self._metrics.write(json.dumps(_json_safe(record), default=float, allow_nan=False) + "\n")
        self._metrics.flush()

    def append_jsonl(self, path: Path, record: dict[str, Any]) -> None:
        if not self.writer:
            return
        check_inside(self.path, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open_no_follow(path, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def write_json(self, path: Path, data: Any) -> None:
        if self.writer:
            check_inside(self.path, path)
            write_json(path, data)

    def write_bytes(self, path: Path, data: bytes) -> None:
        if self.writer:
            check_inside(self.path, path)
            atomic_write_bytes(path, data)

    def _appendables(self) -> list[Path]:
        return [self.metrics, *self.architecture_histories().values()]

    def offsets(self) -> dict[str, int]:
        """Sizes of the append-only files now: stored in a checkpoint to cut them back on resume.
        The files are synced first: the lines a checkpoint counts are on the disk before it is."""
        if self._metrics is not None:
            self._metrics.flush()
        sizes = {}
        for path in self._appendables():
            if path.exists():
                if self.writer:
                    _sync(path)
                sizes[path.relative_to(self.path).as_posix()] = path.stat().st_size
        return sizes

    def check_offsets(self, offsets: dict[str, int]) -> None:
        """Refuse to resume when an append-only file holds less than a checkpoint counts: lines it
        counts are lost (a power cut before they reached the disk, or an edit), and sgl never pads."""
        short = []
        for name, size in offsets.items():
            path = self.path / name
            have = path.stat().st_size if path.is_file() else 0
            if have < size:
                short.append(f"{name} holds {have:,} bytes, the checkpoint counts {size:,}")
        if short:
            raise RunDirError(f"{str(self.path)!r}: {'; '.join(short)}. Lines the checkpoint counts are missing, so "
                              "the run cannot continue exactly from it (sgl never pads a file): restore the file from "
                              "a copy, or start the run again with `sgl run ... --overwrite`")

    def truncate(self, offsets: dict[str, int]) -> None:
        """Drop what was appended after the checkpoint being resumed (refusing files that are short).
        Only the writer's directory holds the files: another process may have no copy at all."""
        if not self.writer:
            return
        self.check_offsets(offsets)
        for path in self._appendables():
            size = offsets.get(path.relative_to(self.path).as_posix())
            if size is None:
                path.unlink(missing_ok=True)
            elif path.exists():
                with open_no_follow(path, "r+b") as handle:
                    handle.truncate(size)

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
