"""Fixed learners: networks with no architecture to search (configs here; torch code beside).

A built model is an ``nn.Module`` whose ``forward(x)`` returns logits.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, NonNegativeFloat, PositiveInt, field_validator

from ..core import MAX_CHANNELS, MAX_LAYERS, LearnerConfig, PathText, register

if TYPE_CHECKING:
    from torch import nn

    from ..task import Task


def _non_finite(value: Any, where: str) -> str | None:
    """The dotted place of the first NaN or ±inf inside nested dicts and lists, if any."""
    if isinstance(value, float) and not math.isfinite(value):
        return where
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, f"{where}.{key}")
        if found:
            return found
    return None


class ModelConfig(LearnerConfig):
    """Base of fixed learners: ``build(task)`` makes the network."""

    def build(self, task: Task) -> nn.Module:
        raise NotImplementedError


@register("model", "torchvision")
class TorchvisionConfig(ModelConfig):
    """Any torchvision classification model, built by name with the dataset's number of classes."""

    kind: Literal["torchvision"] = "torchvision"
    model: str = Field("resnet18", description="A name from torchvision.models.list_models(torchvision.models).")
    pretrained: bool = Field(False, description="Load torchvision's default weights (downloads them once).")
    small_input: bool | None = Field(
        None,
        description="Replace the stem with a stride-1 3x3 conv and drop the stem max-pool; "
        "default: when images are smaller than 64 pixels.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword arguments of the constructor (numbers must be finite)."
    )

    @field_validator("options")
    @classmethod
    def _finite(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Any-typed, so the finite-float rule of the config cannot see inside: a NaN dropout would pass.
        bad = _non_finite(value, "options")
        if bad:
            raise ValueError(f"{bad} is not a finite number")
        return value

    def build(self, task: Task) -> nn.Module:
        from .torchvision_model import build_torchvision

        return build_torchvision(self, task)


@register("model", "genotype")
class GenotypeNetConfig(ModelConfig):
    """A network stacked from the cells of a genotype (DARTS' NetworkCIFAR / NetworkImageNet)."""

    kind: Literal["genotype"] = "genotype"
    genotype: PathText = Field(
        "DARTS_V2",
        description="A named genotype (DARTS_V1, DARTS_V2, PC_DARTS, PC_DARTS_IMAGENET, PDARTS) or a genotype JSON file.",
    )
    channels: PositiveInt = Field(36, le=MAX_CHANNELS, description="Initial channels (at most 4096).")
    layers: PositiveInt = Field(20, le=MAX_LAYERS, description="Cells; reductions at layers//3 and 2·layers//3 (at most 100).")
    auxiliary: bool = Field(False, description="Add the auxiliary head after the second reduction.")
    drop_path: NonNegativeFloat = Field(0.0, lt=1, description="Drop-path probability (scaled up over training).")
    variant: Literal["auto", "cifar", "imagenet"] = Field(
        "auto", description="Stem: CIFAR (3x3, stride 1) or ImageNet (two stride-2 stems); auto picks by image size."
    )

    def build(self, task: Task) -> nn.Module:
        from .genotype_net import build_genotype_network

        return build_genotype_network(self, task)
