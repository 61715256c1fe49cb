"""What an architecture-gradient method sees: the learners' networks, batches and loss weights.

The executor builds one ``ArchContext`` per A-step. Methods read it and return gradients; they
never step optimizers, and leave parameters, buffers and optimizer state exactly as they found
them — except V's BatchNorm running statistics when the config asks for ``running_stats: update``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..pseudo_labels import PseudoLabelerConfig


@dataclass
class LearnerView:
    """One learner: its architecture (None when fixed) and its two networks with their optimizers."""

    name: str
    space: nn.Module | None  # a SearchSpace: forward() -> arch weights; arch_parameters()
    w_net: nn.Module
    w_opt: torch.optim.Optimizer
    v_net: nn.Module
    v_opt: torch.optim.Optimizer

    def logits(self, net: nn.Module, x: torch.Tensor, arch: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Forward pass; searchable networks take the architecture weights (computed afresh if not given)."""
        if self.space is None:
            return net(x)
        return net(x, self.space() if arch is None else arch)


@dataclass
class ArchContext:
    learners: dict[str, LearnerView]
    targets: list[str]                      # searchable learners that receive a gradient
    peers: dict[str, list[str]]             # k -> the learners j whose pseudo-labels V_k learns from
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_unlabeled: torch.Tensor | None
    x_val: torch.Tensor
    y_val: torch.Tensor
    w_labeled: float
    w_pseudo: float
    pseudo_labeler: PseudoLabelerConfig
    autocast: Callable[[], AbstractContextManager] = field(default=nullcontext)
    # Multiplied into every loss a method differentiates and divided out of its gradients, so that
    # under fp16 the backward passes run at the GradScaler's scale (small gradients would underflow).
    # An overflow shows as inf / NaN in the returned gradients.
    loss_scale: float = 1.0
