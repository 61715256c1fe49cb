"""A learner at run time: its architecture (if searchable), its W and V networks and their optimizers.

Built from the spec's component config and the plan's LearnerPlan; everything it holds is
saved and restored through ``state_dict`` so a run resumes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sgl.registry import Task
from sgl.registry.hypergrad.base import LearnerView

from .plan import LearnerPlan


@dataclass
class Network:
    module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    params: list[nn.Parameter]

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]


class Learner:
    def __init__(self, plan: LearnerPlan, config: Any, spec: Any, task: Task, accelerator: Any) -> None:
        self.plan = plan
        self.name = plan.name
        self.config = config
        self._spec = spec
        self._accelerator = accelerator
        self._task = task
        torch.manual_seed(plan.seed)  # the learner's own initialisation, whatever else the run holds
        self.space: nn.Module | None = config.build(task) if plan.searchable else None
        self.nets: dict[str, Network] = {}
        self.arch_optimizer: torch.optim.Optimizer | None = None
        self.build_networks(dict(plan.schedule_epochs))

    @property
    def device(self) -> torch.device:
        return self._accelerator.device

    def build_networks(self, horizons: dict[str, int]) -> None:
        """(Re)create W and V (and the architecture optimizer), e.g. when a growing space enters a phase."""
        if self.space is not None:
            self.space.to(self.device)
            self.arch_optimizer = self._spec.optim.arch.build(self.space.arch_parameters())
        for net_name in self.plan.networks:
            module = (self.space.new_network() if self.space is not None else self.config.build(self._task)).to(self.device)
            module.train()
            params = [p for p in module.parameters() if p.requires_grad]
            optimizer = self._spec.optim.weights.build(params)
            scheduler = self._spec.optim.schedule.build(optimizer, horizons[net_name])
            # Accelerate owns precision: its optimizer wrapper applies the fp16 loss scaler when used.
            optimizer = self._accelerator.prepare_optimizer(optimizer, device_placement=False)
            self.nets[net_name] = Network(module, optimizer, scheduler, params)

    def arch(self) -> dict[str, torch.Tensor] | None:
        """Architecture weights for the weight steps: no gradient flows to A outside A-steps."""
        if self.space is None:
            return None
        with torch.no_grad():
            return self.space()

    def logits(self, net_name: str, x: torch.Tensor, arch: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        module = self.nets[net_name].module
        return module(x) if self.space is None else module(x, arch if arch is not None else self.arch())

    def view(self) -> LearnerView:
        # The architecture gradient flows through V, or through W when there is no stage 2.
        w, v = self.nets["W"], self.nets[self.plan.arch_net or "W"]
        return LearnerView(self.name, self.space, w.module, w.optimizer, v.module, v.optimizer)

    def genotype(self):
        return self.space.genotype() if self.space is not None else None

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"nets": {}}
        for name, net in self.nets.items():
            state["nets"][name] = {
                "module": net.module.state_dict(),
                "optimizer": net.optimizer.state_dict(),
                "scheduler": net.scheduler.state_dict(),
            }
        if self.space is not None:
            state["space"] = self.space.state_dict()
            state["arch_optimizer"] = self.arch_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any], horizons: dict[str, int]) -> None:
        if self.space is not None:
            before = self.space.phase
            self.space.load_state_dict(state["space"])  # a growing space adopts the saved phase
            if self.space.phase != before:
                self.build_networks(horizons)
            self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        for name, net_state in state["nets"].items():
            net = self.nets[name]
            net.module.load_state_dict(net_state["module"])
            net.optimizer.load_state_dict(net_state["optimizer"])
            net.scheduler.load_state_dict(net_state["scheduler"])
