"""The DARTS supernet: cells whose edges mix candidate ops, stacked into a network.

A supernet owns only operation weights; the architecture (softmax(α), and PC-DARTS' β) is an input
of its ``forward``, so one search space feeds any number of networks (a learner's W and V).
PC-DARTS and P-DARTS reuse ``Cell`` and ``DartsNetwork`` unchanged and differ only in the module
they put on each edge (``EdgeFactory``) and in the extra entries of the architecture dict.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import nn

from .ops import FactorizedReduce, Identity, ReLUConvBN, imagenet_stems, make_op

#: Builds the module on one edge: ``(cell_type, edge_index, channels, stride) -> module``; the module
#: is called as ``module(x, op_weights_of_that_edge)``.
EdgeFactory = Callable[[str, int, int, int], nn.Module]


class SkipDropout(nn.Dropout):
    """Dropout after a parameter-free skip-connect (P-DARTS); its own class so a schedule can find it."""


def candidate_op(name: str, C: int, stride: int, skip_dropout: Optional[float] = None) -> nn.Module:
    """One candidate op as the search uses it: BN without affine, pooling normalised too.

    Pooling gets a BN because its output scale is unlike the conv ops' (whose last layer is a BN);
    without it α would partly learn to rescale rather than to choose (DARTS does the same).
    """
    op = make_op(name, C, stride, False)
    if "pool" in name:
        op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
    if skip_dropout is not None and isinstance(op, Identity):
        op = nn.Sequential(op, SkipDropout(skip_dropout))
    return op


class MixedOp(nn.Module):
    """Σ_o w_o · o(x) over the candidate ops of one edge."""

    def __init__(self, C: int, stride: int, primitives: Sequence[str], skip_dropout: Optional[float] = None) -> None:
        super().__init__()
        self.primitives = tuple(primitives)
        self.ops = nn.ModuleList(candidate_op(p, C, stride, skip_dropout) for p in self.primitives)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops))  # type: ignore[return-value]


def _preprocess(C_in: int, C_out: int, halve: bool) -> nn.Module:
    # After a reduction cell, c_{k-2} is twice the size of c_{k-1}; FactorizedReduce matches them.
    return FactorizedReduce(C_in, C_out, affine=False) if halve else ReLUConvBN(C_in, C_out, 1, 1, 0, affine=False)


class Cell(nn.Module):
    """A DARTS cell: node i sums its edges from the two cell inputs and nodes 0..i-1.

    In a reduction cell the edges leaving the cell inputs stride 2. The output concatenates all
    intermediate nodes, so it has ``nodes·C`` channels.
    """

    def __init__(
        self,
        nodes: int,
        C_prev_prev: int,
        C_prev: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
        make_edge: EdgeFactory,
    ) -> None:
        super().__init__()
        self.nodes = nodes
        self.reduction = reduction
        self.cell_type = "reduce" if reduction else "normal"
        self.preprocess0 = _preprocess(C_prev_prev, C, halve=reduction_prev)
        self.preprocess1 = _preprocess(C_prev, C, halve=False)
        self.edges = nn.ModuleList()
        for node in range(nodes):
            for state in range(node + 2):
                stride = 2 if reduction and state < 2 else 1
                self.edges.append(make_edge(self.cell_type, len(self.edges), C, stride))

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        weights: torch.Tensor,
        edge_weights: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.nodes):
            terms = [self.edges[offset + j](h, weights[offset + j]) for j, h in enumerate(states)]
            if edge_weights is not None:
                terms = [edge_weights[offset + j] * t for j, t in enumerate(terms)]
            offset += len(states)
            states.append(sum(terms))  # type: ignore[arg-type]
        return torch.cat(states[2:], dim=1)


def reduction_layers(layers: int) -> set[int]:
    """Cells that halve the resolution and double the channels: at 1/3 and 2/3 of the depth."""
    return {layers // 3, 2 * layers // 3}


class ImageNetSearchStem(nn.Module):
    """PC-DARTS' ImageNet search stem (model_search_imagenet.py): three stride-2 convolutions take
    224 to 28 pixels; the cells read its two outputs as c_{k-2} (56 px) and c_{k-1} (28 px)."""

    def __init__(self, in_channels: int, C_stem: int) -> None:
        super().__init__()
        self.stem0, self.stem1 = imagenet_stems(in_channels, C_stem)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        return s0, self.stem1(s0)


class DartsNetwork(nn.Module):
    """Stem → cells → global average pool → linear; ``forward(x, arch)`` takes the space's output.

    ``arch`` maps ``"normal"``/``"reduce"`` to per-edge op weights ``[edges, ops]`` and, optionally,
    ``"normal_edges"``/``"reduce_edges"`` to per-edge weights ``[edges]`` that scale each edge.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        channels: int,
        layers: int,
        nodes: int,
        stem_multiplier: int,
        make_edge: EdgeFactory,
        stem: str = "cifar",
    ) -> None:
        super().__init__()
        C_stem = stem_multiplier * channels
        self.two_stems = stem == "imagenet"
        if self.two_stems:
            self.stem: nn.Module = ImageNetSearchStem(in_channels, C_stem)
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, C_stem, 3, padding=1, bias=False),
                nn.BatchNorm2d(C_stem),
            )
        C_prev_prev, C_prev, C = C_stem, C_stem, channels
        reductions = reduction_layers(layers)
        reduction_prev = self.two_stems  # c_{k-2} of the first cell is twice c_{k-1}'s size
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                C *= 2
            self.cells.append(Cell(nodes, C_prev_prev, C_prev, C, reduction, reduction_prev, make_edge))
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, nodes * C
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x: torch.Tensor, arch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        s0, s1 = self.stem(x) if self.two_stems else (self.stem(x),) * 2
        for cell in self.cells:
            kind = cell.cell_type
            s0, s1 = s1, cell(s0, s1, arch[kind], arch.get(f"{kind}_edges"))
        return self.classifier(self.global_pooling(s1).flatten(1))
