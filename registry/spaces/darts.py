"""The DARTS search space (Liu et al., 2019): α per cell type over the candidate ops of every edge.

The space holds only the architecture; ``new_network`` builds supernets (``supernet.DartsNetwork``)
that take it as an input, plain or in the fused implementation (``fused``).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .base import SearchSpace
from .fused import fuse
from .genotype import CELL_TYPES, Genotype, derive_genotype, num_edges
from .supernet import DartsNetwork, MixedOp

if TYPE_CHECKING:
    from ..task import Task
    from . import DartsConfig, SearchSpaceConfig


def mean_entropy(weights: torch.Tensor) -> float:
    """Mean over edges of the entropy (nats) of each edge's op distribution; 0·log 0 counts as 0."""
    logs = torch.where(weights > 0, weights.clamp_min(1e-30).log(), torch.zeros_like(weights))
    return float(-(weights * logs).sum(-1).mean())


@contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    # Built under the dtype rather than cast afterwards: the initial draws are those of a network
    # made in that dtype from the start, as the first phase's were.
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


class DartsSpace(SearchSpace):
    """α for the normal and the reduction cell, ``[edges, ops]``; networks mix ops by softmax(α)."""

    space_name = "darts"

    def __init__(self, cfg: DartsConfig | SearchSpaceConfig, task: Task) -> None:
        super().__init__()
        self.cfg = cfg
        self.task = task
        self.primitives: tuple[str, ...] = tuple(cfg.primitives)
        edges = num_edges(cfg.nodes)
        self.alphas_normal = nn.Parameter(cfg.init_scale * torch.randn(edges, len(self.primitives)))
        self.alphas_reduce = nn.Parameter(cfg.init_scale * torch.randn(edges, len(self.primitives)))

    # --- what subclasses vary ---------------------------------------------------------------

    @property
    def layers(self) -> int:
        return self.cfg.layers  # type: ignore[union-attr]

    def make_edge(self, cell_type: str, edge: int, C: int, stride: int) -> nn.Module:
        return MixedOp(C, stride, self.primitives)

    @torch.no_grad()
    def op_weights(self) -> dict[str, torch.Tensor]:
        """Per cell type, detached op weights ``[edges, len(primitives)]``, columns in ``primitives`` order."""
        arch = self()
        return {kind: arch[kind].detach().cpu() for kind in CELL_TYPES}

    @torch.no_grad()
    def edge_weights(self) -> dict[str, Optional[torch.Tensor]]:
        """Per cell type, detached edge weights ``[edges]``, or None where edges are not weighted."""
        arch = self()
        return {kind: (arch[f"{kind}_edges"].detach().cpu() if f"{kind}_edges" in arch else None) for kind in CELL_TYPES}

    # --- the SearchSpace interface ----------------------------------------------------------

    def forward(self) -> dict[str, torch.Tensor]:
        return {"normal": F.softmax(self.alphas_normal, dim=-1), "reduce": F.softmax(self.alphas_reduce, dim=-1)}

    def new_network(self, fused: bool = False) -> nn.Module:
        # In α's dtype, the run's: a later phase's networks are built mid-run, when torch's default
        # dtype may no longer be the one the space (and the first networks) were built in.
        with _default_dtype(self.alphas_normal.dtype):
            plain = self._plain_network()
        return fuse(plain) if fused else plain

    def _plain_network(self) -> DartsNetwork:
        return DartsNetwork(
            in_channels=self.task.in_channels,
            num_classes=self.task.num_classes,
            channels=self.cfg.channels,
            layers=self.layers,
            nodes=self.cfg.nodes,
            stem_multiplier=self.cfg.stem_multiplier,
            stem=self.cfg.stem,
            make_edge=self.make_edge,
        )

    def architecture(self) -> Genotype:
        ops, edges = self.op_weights(), self.edge_weights()
        return derive_genotype(
            ops["normal"],
            ops["reduce"],
            self.primitives,
            self.cfg.nodes,
            space=self.space_name,
            edge_weights_normal=edges["normal"],
            edge_weights_reduce=edges["reduce"],
        )

    def entropy(self) -> dict[str, float]:
        return {kind: mean_entropy(w) for kind, w in self.op_weights().items()}

    def snapshot(self) -> dict[str, list[list[float]]]:
        return {kind: w.tolist() for kind, w in self.op_weights().items()}
