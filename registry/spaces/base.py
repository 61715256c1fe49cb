"""The interface every search space implements (the executor and hypergradients rely on it)."""

from __future__ import annotations

import torch
from torch import nn

from ..architecture import Architecture


class SearchSpace(nn.Module):
    """Holds one learner's architecture parameters (α, and β where used) and nothing else.

    Networks made by ``new_network`` own only their weights; their ``forward(x, arch)`` takes the
    dict returned by ``self()`` so W and V of one learner share the architecture, and a
    hypergradient can call ``torch.func.functional_call(space, {...}, ())`` to vary it.
    """

    def forward(self) -> dict[str, torch.Tensor]:
        """The architecture weights the networks consume (e.g. softmax(α)); differentiable."""
        raise NotImplementedError

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())

    def new_network(self, fused: bool = False) -> nn.Module:
        """A freshly initialised supernet for the current phase, on the CPU; with ``fused``, computed by
        a faster implementation of the same math where the space has one (the same weights)."""
        raise NotImplementedError

    def architecture(self) -> Architecture:
        """The discrete architecture derived from the current weights."""
        raise NotImplementedError

    def entropy(self) -> dict[str, float]:
        """Mean entropy of the per-edge operation distributions, per cell type (for metrics)."""
        raise NotImplementedError

    def snapshot(self) -> dict[str, list[list[float]]]:
        """Per cell type, the per-edge operation weights (rows: edges) for the α-evolution figures."""
        raise NotImplementedError

    @property
    def num_phases(self) -> int:
        """Growing phases (P-DARTS); 1 for spaces that do not grow."""
        return 1

    @property
    def phase(self) -> int:
        return 0

    def configure_epoch(self, network: nn.Module, epoch: int, epochs: int, arch_start: int) -> None:
        """Adjust a network for ``epoch`` of a training stage of ``epochs`` epochs whose A-steps start
        at ``arch_start`` (e.g. P-DARTS' decaying skip-connect dropout). Called before every epoch."""

    def enter_phase(self, index: int) -> None:
        """Move to phase ``index`` (prune operations, keeping their α). Networks must be rebuilt after."""
        if index != 0:
            raise ValueError(f"{type(self).__name__} has a single phase")
