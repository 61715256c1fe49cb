"""PC-DARTS (Xu et al., 2020): partial channel connections and edge normalization.

Only 1/K of each edge's input channels go through the candidate ops (K times less memory and
compute in the mixed ops); the rest bypass them and a channel shuffle mixes the two parts so the
next edge samples different channels. Because sampling makes the op choice noisy, each node also
weighs its incoming edges by softmax(β), and the genotype ranks edges by op weight × edge weight.
The cells and the network are DARTS' (``supernet.DartsNetwork``); only the edge module differs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from torch import nn

from .darts import DartsSpace
from .partial import PartialMixedOp, node_softmax
from .genotype import num_edges

if TYPE_CHECKING:
    from ..task import Task
    from . import PCDartsConfig


class PCDartsSpace(DartsSpace):
    """α as in DARTS, plus one β per edge (when ``edge_normalization``) returned as ``*_edges`` weights."""

    space_name = "pc_darts"

    def __init__(self, cfg: PCDartsConfig, task: Task) -> None:
        super().__init__(cfg, task)
        self.partial_channels = cfg.partial_channels
        self.edge_normalization = cfg.edge_normalization
        # Without edge normalization β would receive no gradient; a parameter that never gets one
        # breaks autograd.grad over arch_parameters(), so it is not created at all.
        if self.edge_normalization:
            edges = num_edges(cfg.nodes)
            self.betas_normal = nn.Parameter(cfg.init_scale * torch.randn(edges))
            self.betas_reduce = nn.Parameter(cfg.init_scale * torch.randn(edges))

    def make_edge(self, cell_type: str, edge: int, C: int, stride: int) -> nn.Module:
        return PartialMixedOp(C, stride, self.primitives, self.partial_channels)

    def forward(self) -> dict[str, torch.Tensor]:
        arch = super().forward()
        if self.edge_normalization:
            arch["normal_edges"] = node_softmax(self.betas_normal, self.cfg.nodes)
            arch["reduce_edges"] = node_softmax(self.betas_reduce, self.cfg.nodes)
        return arch
