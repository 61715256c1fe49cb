"""The recorder: what a run tells the world — metrics lines, TensorBoard, genotypes, the summary.

It owns the run directory's records (metrics.jsonl, genotypes/, figures/ of the derive stage,
summary.json) and TensorBoard's events; stages hand it plain values. Only the main process writes;
the others keep what they are given in memory and write nothing.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from ..run import records as R
from .layout import RunDir, iter_jsonl


def has_tensorboard() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class Recorder:
    def __init__(self, rundir: RunDir, tensorboard: str = "auto") -> None:
        self.rundir = rundir
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

    def offsets(self) -> dict[str, int]:
        return self.rundir.offsets()

    def restore(self, offsets: dict[str, int]) -> None:
        """Cut the append-only files back to a checkpoint's sizes and re-read what they hold."""
        self.rundir.truncate(offsets)
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
            who = record.get(R.LEARNER, record.get(R.STAGE_OF_EVAL))
            prefix = f"{record[R.KIND]}/{who}"
            scalars = {f"{prefix}/{k}": v for k, v in record.items() if isinstance(v, float) and k != R.TIME}
            self._tracker.log(scalars, step=record.get(R.STEP, record.get(R.EPOCH_INDEX)))

    def last_epoch(self, learner: str) -> dict[str, Any]:
        """The learner's latest epoch line (empty before its first epoch)."""
        return self._last_epoch.get(learner, {})

    # -- genotypes
    def genotype(self, learner: str, genotype: Any) -> None:
        self.rundir.write_json(self.rundir.genotype(learner), genotype.to_json())

    def genotype_history(self, learner: str, epoch: int, genotype: Any, alpha: dict[str, Any], entropy: dict[str, float]) -> None:
        self.rundir.append_jsonl(self.rundir.genotype_history(learner), {
            "epoch": epoch, "genotype": genotype.to_json(), "alpha": alpha,
            "primitives": list(genotype.primitives), "entropy": entropy,
        })

    def cell_diagrams(self, learner: str, genotype: Any, space_config: type) -> None:
        if self.rundir.writer:
            space_config.draw(genotype, self.rundir.figures, f"cell_{learner}")

    # -- the end
    def summary(self, summary: dict[str, Any]) -> None:
        self.rundir.write_json(self.rundir.summary, summary)
