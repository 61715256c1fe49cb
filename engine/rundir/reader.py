"""Opening a run directory: its spec and plan, summary, metrics, architectures and checkpoints, each
read when first asked for. ``sgl resume``, ``sgl export``, ``sgl report`` and ``sgl.open_run`` all
read runs through here, so a run is understood one way.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

from sgl.registry import Architecture, Task, read_architecture

from .. import records as R
from ..errors import RunDirError
from ..plan.compile import Compiled, compile_spec
from ..plan.types import RunPlan
from ..summary import Summary
from .checkpoints import CheckpointFiles
from .definition import check_unchanged, from_original
from .files import read_json, read_jsonl
from .layout import RunDir


def _dedupe(records: list[dict[str, Any]], key) -> list[dict[str, Any]]:
    """Keep the last record per key (lines a resumed run wrote again), in first-seen order."""
    last: dict[Any, dict[str, Any]] = {}
    for record in records:
        last[key(record)] = record
    return list(last.values())


class RunFiles:
    """One run directory, read on demand (nothing is written)."""

    def __init__(self, path: str | Path) -> None:
        self.dir = RunDir(Path(path), writer=False)
        self.dir.check_links()  # a directory from someone else must not lead outside itself
        self.notes: list[str] = []  # what a reader should be told (an old run.json without digests)

    @property
    def path(self) -> Path:
        return self.dir.path

    @cached_property
    def info(self) -> dict[str, Any]:
        """run.json: name, seed, overrides, the original spec's folder, the data's task."""
        return self.dir.read_run_info()

    @property
    def base_dir(self) -> Path:
        """The folder the run's spec paths are relative to (the original spec's)."""
        return Path(self.info.get("base_dir") or self.path)

    def compile(self, require_data: bool = False) -> Compiled:
        """The run's spec and plan, from its resolved spec — or, when a kill during set-up kept that
        from being written, from the original spec — refused (RunDirError, naming what changed)
        when they are not what run.json recorded; SpecError when they no longer compile."""
        info = self.info
        if not self.dir.resolved_spec.is_file():
            if not isinstance(info.get("digests"), dict):
                raise RunDirError(f"{str(self.path)!r} has no {self.dir.resolved_spec.name}")
            return from_original(self.dir, info, require_data)[0]
        compile_now = lambda data=False: compile_spec(self.dir.resolved_spec, base_dir=self.base_dir, require_data=data)  # noqa: E731
        self.notes += [n for n in check_unchanged(self.dir, info, compile_now) if n not in self.notes]
        return compile_now(require_data)

    @cached_property
    def plan(self) -> RunPlan:
        return self.compile().plan

    @cached_property
    def summary(self) -> Summary | None:
        """summary.json; None while the run has none (a damaged file raises SummaryUnreadable)."""
        return self.dir.read_summary()

    def metrics(self, kind: str | None = None) -> list[dict[str, Any]]:
        """metrics.jsonl's lines (of one ``kind``: iter, epoch, eval_epoch), a line a resumed run
        repeated counted once."""
        key = {R.ITER: lambda r: (r.get(R.LEARNER), r.get(R.SEARCH_STAGE), r.get(R.STEP)),
               R.EPOCH: lambda r: (r.get(R.LEARNER), r.get(R.SEARCH_STAGE), r.get(R.EPOCH_INDEX)),
               R.EVAL_EPOCH: lambda r: (r.get(R.EVAL_STAGE), r.get(R.EPOCH_INDEX))}
        if kind is not None and kind not in key:
            raise ValueError(f"kind must be one of {', '.join(key)}, got {kind!r}")
        records = read_jsonl(self.dir.metrics)
        kept = {id(r) for k in ([kind] if kind is not None else list(key)) for r in _dedupe(R.of_kind(records, k), key[k])}
        return [r for r in records if id(r) in kept]

    @cached_property
    def architectures(self) -> dict[str, Architecture]:
        """Each searchable learner's architecture file, as last written (unreadable ones left out)."""
        out = {}
        for learner, path in self.dir.architecture_files().items():
            try:
                out[learner] = read_architecture(path)
            except (ValueError, OSError):
                continue
        return out

    def histories(self) -> dict[str, list[dict[str, Any]]]:
        """Each learner's architecture per epoch, with the weights behind it."""
        out = {}
        for learner, path in self.dir.architecture_histories().items():
            history = _dedupe(read_jsonl(path), lambda r: r.get("epoch"))
            if history:
                out[learner] = history
        return out

    def checkpoint(self) -> dict[str, Any]:
        """The last usable checkpoint's state (the previous one when the last cannot be read)."""
        return CheckpointFiles(self.dir).load()

    def task(self) -> Task:
        """The data's task: recorded in run.json when the run began, else found by loading the data."""
        for source in (read_json(self.dir.run_info), read_json(self.dir.summary)):
            task = source.get("task")
            if isinstance(task, dict):
                return Task(**{k: int(task[k]) for k in ("num_classes", "in_channels", "image_size")})
        plan = self.plan
        return plan.data.dataset.build(self.base_dir, seed=plan.seed).task


def open_run_dir(path: str | Path) -> RunFiles:
    """A run directory to read, or RunDirError saying why ``path`` is none."""
    path = Path(path)
    if not os.path.isdir(path):  # never raises (a path too long, say)
        raise RunDirError(f"no such run directory: {str(path)!r}")
    files = RunFiles(path)
    if not files.dir.is_run():
        raise RunDirError(f"{str(path)!r} is not an sgl run directory (no run.json, summary.json or metrics.jsonl)")
    return files
