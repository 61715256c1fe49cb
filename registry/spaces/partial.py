"""PC-DARTS' edge (Xu et al., 2020): the mixed op on 1/K of the channels, the rest bypassing it,
then a channel shuffle so the next edge samples other channels."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .supernet import MixedOp


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
