"""Training an architecture from scratch with its evaluation protocol: the network, its optimizer and
schedule, its batches, one step at a time — nothing recorded (``evaluate.py`` records).

The protocol (a registry component) supplies the network, its loss, what changes per epoch and
how its size is counted; this module supplies the data, the optimizer and schedule and the step.
The network trains on the whole training set (DARTS' D_train and D_val together).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from sgl.registry import Architecture
from sgl.registry.evaluation import build_network

from ..plan.types import EvaluateStagePlan
from .checkpoint import local_statistics, set_local_statistics
from .data import BatchStream, stream_seed
from .runtime import Runtime, load_bundle
from .steps import update

#: Format tag of a saved model package (``models/<stage>.pt`` and ``sgl export --format pt``).
MODEL_FORMAT = "sgl.model"
MODEL_FORMAT_VERSION = 1


def model_package(net: torch.nn.Module, info: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A saved model: its weights and the plain-data description that rebuilds it."""
    return {"format": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION, "network": info,
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}, **extra}


def stage_architecture(stage: EvaluateStagePlan, runtime: Runtime) -> Architecture:
    """What the stage trains: the learner's architecture as derived now, or the plan's."""
    if stage.learner is not None:
        return runtime.learners[stage.learner].architecture()
    assert stage.architecture is not None  # the planner resolved it
    return stage.architecture


class EvaluationTraining:
    """The evaluated network and everything that trains it, in one process."""

    def __init__(self, runtime: Runtime, stage: EvaluateStagePlan) -> None:
        self.runtime = runtime
        self.stage = stage
        self.protocol = stage.protocol
        plan, collectives = runtime.plan, runtime.collectives
        self.architecture = stage_architecture(stage, runtime)
        self.bundle = load_bundle(plan, runtime.accelerator, runtime.base_dir, **self.protocol.data_options())
        self.info = self.protocol.network_info(self.architecture, self.bundle.task)
        torch.manual_seed(stream_seed(stage.seed, f"evaluate/{stage.name}"))  # the same weights on every process
        self.net = build_network(self.info).to(collectives.device).train()
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        optimizer = self.protocol.optimizer.build(self.params)
        self.scheduler = self.protocol.schedule.build(optimizer, self.protocol.epochs)
        self.optimizer = runtime.accelerator.prepare_optimizer(optimizer, device_placement=False)
        self.stream = BatchStream(
            self.bundle.train, torch.arange(len(self.bundle.train)), self.protocol.batch_size,
            stream_seed(stage.seed, f"evaluate/{stage.name}/train"), rank=collectives.rank, world=collectives.world,
            num_workers=runtime.workers(), device=collectives.device, resident=runtime.resident(self.bundle.train),
        )
        self.iterations = self.stream.batches_per_cycle
        self.step_ctx = replace(runtime.step_ctx, grad_clip=self.protocol.grad_clip)

    def begin_epoch(self, epoch: int) -> dict[str, float]:
        """Adjust the network for ``epoch`` (drop path); returns what the protocol reports of it."""
        return dict(self.protocol.begin_epoch(self.net, epoch))

    def step(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch: ``(loss, logits, labels)``, detached."""
        x, y = self.stream.next()
        with self.runtime.accelerator.autocast():
            loss, logits = self.protocol.loss(self.net, x, y)
        update(self.optimizer, self.params, loss, self.step_ctx)
        return loss.detach(), logits.detach(), y

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        collectives = self.runtime.collectives
        statistics = collectives.gather_objects(local_statistics({"net": self.net})) if collectives.world > 1 else []
        return {"model": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "stream": self.stream.state_dict(), "network": self.info, "statistics": statistics}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        collectives = self.runtime.collectives
        set_local_statistics({"net": self.net}, state.get("statistics", []), collectives.rank, collectives.world)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.stream.load_state_dict(state["stream"])
