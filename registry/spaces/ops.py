"""Candidate operations of the DARTS search space (after DARTS' ``cnn/operations.py``).

``OPS[name](C, stride, affine)`` builds an op mapping ``[N, C, H, W]`` to ``[N, C, H', W']`` with
``H' = ceil(H / stride)`` for every op and every size, odd ones included, so a mixed op can sum them.
Supernets build their ops with ``affine=False`` (DARTS: learnable BN scales would blur the
comparison of α); evaluation networks with ``affine=True``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

OpFactory = Callable[[int, int, bool], nn.Module]


class ReLUConvBN(nn.Sequential):
    """ReLU → conv → BN; the preprocessing of cell inputs and the stem of the factorized paths."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU → dilated depthwise conv → pointwise conv → BN."""

    def __init__(
        self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, dilation: int, affine: bool = True
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked ReLU → depthwise → pointwise → BN blocks; only the first one strides.

    Stacking twice is DARTS' choice (following NASNet): it gives the separable op a receptive
    field and depth comparable to the dilated one of the same kernel size.
    """

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_in, 1, bias=False),
            nn.BatchNorm2d(C_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=1, padding=padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class Identity(nn.Module):
    """Skip connection. A class of our own so drop-path can recognise it (isinstance) and spare it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The ``none`` op: zeros of the output shape.

    Multiplying by zero (rather than allocating zeros) keeps the result on the input's graph,
    device and dtype; subsampling gives the strided output size without any computation.
    """

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


class FactorizedReduce(nn.Module):
    """Halve the resolution with two stride-2 1x1 convs, one shifted by a pixel, concatenated.

    A single strided 1x1 conv would see only the even pixels; the shifted half sees the odd ones.
    The shifted input is padded by one pixel on the bottom/right so that both halves have
    ``ceil(H / 2)`` rows on odd sizes too (the padding is never sampled on even sizes, so there
    the result equals DARTS' unpadded version).
    """

    def __init__(self, C_in: int, C_out: int, affine: bool = True) -> None:
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def _conv_7x1_1x7(C: int, stride: int, affine: bool) -> nn.Module:
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(C, C, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
        nn.Conv2d(C, C, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
        nn.BatchNorm2d(C, affine=affine),
    )


OPS: dict[str, OpFactory] = {
    "none": lambda C, stride, affine: Zero(stride),
    # Padded positions must not count as zeros in the mean, or border pixels are darkened.
    "avg_pool_3x3": lambda C, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "max_pool_3x3": lambda C, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "skip_connect": lambda C, stride, affine: Identity() if stride == 1 else FactorizedReduce(C, C, affine=affine),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine=affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine=affine),
    "sep_conv_7x7": lambda C, stride, affine: SepConv(C, C, 7, stride, 3, affine=affine),
    # Dilation 2 with padding 2 (3x3) / 4 (5x5) keeps the size: effective kernels of 5 and 9.
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine=affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine=affine),
    "conv_7x1_1x7": _conv_7x1_1x7,
}


def make_op(name: str, C: int, stride: int, affine: bool) -> nn.Module:
    """``OPS[name](C, stride, affine)`` with an error that lists the known names."""
    try:
        factory = OPS[name]
    except KeyError:
        raise KeyError(f"unknown operation {name!r}; known: {', '.join(OPS)}") from None
    return factory(C, stride, affine)


def imagenet_stems(in_channels: int, C: int) -> tuple[nn.Sequential, nn.Sequential]:
    """DARTS' ImageNet stems (as PC-DARTS' ImageNet search): three stride-2 convolutions, the first
    two giving ``stem0`` (÷4) and the third ``stem1`` (÷8); cells read both, as after a reduction."""
    stem0 = nn.Sequential(
        nn.Conv2d(in_channels, C // 2, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C // 2),
        nn.ReLU(inplace=True),
        nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C),
    )
    stem1 = nn.Sequential(
        nn.ReLU(inplace=False),  # stem0's output is also the first cell's input: not in place
        nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C),
    )
    return stem0, stem1
