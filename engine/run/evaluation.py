"""An evaluation stage: train a genotype from scratch with its protocol and test it every epoch.

It is the training loop's work for an ``EvaluateStagePlan``, as a search stage is for a search:
the same loop, checkpoints and records. The protocol (a registry component) supplies the network,
its loss, what changes per epoch and how its size is counted; this module supplies the rest —
data, optimizer and schedule, the step, the test after each epoch, the result and the saved model.
The network trains on the whole training set (DARTS' D_train and D_val together) and is tested on
the test set; the final and the best test error are both reported and labelled as such.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import replace
from typing import Any

import torch

from sgl.registry.evaluation import build_network
from sgl.registry.spaces.genotype import Genotype, resolve_genotype

from . import records as R
from .accuracy import accuracy, running_statistics
from .data import BatchStream, stream_seed
from ..errors import NonFiniteLoss
from ..plan.types import EvaluateStagePlan
from .runtime import Runtime
from .steps import update

#: Format tag of a saved model package (``models/<stage>.pt`` and ``sgl export --format pt``).
MODEL_FORMAT = "sgl.model"
MODEL_FORMAT_VERSION = 1


def stage_genotype(stage: EvaluateStagePlan, runtime: Runtime, rundir: Any) -> tuple[Genotype, str]:
    """``(genotype, label)``: the learner's derived genotype (labelled as the summary names its
    file), or the named / file genotype of the stage."""
    if stage.learner is not None:
        return runtime.learners[stage.learner].genotype(), rundir.genotype_relative(stage.learner)
    return resolve_genotype(stage.genotype, runtime.base_dir), str(stage.genotype)


def model_package(net: torch.nn.Module, info: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A saved model: its weights and the plain-data description that rebuilds it."""
    return {"format": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION, "network": info,
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}, **extra}


