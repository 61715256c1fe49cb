"""Evaluation protocols: how a found genotype is trained from scratch and tested (configs here).

A protocol is the evaluate stage's recipe. The engine runs its training with the same loop,
checkpoints and records as a search; the protocol supplies what is particular to it: the network
(``network_info`` / ``build_network``), the loss, what changes per epoch (drop path), the data
options (cutout) and how the network's size is counted. Every value is a field, so a spec overrides
any of them in the stage itself; a spec picks the protocol with ``protocol:`` (default ``darts``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from ..core import ComponentConfig, register
from ..optim import CosineConfig, OptimizerConfig, SchedulerConfig, SGDConfig

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..spaces.genotype import Genotype
    from ..task import Task


#: The protocol of an evaluate stage that names none.
DEFAULT_PROTOCOL = "darts"


class EvaluationProtocol(ComponentConfig):
    """The common interface; subclasses are the registered protocols with their own defaults.

    ``optimizer`` and ``schedule`` are typed here by their base configs; a spec's evaluate stage
    widens them to every registered optimizer and scheduler.
    """

    epochs: PositiveInt = Field(600, description="Training epochs.")
    batch_size: PositiveInt = Field(96, description="Batch size per process.")
    grad_clip: PositiveFloat | None = Field(5.0, description="Clip the gradient norm to this (null: no clipping).")
    optimizer: OptimizerConfig = Field(default_factory=SGDConfig, description="Optimizer of the evaluated network.")
    schedule: SchedulerConfig = Field(default_factory=lambda: CosineConfig(min_lr=0.0), description="Per-epoch schedule.")

    def data_options(self) -> dict[str, Any]:
        """Keyword arguments for the dataset's ``build`` (e.g. cutout)."""
        return {}

    def network_info(self, genotype: Genotype, task: Task) -> dict[str, Any]:
        """Plain data that rebuilds the network (saved with the trained weights)."""
        raise NotImplementedError

    def begin_epoch(self, net: nn.Module, epoch: int) -> dict[str, float]:
        """Adjust the network for ``epoch``; returns values to record in that epoch's line."""
        return {}

    def loss(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(training loss, logits)`` of one batch."""
        raise NotImplementedError

    def cost(self, net: nn.Module, task: Task) -> dict[str, float]:
        """Size of the network as papers report it: ``{"params_M", "madds_M"}``."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Values an evaluation result repeats next to its numbers."""
        return {"epochs": self.epochs}


@register("protocol", "darts")
class DartsProtocol(EvaluationProtocol):
    """DARTS' protocol (Liu et al., 2019): a genotype network of stacked cells with an auxiliary
    head, drop path ramped linearly over the epochs, cutout, SGD with cosine annealing. The
    defaults are DARTS' CIFAR-10 setting; ImageNet: 14 cells, 48 channels, 250 epochs, label
    smoothing 0.1."""

    protocol: Literal["darts"] = "darts"
    channels: PositiveInt = Field(36, description="Initial channels (CIFAR: 36, ImageNet: 48).")
    layers: PositiveInt = Field(20, description="Cells (CIFAR: 20, ImageNet: 14).")
    auxiliary_weight: NonNegativeFloat = Field(0.4, description="Weight of the auxiliary head's loss (0 disables the head).")
    drop_path: float = Field(0.3, ge=0, lt=1, description="Final drop-path probability (ramped linearly over epochs).")
    cutout: NonNegativeInt = Field(16, description="Cutout length for training images (0 disables).")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing (DARTS ImageNet: 0.1).")
    variant: Literal["auto", "cifar", "imagenet"] = Field("auto", description="Network stem; auto picks by image size.")

    def data_options(self) -> dict[str, Any]:
        return {"cutout": self.cutout}

    def network_info(self, genotype: Genotype, task: Task) -> dict[str, Any]:
        from .genotype_training import genotype_network_info

        return genotype_network_info(genotype, task, channels=self.channels, layers=self.layers,
                                     auxiliary=self.auxiliary_weight > 0, drop_path=self.drop_path, variant=self.variant)

    def begin_epoch(self, net: nn.Module, epoch: int) -> dict[str, float]:
        net.drop_path_prob = self.drop_path * epoch / self.epochs  # DARTS: a linear ramp from 0
        return {"drop_path_prob": net.drop_path_prob}

    def loss(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from .genotype_training import loss_with_auxiliary

        return loss_with_auxiliary(net, x, y, self.auxiliary_weight, self.label_smoothing)

    def cost(self, net: nn.Module, task: Task) -> dict[str, float]:
        from .genotype_training import network_cost

        return network_cost(net, task)

    def describe(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "channels": self.channels, "layers": self.layers}


def build_network(info: dict[str, Any]) -> nn.Module:
    """The (freshly initialised) network a protocol's ``network_info`` describes."""
    from .genotype_training import build_genotype_network_from_info

    if info.get("type") != "genotype_network":
        raise ValueError(f"unknown evaluated network type {info.get('type')!r}")
    return build_genotype_network_from_info(info)
