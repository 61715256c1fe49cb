"""A learner at run time: its architecture (if searchable), its W and V networks and their optimizers.

Built from the plan's ``LearnerPlan`` alone; everything it holds is saved and restored through
``state_dict`` so a run resumes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sgl.registry import Architecture, Task
from sgl.registry.hypergrad.base import LearnerView

from .data import stream_seed
from ..plan.types import LearnerPlan


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
    def __init__(self, plan: LearnerPlan, task: Task, accelerator: Any) -> None:
        self.plan = plan
        self.name = plan.name
        self._accelerator = accelerator
        self._task = task
        torch.manual_seed(plan.seed)  # the learner's own initialisation, whatever else the run holds
        self.space: nn.Module | None = plan.config.build(task) if plan.searchable else None
        self.nets: dict[str, Network] = {}
        self.arch_optimizer: torch.optim.Optimizer | None = None
        self.build_networks(0)

    @property
    def device(self) -> torch.device:
        return self._accelerator.device

    @property
    def growing_phase(self) -> int:
        return self.space.phase if self.space is not None else 0

    def build_networks(self, growing_phase: int) -> None:
        """(Re)create W and V (and the architecture optimizer): at the start, and when a growing space
        enters a phase (its networks change shape); schedules span that phase's horizon."""
        self._release_networks()
        if self.space is not None:
            self.space.to(self.device)
            self.arch_optimizer = self.plan.arch_optimizer.build(self.space.arch_parameters())
        for net_name, net_plan in self.plan.networks.items():
            if self.space is not None:
                module = self.space.new_network(fused=self.plan.fused).to(self.device)
            else:
                module = self.plan.config.build(self._task).to(self.device)
            module.train()
            params = [p for p in module.parameters() if p.requires_grad]
            optimizer = net_plan.optimizer.build(params)
            scheduler = net_plan.schedule.build(optimizer, net_plan.horizons[growing_phase])
            # Accelerate owns precision: its optimizer wrapper applies the fp16 loss scaler when used.
            optimizer = self._accelerator.prepare_optimizer(optimizer, device_placement=False)
            self.nets[net_name] = Network(module, optimizer, scheduler, params)

    def _release_networks(self) -> None:
        """Forget the networks a new phase replaces. Accelerate keeps every optimizer it prepared (to
        unscale them all under fp16): a replaced one would hold its network's memory, and its stale
        gradients could drive the loss scale down."""
        prepared = getattr(self._accelerator, "_optimizers", None)
        for net in self.nets.values():
            if prepared is not None and net.optimizer in prepared:
                prepared.remove(net.optimizer)
        self.nets = {}

    def enter_growing_phase(self, phase: int) -> bool:
        """Move a growing space to ``phase`` and build its new networks; False when already there.

        What the phase draws (fresh α, new weights) comes from the learner's seed and the phase,
        not from the run's RNG: every process builds the same networks whatever randomness it has
        consumed, and the run's own stream of randomness is left where it was.
        """
        if self.space is None or self.space.phase == phase:
            return False
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(self.plan.seed, f"growing_phase/{phase}"))
            self.space.enter_phase(phase)
            self.build_networks(phase)
        return True

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
        """What a hypergradient method sees: W, and the network A's gradient flows through as V."""
        w, v = self.nets["W"], self.nets[self.plan.final_net]
        return LearnerView(self.name, self.space, w.module, w.optimizer, v.module, v.optimizer)

    def architecture(self) -> Architecture | None:
        """The discrete architecture its weights give now (None for a fixed learner)."""
        return self.space.architecture() if self.space is not None else None

    def configure_epoch(self, positions: dict[str, tuple[int, int, int]]) -> None:
        """Let the space adjust each network for where it stands: ``net -> (epoch, epochs, arch_start)``
        of the schedule it follows (e.g. P-DARTS' skip dropout)."""
        if self.space is not None:
            for name, net in self.nets.items():
                self.space.configure_epoch(net.module, *positions[name])

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

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.space is not None:
            before = self.space.phase
            self.space.load_state_dict(state["space"])  # a growing space adopts the saved phase
            if self.space.phase != before:
                self.build_networks(self.space.phase)
            self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        for name, net_state in state["nets"].items():
            net = self.nets[name]
            net.module.load_state_dict(net_state["module"])
            net.optimizer.load_state_dict(net_state["optimizer"])
            net.scheduler.load_state_dict(net_state["scheduler"])