class EvaluationStage:
    def __init__(self, runtime: Runtime, stage: EvaluateStagePlan, recorder: Any, progress: Any) -> None:
        self.runtime = runtime
        self.stage = stage
        self.protocol = stage.protocol
        self.recorder = recorder
        self.progress = progress
        self.name = stage.name
        self.epochs = self.protocol.epochs
        plan, collectives = runtime.plan, runtime.collectives
        self.genotype, self.label = stage_genotype(stage, runtime, recorder.rundir)
        with runtime.accelerator.main_process_first():  # a download happens once, not per process
            self.bundle = plan.data.dataset.build(runtime.base_dir, seed=plan.seed, **self.protocol.data_options())
        self.info = self.protocol.network_info(self.genotype, self.bundle.task)
        torch.manual_seed(stream_seed(stage.seed, f"evaluate/{stage.name}"))  # the same weights on every process
        self.net = build_network(self.info).to(collectives.device).train()
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        optimizer = self.protocol.optimizer.build(self.params)
        self.scheduler = self.protocol.schedule.build(optimizer, self.epochs)
        self.optimizer = runtime.accelerator.prepare_optimizer(optimizer, device_placement=False)
        self.stream = BatchStream(
            self.bundle.train, torch.arange(len(self.bundle.train)), self.protocol.batch_size,
            stream_seed(stage.seed, f"evaluate/{stage.name}/train"), rank=collectives.rank, world=collectives.world,
            num_workers=runtime.workers(), device=collectives.device, resident=runtime.resident(self.bundle.train),
        )
        self.iterations = self.stream.batches_per_cycle
        self.step_ctx = replace(runtime.step_ctx, grad_clip=self.protocol.grad_clip)
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
        self._epoch_values = dict(self.protocol.begin_epoch(self.net, epoch))
        self._epoch_values[R.EVAL_LR] = self.optimizer.param_groups[0]["lr"]

    def iteration(self, epoch: int) -> None:
        x, y = self.stream.next()
        with self.runtime.accelerator.autocast():
            loss, logits = self.protocol.loss(self.net, x, y)
        update(self.optimizer, self.params, loss, self.step_ctx)
        self._sums[0] += loss.detach().float() * y.shape[0]
        self._sums[1] += (logits.detach().argmax(dim=1) == y).sum()
        self._sums[2] += y.shape[0]

    def flush(self, epoch: int, iteration: int) -> None:
        """Evaluation records whole epochs only: nothing to do at logging intervals."""

    def end_epoch(self, epoch: int) -> None:
        self.scheduler.step()
        totals = self.runtime.collectives.sum(self._sums)
        self._sums = self._zero_sums()
        train_loss = float(totals[0] / totals[2])
        if not math.isfinite(train_loss):
            raise NonFiniteLoss(f"evaluation stage {self.name!r}: non-finite training loss in epoch {epoch + 1}")
        train_acc = float(totals[1] / totals[2])
        self.runtime.collectives.mean_buffers_(self.net)
        with running_statistics(self.net):
            test_acc = accuracy(self.net, self.bundle.test, None, self.runtime.plan.data.eval_batch_size,
                                self.runtime.collectives, self.runtime.accelerator.autocast)
        self.best_acc = max(self.best_acc, test_acc)
        record = {R.KIND: R.EVAL_EPOCH, R.STAGE_OF_EVAL: self.name, R.EPOCH_INDEX: epoch,
                  R.EVAL_TRAIN_LOSS: train_loss, R.EVAL_TRAIN_ACC: train_acc, R.EVAL_TEST_ACC: test_acc,
                  R.EVAL_LR: self._epoch_values.pop(R.EVAL_LR), **self._epoch_values, R.TIME: self.seconds()}
        self.records.append(record)
        self.recorder.log(record)
        self.progress.report({self.name: {"loss": train_loss, "train acc": train_acc, "test acc": test_acc}})

    def seconds(self) -> float:
        return self.elapsed + time.perf_counter() - self._resumed_at

    def state_dict(self) -> dict[str, Any]:
        return {"model": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "stream": self.stream.state_dict(), "sums": self._sums.cpu(), "best_acc": self.best_acc,
                "records": self.records, "elapsed": self.seconds(), "network": self.info}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.stream.load_state_dict(state["stream"])
        self._sums = state["sums"].to(self.runtime.collectives.device)
        self.best_acc, self.records = float(state["best_acc"]), list(state["records"])
        self.elapsed, self._resumed_at = float(state["elapsed"]), time.perf_counter()
        self.progress.message(f"[{self.name}] resuming at epoch {len(self.records) + 1}/{self.epochs}")

    # -- the end
    def finish(self) -> dict[str, Any]:
        """The stage's result for summary.json; the trained network goes to ``models/<stage>.pt``."""
        rundir, collectives = self.recorder.rundir, self.runtime.collectives
        test_acc = self.records[-1][R.EVAL_TEST_ACC] if self.records else float("nan")
        wall = self.seconds()
        hours = wall / 3600
        result = {
            "stage": self.name, "learner": self.stage.learner, "genotype": self.label,
            "genotype_json": self.genotype.to_json(), "dataset": self.runtime.plan.data.dataset.name,
            **self.protocol.describe(),
            "test_error_final": 100.0 * (1.0 - test_acc), "test_error_best": 100.0 * (1.0 - self.best_acc),
            "test_acc_final": test_acc, "test_acc_best": self.best_acc,
            **self.protocol.cost(self.net, self.bundle.task),
            "device": "cuda" if collectives.device.type == "cuda" else "cpu", "num_processes": collectives.world,
            "hours": hours, "device_hours": hours * collectives.world, "wall_seconds": wall,
            "model": rundir.model_relative(self.name),
        }
        buffer = io.BytesIO()
        torch.save(model_package(self.net, self.info, stage=self.name, learner=self.stage.learner), buffer)
        rundir.write_bytes(rundir.model(self.name), buffer.getvalue())
        return result
