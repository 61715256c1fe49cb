"""An evaluate stage as the training loop's work: the training (``evaluation.py``) plus a test after
every epoch, the epoch lines, and the stage's result with its trained network.

The final and the best test error are both reported and labelled as such.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from .. import records as R
from ..errors import NonFiniteLoss
from ..plan.types import EvaluateStagePlan
from ..summary import EvaluationResult
from .accuracy import accuracy, running_statistics
from .evaluation import EvaluationTraining, model_package
from .runtime import Runtime
from .sink import RunSink


class EvaluationStage:
    def __init__(self, runtime: Runtime, stage: EvaluateStagePlan, sink: RunSink, progress: Any) -> None:
        self.runtime = runtime
        self.stage = stage
        self.sink = sink
        self.progress = progress
        self.name = stage.name
        self.epochs = stage.epochs
        self.training = EvaluationTraining(runtime, stage)
        self.iterations = self.training.iterations
        self.records: list[dict[str, Any]] = []
        self.best_acc = -1.0
        self.elapsed = 0.0      # seconds trained in earlier processes (a resumed stage)
        self._resumed_at = time.perf_counter()
        self._epoch_values: dict[str, float] = {}
        self._sums = self._zero_sums()

    def _zero_sums(self) -> torch.Tensor:
        return torch.zeros(3, device=self.runtime.collectives.device)  # loss·examples, correct, examples

    # -- the loop's interface
    def begin(self) -> None:
        pass

    def display(self, epoch: int) -> tuple[int, int]:
        return epoch, self.epochs

    def begin_epoch(self, epoch: int) -> None:
        self._epoch_values = self.training.begin_epoch(epoch)
        self._epoch_values[R.EVAL_LR] = self.training.lr

    def iteration(self, epoch: int) -> None:
        loss, logits, y = self.training.step()
        self._sums[0] += loss.float() * y.shape[0]
        self._sums[1] += (logits.argmax(dim=1) == y).sum()
        self._sums[2] += y.shape[0]

    def flush(self, epoch: int, iteration: int) -> None:
        """Evaluation records whole epochs only: nothing to do at logging intervals."""

    def end_epoch(self, epoch: int) -> None:
        training, collectives = self.training, self.runtime.collectives
        training.scheduler.step()
        totals = collectives.sum(self._sums)
        self._sums = self._zero_sums()
        train_loss = float(totals[0] / totals[2])
        if not math.isfinite(train_loss):
            raise NonFiniteLoss(f"evaluation stage {self.name!r}: non-finite training loss in epoch {epoch + 1}")
        train_acc = float(totals[1] / totals[2])
        collectives.mean_buffers_(training.net)
        with running_statistics(training.net):
            test_acc = accuracy(training.net, training.bundle.test, None, self.runtime.plan.data.eval_batch_size,
                                collectives, self.runtime.accelerator.autocast, **self.runtime.eval_source(training.bundle.test))
        self.best_acc = max(self.best_acc, test_acc)
        record = {R.KIND: R.EVAL_EPOCH, R.EVAL_STAGE: self.name, R.EPOCH_INDEX: epoch,
                  R.EVAL_TRAIN_LOSS: train_loss, R.EVAL_TRAIN_ACC: train_acc, R.EVAL_TEST_ACC: test_acc,
                  R.EVAL_LR: self._epoch_values.pop(R.EVAL_LR), **self._epoch_values, R.TIME: self.seconds()}
        self.records.append(record)
        self.sink.log(record)
        self.progress.report({self.name: {"loss": train_loss, "train acc": train_acc, "test acc": test_acc}})

    def seconds(self) -> float:
        return self.elapsed + time.perf_counter() - self._resumed_at

    def state_dict(self) -> dict[str, Any]:
        return {**self.training.state_dict(), "sums": self._sums.cpu(), "best_acc": self.best_acc,
                "records": self.records, "elapsed": self.seconds()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.training.load_state_dict(state)
        self._sums = state["sums"].to(self.runtime.collectives.device)
        self.best_acc, self.records = float(state["best_acc"]), list(state["records"])
        self.elapsed, self._resumed_at = float(state["elapsed"]), time.perf_counter()
        self.progress.message(f"[{self.name}] resuming at epoch {len(self.records) + 1}/{self.epochs}")

    # -- the end
    def finish(self) -> EvaluationResult:
        """The stage's result for summary.json; the trained network goes to the sink."""
        training, collectives = self.training, self.runtime.collectives
        self.runtime.release(training.bundle.train, training.bundle.test)  # the stage's data leaves the device
        test_acc = self.records[-1][R.EVAL_TEST_ACC] if self.records else float("nan")
        wall = self.seconds()
        hours = wall / 3600
        stage = self.stage
        package = model_package(training.net, training.info, stage=self.name, learner=stage.learner)
        trained = self.sink.architecture_file(stage.learner) if stage.learner is not None else str(stage.given_as)
        return EvaluationResult(
            stage=self.name, learner=stage.learner, genotype=trained,
            genotype_json=training.architecture.to_json(), dataset=self.runtime.plan.data.dataset.name,
            **stage.protocol.describe(),
            test_error_final=100.0 * (1.0 - test_acc), test_error_best=100.0 * (1.0 - self.best_acc),
            test_acc_final=test_acc, test_acc_best=self.best_acc,
            **stage.protocol.cost(training.net, training.bundle.task),
            device="cuda" if collectives.device.type == "cuda" else "cpu", num_processes=collectives.world,
            hours=hours, device_hours=hours * collectives.world, wall_seconds=wall,
            model=self.sink.model(self.name, package),
        )
