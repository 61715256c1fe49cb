"""Optimizers and learning-rate schedules a spec can name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Iterable, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat

from .core import ComponentConfig, register

if TYPE_CHECKING:
    import torch


class OptimizerConfig(ComponentConfig):
    lr: PositiveFloat = Field(description="Learning rate (initial, before the schedule).")

    def build(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        raise NotImplementedError


@register("optimizer", "sgd")
class SGDConfig(OptimizerConfig):
    """SGD with momentum: DARTS' optimizer for network weights."""

    name: Literal["sgd"] = "sgd"
    lr: PositiveFloat = Field(0.025, description="Learning rate (initial, before the schedule).")
    momentum: float = Field(0.9, ge=0, lt=1, description="Momentum μ, in [0, 1).")
    weight_decay: NonNegativeFloat = Field(3e-4, description="L2 weight decay.")
    nesterov: bool = Field(False, description="Nesterov momentum.")

    def build(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        import torch

        return torch.optim.SGD(
            params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay, nesterov=self.nesterov
        )


#: Adam's coefficient: 1 or more makes the running averages diverge (torch refuses it at build time).
_Beta = Annotated[float, Field(ge=0, lt=1)]


@register("optimizer", "adam")
class AdamConfig(OptimizerConfig):
    """Adam: DARTS' optimizer for architecture weights."""

    name: Literal["adam"] = "adam"
    lr: PositiveFloat = Field(3e-4, description="Learning rate.")
    betas: tuple[_Beta, _Beta] = Field(
        (0.5, 0.999), description="Coefficients of the running averages of the gradient and its square, each in [0, 1)."
    )
    weight_decay: NonNegativeFloat = Field(1e-3, description="L2 weight decay.")

    def build(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        import torch

        return torch.optim.Adam(params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay)


class SchedulerConfig(ComponentConfig):
    def build(self, optimizer: torch.optim.Optimizer, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
        """A per-epoch schedule over ``epochs`` epochs (the planner derives each network's horizon)."""
        raise NotImplementedError


@register("scheduler", "cosine")
class CosineConfig(SchedulerConfig):
    """Cosine annealing from the optimizer's lr to min_lr over the network's training epochs."""

    name: Literal["cosine"] = "cosine"
    min_lr: NonNegativeFloat = Field(0.001, description="Learning rate at the end (at most the optimizer's lr).")

    def build(self, optimizer: torch.optim.Optimizer, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
        import torch

        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs), eta_min=self.min_lr)


@register("scheduler", "constant")
class ConstantConfig(SchedulerConfig):
    """The optimizer's learning rate throughout."""

    name: Literal["constant"] = "constant"

    def build(self, optimizer: torch.optim.Optimizer, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
        import torch

        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
