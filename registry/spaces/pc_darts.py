"""PC-DARTS (Xu et al., 2020): partial channel connections and edge normalization.

Only 1/K of each edge's input channels go through the candidate ops (K times less memory and
compute in the mixed ops); the rest bypass them and a channel shuffle mixes the two parts so the
next edge samples different channels. Because sampling makes the op choice noisy, each node also
weighs its incoming edges by softmax(β), and the genotype ranks edges by op weight × edge weight.
The cells and the network are DARTS' (``darts.DartsNetwork``); only the edge module differs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .darts import DartsSpace, MixedOp
from .genotype import num_edges

if TYPE_CHECKING:
    from ..task import Task
    from . import PCDartsConfig


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave ``groups`` equal channel blocks: channel ``g·n + i`` moves to ``i·groups + g``."""
    batch, channels, height, width = x.shape
    return x.view(batch, groups, channels // groups, height, width).transpose(1, 2).reshape(batch, channels, height, width)


def node_softmax(betas: torch.Tensor, nodes: int) -> torch.Tensor:
    """Softmax of the per-edge β over each node's incoming edges (node i has i + 2), concatenated."""
    sizes = [node + 2 for node in range(nodes)]
    return torch.cat([F.softmax(chunk, dim=-1) for chunk in torch.split(betas, sizes)])


class PartialMixedOp(nn.Module):
    """The mixed op on the first C/K channels; the others bypass it (max-pooled where the edge strides)."""

    def __init__(self, C: int, stride: int, primitives: Sequence[str], k: int) -> None:
        super().__init__()
        if C % k:
            raise ValueError(f"{C} channels cannot be split into {k} parts")
        self.k = k
        self.mixed = MixedOp(C // k, stride, primitives)
        # ceil_mode: the bypass must have the ops' ceil(H/2) rows on odd sizes too.
        self.bypass: nn.Module = nn.MaxPool2d(2, 2, ceil_mode=True) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        part = x.shape[1] // self.k
        out = torch.cat([self.mixed(x[:, :part], weights), self.bypass(x[:, part:])], dim=1)
        return channel_shuffle(out, self.k)


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
