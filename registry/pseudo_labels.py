"""Pseudo-labelers: how a learner's logits on unlabeled data become targets for its peers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, PositiveFloat

from .core import ComponentConfig, register

if TYPE_CHECKING:
    import torch


class PseudoLabelerConfig(ComponentConfig):
    temperature: PositiveFloat = Field(1.0, description="Logits are divided by this before the softmax.")
    threshold: float = Field(
        0.0, ge=0, lt=1, description="Examples whose top probability is below this get no pseudo-label (mask 0)."
    )

    def label(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(targets as class probabilities [B, C], mask [B] or None). Differentiable; callers detach."""
        raise NotImplementedError


@register("pseudo_labeler", "soft")
class SoftConfig(PseudoLabelerConfig):
    """softmax(logits / T): the paper's soft labels."""

    name: Literal["soft"] = "soft"

    def label(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        from .losses import soft_labels

        return soft_labels(logits, self.temperature, self.threshold)


@register("pseudo_labeler", "hard")
class HardConfig(PseudoLabelerConfig):
    """One-hot argmax labels."""

    name: Literal["hard"] = "hard"

    def label(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        from .losses import hard_labels

        return hard_labels(logits, self.temperature, self.threshold)
