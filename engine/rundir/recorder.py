"""The recorder: a run's products into its run directory — the sink of ``sgl run`` and ``sgl resume``.

It writes metrics lines (and TensorBoard's events), architectures and their histories, diagrams,
trained networks, the summary and checkpoints, each where ``RunDir`` says. Only the main process
writes; the others keep what they are given in memory and write nothing.
"""

from __future__ import annotations

import importlib.util
import io
from typing import Any

import torch

from sgl.registry import Architecture

from .. import records as R
from ..summary import Summary
from .checkpoints import CheckpointFiles
from .files import iter_jsonl
from .layout import RunDir


def has_tensorboard() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class Recorder:
    """A ``run.sink.RunSink`` over a run directory."""

    def __init__(self, rundir: RunDir, tensorboard: str = "auto") -> None:
        self.rundir = rundir
        self.location = str(rundir.path)
        self.checkpoints = CheckpointFiles(rundir)
        self._tensorboard = tensorboard
        self._tracker: Any = None
        self._last_epoch: dict[str, dict[str, Any]] = {}  # learner -> its latest epoch line

    # -- life
    def start(self) -> None:
        if self.rundir.writer and self._tensorboard != "off" and has_tensorboard():
            from accelerate.tracking import TensorBoardTracker

            self._tracker = TensorBoardTracker(self.rundir.tensorboard.name, str(self.rundir.path))
            self._tracker.start()

    def finish(self) -> None:
        self.rundir.close()
        if self._tracker is not None:
            self._tracker.finish()
            self._tracker = None

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
        if self._tracker is not None:
            who = record.get(R.LEARNER, record.get(R.EVAL_STAGE))
            prefix = f"{record[R.KIND]}/{who}"
            scalars = {f"{prefix}/{k}": v for k, v in record.items() if isinstance(v, float) and k != R.TIME}
            self._tracker.log(scalars, step=record.get(R.STEP, record.get(R.EPOCH_INDEX)))

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
