"""Optimizers and learning-rate schedules a spec can name."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Callable, Iterable, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

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
    warmup_epochs: NonNegativeInt = Field(
        0,
        description="Scale the first N epochs' lr by (epoch + 1) / N (PC-DARTS' ImageNet search, batch > 256).",
    )

    def build(self, optimizer: torch.optim.Optimizer, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
        import torch

        horizon = max(1, epochs)
        if not self.warmup_epochs:
            # torch's own recursion: runs recorded before warm-up existed stay bit-identical.
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=horizon, eta_min=self.min_lr)

        def fraction(e: int) -> float:
            return (1 + math.cos(math.pi * e / horizon)) / 2

        lambdas = [_decay(base, self.min_lr, fraction) for base in _base_lrs(optimizer)]
        return torch.optim.lr_scheduler.LambdaLR(optimizer, [_warmed(f, self.warmup_epochs) for f in lambdas])


@register("scheduler", "linear")
class LinearConfig(SchedulerConfig):
    """Linear decay from the optimizer's lr towards min_lr, with optional warm-up and a gentler tail.

    Epoch e of E (0-based) runs at ``min_lr + (lr − min_lr)·f(e)``, ``f(e) = (E − T − e)/(E − T)``
    before the last T = tail_epochs epochs and ``(E − e)/((E − T)·T)`` within them, so the tail
    starts where the main line left off and ends one small step above min_lr; during the first
    W = warmup_epochs epochs that value is scaled by ``s + (1 − s)·e/(W − 1)`` with s =
    warmup_start (default 1/W, giving (e + 1)/W). With W = T = 5 and min_lr 0 this is PC-DARTS'
    ImageNet schedule (``adjust_lr`` and the warm-up in its train_imagenet.py).
    """

    name: Literal["linear"] = "linear"
    min_lr: NonNegativeFloat = Field(0.0, description="Learning rate the decay heads for.")
    warmup_epochs: NonNegativeInt = Field(0, description="Epochs of linear warm-up at the start (0: none).")
    warmup_start: float | None = Field(
        None,
        gt=0,
        le=1,
        description="First warm-up epoch's lr as a fraction of the decayed lr; null: 1/warmup_epochs (PC-DARTS).",
    )
    tail_epochs: NonNegativeInt = Field(
        0, description="The last N epochs decay with a gentler slope instead of reaching min_lr early (PC-DARTS: 5)."
    )

    def build(self, optimizer: torch.optim.Optimizer, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
        import torch

        if self.tail_epochs >= epochs:
            raise ValueError(f"tail_epochs ({self.tail_epochs}) must be below the schedule's {epochs} epochs")
        main = epochs - self.tail_epochs

        def fraction(e: int) -> float:
            if e < main:
                return (main - e) / main
            if e >= epochs:  # the step after the last epoch
                return 0.0
            return (epochs - e) / (main * self.tail_epochs)

        lambdas = [_decay(base, self.min_lr, fraction) for base in _base_lrs(optimizer)]
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, [_warmed(f, self.warmup_epochs, self.warmup_start) for f in lambdas]
        )


@register("scheduler", "step")
class StepConfig(SchedulerConfig):
    """Multiply the lr by gamma every step_size epochs (DARTS' ImageNet evaluation: StepLR(1, 0.97))."""

    name: Literal["step"] = "step"
    step_size: PositiveInt = Field(1, description="Epochs between two decays.")
    gamma: float = Field(0.97, gt=0, le=1, description="Factor applied at each decay.")

    def build(self, optimizer: torch.optim.Optimizer, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
        import torch

        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=self.step_size, gamma=self.gamma)


@register("scheduler", "constant")
class ConstantConfig(SchedulerConfig):
    """The optimizer's learning rate throughout."""

    name: Literal["constant"] = "constant"

    def build(self, optimizer: torch.optim.Optimizer, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
        import torch

        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def _base_lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    # initial_lr is set once a scheduler has wrapped the optimizer; before that lr is the start value.
    return [float(group.get("initial_lr", group["lr"])) for group in optimizer.param_groups]


def _decay(base: float, low: float, fraction: Callable[[int], float]) -> Callable[[int], float]:
    """LambdaLR's factor of the base lr for ``low + (base − low)·fraction(e)``."""
    if base <= 0:
        return lambda e: 0.0
    return lambda e: (low + (base - low) * fraction(e)) / base


def _warmed(factor: Callable[[int], float], warmup: int, start: float | None = None) -> Callable[[int], float]:
    if not warmup:
        return factor
    first = 1.0 / warmup if start is None else start

    def ramp(e: int) -> float:
        if e >= warmup:
            return 1.0
        return first if warmup == 1 else first + (1.0 - first) * e / (warmup - 1)

    return lambda e: factor(e) * ramp(e)
