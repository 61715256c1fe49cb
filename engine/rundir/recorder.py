"""The recorder: a run's products into its run directory — the sink of ``sgl run`` and ``sgl resume``.

It writes metrics lines, architectures and their histories, diagrams, trained networks, the summary
and checkpoints, each where ``RunDir`` says, and hands the metrics, each epoch's genotypes and, at
the end, the figures to the run's experiment trackers (``trackers``). Only the main process writes;
the others keep what they are given in memory and write nothing.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from sgl.registry import Architecture

from .. import records as R
from ..plan.settings import TrackerPlan
from ..summary import Summary
from .checkpoints import CheckpointFiles
from .files import iter_jsonl
from .layout import RunDir
from .trackers import Trackers

#: Draws a run's figures into its ``figures/`` folder and returns them (the report's, given by the
#: layer that knows them), for the trackers that keep files.
FigureMaker = Callable[[Path], list[Path]]


class Recorder:
    """A ``run.sink.RunSink`` over a run directory."""

    def __init__(self, rundir: RunDir, trackers: tuple[TrackerPlan, ...] = (), spec: dict[str, Any] | None = None,
                 figures: FigureMaker | None = None) -> None:
        self.rundir = rundir
        self.location = str(rundir.path)
        self.checkpoints = CheckpointFiles(rundir)
        self.trackers = Trackers(rundir, trackers)
        self._spec = spec or {}
        self._figures = figures
        self._last_epoch: dict[str, dict[str, Any]] = {}  # learner -> its latest epoch line

    # -- life
    def start(self) -> None:
        self.trackers.start(self._spec)

    def finish(self) -> None:
        self.rundir.close()
        try:
            if self.trackers.want_figures:
                self.trackers.files(self._artifacts())
        finally:
            self.trackers.finish()

    def _artifacts(self) -> list[Path]:
        """What the trackers keep of the run: the spec as run, the summary, genotypes and figures."""
        drawn: list[Path] = []
        if self._figures is not None:
            try:
                drawn = self._figures(self.rundir.path)
            except Exception as exc:  # noqa: BLE001 - a figure that cannot be drawn must not fail a finished run
                warnings.warn(f"the run's figures were not drawn for its trackers: {type(exc).__name__}: {exc}", stacklevel=2)
        figures = sorted(self.rundir.figures.glob("*")) if self.rundir.figures.is_dir() else []
        files = [self.rundir.resolved_spec, self.rundir.summary, *self.rundir.architecture_files().values()]
        return [p for p in dict.fromkeys([*files, *figures, *drawn]) if p.is_file()]

    def positions(self) -> dict[str, int]:
        return self.rundir.offsets()

    def rewind(self, positions: dict[str, int]) -> None:
        """Cut the append-only files back to a checkpoint's sizes and re-read what they hold."""
        self.rundir.truncate(positions)
        self._last_epoch = {}
        for record in iter_jsonl(self.rundir.metrics):
            if record.get(R.KIND) == R.EPOCH:
                self._last_epoch[str(record.get(R.LEARNER))] = record

    # -- metrics
    def log(self, record: dict[str, Any]) -> None:
        self.rundir.log(record)
        if record.get(R.KIND) == R.EPOCH:
            self._last_epoch[record[R.LEARNER]] = record
        values = {k: v for k, v in record.items() if k != R.TIME}
        who = str(record.get(R.LEARNER, record.get(R.EVAL_STAGE)))
        self.trackers.log(values, str(record[R.KIND]), who, int(record.get(R.STEP, record.get(R.EPOCH_INDEX, 0))))

    def last_epoch(self, learner: str) -> dict[str, Any]:
        return self._last_epoch.get(learner, {})

    # -- architectures and networks
    def architecture(self, learner: str, architecture: Architecture) -> str:
        self.rundir.write_json(self.rundir.architecture(learner), architecture.to_json())
        return self.architecture_file(learner)

    def architecture_file(self, learner: str) -> str:
        return self.rundir.relative(self.rundir.architecture(learner))

    def architecture_history(self, learner: str, epoch: int, architecture: Architecture,
                             weights: dict[str, Any], entropy: dict[str, float]) -> None:
        self.rundir.append_jsonl(self.rundir.architecture_history(learner), {
            "epoch": epoch, "genotype": architecture.to_json(), "alpha": weights,
            "primitives": list(architecture.operations()), "entropy": entropy,
        })
        self.trackers.genotype(learner, epoch + 1, architecture.to_json(), architecture.describe())

    def diagrams(self, learner: str, architecture: Architecture) -> None:
        if self.rundir.writer:
            architecture.draw(self.rundir.figures, f"cell_{learner}")

    def model(self, stage: str, package: dict[str, Any]) -> str:
        buffer = io.BytesIO()
        torch.save(package, buffer)
        self.rundir.write_bytes(self.rundir.model(stage), buffer.getvalue())
        return self.rundir.relative(self.rundir.model(stage))

    # -- the end, and checkpoints
    def summary(self, summary: Summary) -> None:
        self.rundir.write_json(self.rundir.summary, summary.to_json())

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        self.checkpoints.save(state)
