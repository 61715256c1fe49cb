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

from ..core import MAX_BATCH, MAX_CHANNELS, MAX_EPOCHS, MAX_LAYERS, ComponentConfig, register
from ..optim import CosineConfig, LinearConfig, OptimizerConfig, SchedulerConfig, SGDConfig, StepConfig

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..architecture import Architecture
    from ..task import Task


#: The protocol of an evaluate stage that names none.
DEFAULT_PROTOCOL = "darts"


class EvaluationProtocol(ComponentConfig):
    """The common interface; subclasses are the registered protocols with their own defaults.

    ``optimizer`` and ``schedule`` are typed here by their base configs; a spec's evaluate stage
    widens them to every registered optimizer and scheduler.
    """

    epochs: PositiveInt = Field(600, le=MAX_EPOCHS, description="Training epochs (at most 100,000).")
    batch_size: PositiveInt = Field(96, le=MAX_BATCH, description="Batch size per process (at most 65,536).")
    grad_clip: PositiveFloat | None = Field(5.0, description="Clip the gradient norm to this (null: no clipping).")
    optimizer: OptimizerConfig = Field(
        default_factory=lambda: SGDConfig(lr=0.025, momentum=0.9, weight_decay=3e-4), description="Optimizer of the evaluated network."
    )
    schedule: SchedulerConfig = Field(default_factory=lambda: CosineConfig(min_lr=0.0), description="Per-epoch schedule.")

    def data_options(self) -> dict[str, Any]:
        """Keyword arguments for the dataset's ``build`` (e.g. cutout)."""
        return {}

    def network_info(self, architecture: Architecture, task: Task) -> dict[str, Any]:
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


class GenotypeProtocol(EvaluationProtocol):
    """A genotype network of stacked cells (DARTS' NetworkCIFAR / NetworkImageNet) with an auxiliary
    head, drop path ramped linearly over the epochs, cutout and label smoothing. The registered
    protocols below are this training with each method's published defaults (docs/recipes.md)."""

    channels: PositiveInt = Field(36, le=MAX_CHANNELS, description="Initial channels (CIFAR: 36, ImageNet: 48; at most 4096).")
    layers: PositiveInt = Field(20, le=MAX_LAYERS, description="Cells (CIFAR: 20, ImageNet: 14; at most 100).")
    auxiliary_weight: NonNegativeFloat = Field(0.4, description="Weight of the auxiliary head's loss (0 disables the head).")
    drop_path: float = Field(0.2, ge=0, lt=1, description="Final drop-path probability (ramped linearly over epochs).")
    cutout: NonNegativeInt = Field(16, le=4096, description="Cutout length for training images (0 disables; at most 4096).")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the training loss.")
    variant: Literal["auto", "cifar", "imagenet"] = Field(
        "cifar", description="Network stem: CIFAR (3x3, stride 1) or ImageNet (two stride-2 stems); auto picks by image size."
    )

    def data_options(self) -> dict[str, Any]:
        return {"cutout": self.cutout}

    def network_info(self, architecture: Architecture, task: Task) -> dict[str, Any]:
        return architecture.network_info(task, channels=self.channels, layers=self.layers,
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


def _sgd(lr: float, weight_decay: float):
    return Field(default_factory=lambda: SGDConfig(lr=lr, momentum=0.9, weight_decay=weight_decay),
                 description="Optimizer of the evaluated network.")


@register("protocol", "darts")
class DartsProtocol(GenotypeProtocol):
    """DARTS' CIFAR protocol (quark0/darts cnn/train.py with --auxiliary --cutout): 600 epochs, batch
    96, 20 cells of 36 channels, SGD 0.025 cosine to 0, drop path 0.2, cutout 16, auxiliary 0.4."""

    protocol: Literal["darts"] = "darts"


@register("protocol", "pc_darts")
class PCDartsProtocol(GenotypeProtocol):
    """PC-DARTS' CIFAR protocol (train.py): DARTS' with drop path 0.3."""

    protocol: Literal["pc_darts"] = "pc_darts"
    drop_path: float = Field(0.3, ge=0, lt=1, description="Final drop-path probability (ramped linearly over epochs).")


@register("protocol", "p_darts")
class PDartsProtocol(GenotypeProtocol):
    """P-DARTS' CIFAR protocol (train_cifar.py, with --auxiliary --cutout as the SGL authors run it):
    DARTS' with batch 128 and drop path 0.3."""

    protocol: Literal["p_darts"] = "p_darts"
    batch_size: PositiveInt = Field(128, le=MAX_BATCH, description="Batch size per process (at most 65,536).")
    drop_path: float = Field(0.3, ge=0, lt=1, description="Final drop-path probability (ramped linearly over epochs).")


class ImageNetProtocol(GenotypeProtocol):
    """The mobile setting: 250 epochs, 14 cells of 48 channels, label smoothing 0.1, no cutout or drop path."""

    epochs: PositiveInt = Field(250, le=MAX_EPOCHS, description="Training epochs (at most 100,000).")
    channels: PositiveInt = Field(48, le=MAX_CHANNELS, description="Initial channels (at most 4096).")
    layers: PositiveInt = Field(14, le=MAX_LAYERS, description="Cells (at most 100).")
    drop_path: float = Field(0.0, ge=0, lt=1, description="Final drop-path probability (ramped linearly over epochs).")
    cutout: NonNegativeInt = Field(0, le=4096, description="Cutout length for training images (0 disables; at most 4096).")
    label_smoothing: float = Field(0.1, ge=0, lt=1, description="Label smoothing of the training loss.")
    variant: Literal["auto", "cifar", "imagenet"] = Field("imagenet", description="Network stem.")
    optimizer: OptimizerConfig = _sgd(0.1, 3e-5)


@register("protocol", "darts_imagenet")
class DartsImageNetProtocol(ImageNetProtocol):
    """DARTS' ImageNet protocol (cnn/train_imagenet.py): batch 128, SGD 0.1 decayed by 0.97 every epoch."""

    protocol: Literal["darts_imagenet"] = "darts_imagenet"
    batch_size: PositiveInt = Field(128, le=MAX_BATCH, description="Batch size per process (at most 65,536).")
    schedule: SchedulerConfig = Field(default_factory=lambda: StepConfig(step_size=1, gamma=0.97), description="Per-epoch schedule.")


@register("protocol", "pc_darts_imagenet")
class PCDartsImageNetProtocol(ImageNetProtocol):
    """PC-DARTS' ImageNet protocol (train_imagenet.py): batch 256, SGD 0.1 decayed linearly with a
    gentler 5-epoch tail (the large-batch setting — batch 1024, lr 0.5, 5 warm-up epochs — is a recipe's)."""

    protocol: Literal["pc_darts_imagenet"] = "pc_darts_imagenet"
    batch_size: PositiveInt = Field(256, le=MAX_BATCH, description="Batch size per process (at most 65,536).")
    schedule: SchedulerConfig = Field(default_factory=lambda: LinearConfig(min_lr=0.0, tail_epochs=5), description="Per-epoch schedule.")


def build_network(info: dict[str, Any]) -> nn.Module:
    """The (freshly initialised) network a protocol's ``network_info`` describes."""
    from .genotype_training import build_genotype_network_from_info

    if info.get("type") != "genotype_network":
        raise ValueError(f"unknown evaluated network type {info.get('type')!r}")
    return build_genotype_network_from_info(info)
