"""Row-stacked modules of the fused supernet: one module computes many plain modules at once.

A *row* is one plain module's worth of channels: one candidate op on one edge of one learner, or
one learner's stem / preprocessing. A fused module holds the tensors of R plain modules stacked
along dim 0 and computes all R in one call over an input of R·C channels: depthwise convs,
BatchNorm, pooling and ReLU are per channel already; R dense 1x1 convs become one batched matmul
(the dot products of a grouped conv with R groups). Each fused tensor records, per plain tensor, where it lives (``Link``), so weights can be
copied in from plain networks and written back out in their ``state_dict`` format, and so every
row has one owner (a learner) for per-learner gradient norms.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .fused_conv import depthwise_conv


class Link(NamedTuple):
    """Plain tensor ``key`` of learner ``learner`` (shape ``shape``) lives in row ``row`` of a fused
    tensor viewed as ``[rows, -1]``, at columns ``offset : offset + numel(shape)``."""

    row: int
    offset: int
    learner: int
    key: str
    shape: tuple[int, ...]


class PlainRef(NamedTuple):
    """A plain module to fuse: its learner, its qualified name in that learner's network, itself."""

    learner: int
    name: str
    module: nn.Module


def _key(name: str, attr: str) -> str:
    return f"{name}.{attr}" if name else attr


class Rows(nn.Module):
    """Base of the fused modules: registers row-stacked tensors and their links to plain tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, list[Link]] = {}
        self.rows: dict[str, int] = {}

    def _stacked(
        self, attr: str, refs: Sequence[PlainRef], plain_attr: str, parameter: bool, shape: Sequence[int] | None = None
    ) -> torch.Tensor:
        """Register ``attr`` stacking ``ref.module.<plain_attr>`` of every ref, row i = refs[i].

        The fused shape is ``shape`` if given, else the plain shape with dim 0 multiplied by the rows
        (so a conv weight stays a conv weight over R·C_out channels).
        """
        first: torch.Tensor = getattr(refs[0].module, plain_attr)
        plain_shape = tuple(first.shape)
        for ref in refs:
            t = getattr(ref.module, plain_attr)
            if tuple(t.shape) != plain_shape or t.dtype != first.dtype:
                raise ValueError(f"cannot fuse {ref.name}.{plain_attr}: shape {tuple(t.shape)} differs from {plain_shape}")
        if shape is None:
            shape = (len(refs) * plain_shape[0], *plain_shape[1:]) if plain_shape else (len(refs),)
        tensor = torch.zeros(tuple(shape), dtype=first.dtype, device=first.device)
        if parameter:
            self.register_parameter(attr, nn.Parameter(tensor))
        else:
            self.register_buffer(attr, tensor)
        self.rows[attr] = len(refs)
        self.links[attr] = [Link(i, 0, r.learner, _key(r.name, plain_attr), plain_shape) for i, r in enumerate(refs)]
        return getattr(self, attr)


class RowBatchNorm(Rows):
    """R BatchNorm2d of C channels each as one ``batch_norm`` over R·C channels (stats are per channel)."""

    def __init__(self, refs: Sequence[PlainRef]) -> None:
        super().__init__()
        bns = [r.module for r in refs]
        first = bns[0]
        for bn in bns:
            if not isinstance(bn, nn.BatchNorm2d):
                raise TypeError(f"expected BatchNorm2d, got {type(bn).__name__}")
            if (bn.affine, bn.eps, bn.momentum, bn.track_running_stats) != (
                first.affine,
                first.eps,
                first.momentum,
                first.track_running_stats,
            ):
                raise ValueError("cannot fuse BatchNorm layers with different settings")
        if first.momentum is None or not first.track_running_stats:
            raise ValueError("fusing needs BatchNorm with running statistics and a momentum")
        self.eps, self.momentum, self.affine = first.eps, first.momentum, first.affine
        if self.affine:
            self._stacked("weight", refs, "weight", parameter=True)
            self._stacked("bias", refs, "bias", parameter=True)
        self._stacked("running_mean", refs, "running_mean", parameter=False)
        self._stacked("running_var", refs, "running_var", parameter=False)
        self._stacked("num_batches_tracked", refs, "num_batches_tracked", parameter=False)
        # As BatchNorm's: False normalises with batch statistics in any mode and leaves the running
        # ones alone (how accuracy is measured with batch statistics during a search).
        self.track_running_stats = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tracking = self.track_running_stats
        if self.training and tracking:
            # Every plain BN counts its own training batches; the counter is not used with a momentum.
            self.num_batches_tracked.add_(1)
        return F.batch_norm(
            x,
            self.running_mean if tracking else None,
            self.running_var if tracking else None,
            self.weight if self.affine else None,
            self.bias if self.affine else None,
            self.training or not tracking,
            self.momentum,
            self.eps,
        )


def _conv_of(module: nn.Module) -> nn.Conv2d:
    if not isinstance(module, nn.Conv2d) or module.bias is not None:
        raise TypeError(f"expected a bias-free Conv2d, got {module}")
    return module


class DepthwiseRows(Rows):
    """R depthwise convs of C channels: one conv with R·C groups."""

    def __init__(self, refs: Sequence[PlainRef]) -> None:
        super().__init__()
        conv = _conv_of(refs[0].module)
        if conv.groups != conv.in_channels or conv.in_channels != conv.out_channels:
            raise TypeError(f"expected a depthwise conv, got {conv}")
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        if len({*conv.stride}) != 1 or len({*conv.padding}) != 1 or len({*conv.dilation}) != 1 or conv.padding_mode != "zeros":
            raise TypeError(f"expected a square zero-padded depthwise conv, got {conv}")
        for r in refs:
            c = _conv_of(r.module)
            if (c.stride, c.padding, c.dilation, c.kernel_size) != (conv.stride, conv.padding, conv.dilation, conv.kernel_size):
                raise ValueError(f"cannot fuse {r.name}: its conv differs from {refs[0].name}")
        self._stacked("weight", refs, "weight", parameter=True)
        #: ``depthwise_conv``'s choice: None where it pays, True always, False never.
        self.rewrite: Optional[bool] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depthwise_conv(x, self.weight, self.stride[0], self.padding[0], self.dilation[0], self.rewrite)


class PointwiseRows(Rows):
    """R dense 1x1 convs ``C_in → C_out`` as one grouped conv (R groups) over R·C_in channels.

    ``stride`` is that of the plain convs; the fused one always runs at stride 1, the caller having
    subsampled the input (``factorized_halves``).
    """

    def __init__(self, refs: Sequence[PlainRef], stride: int = 1) -> None:
        super().__init__()
        for r in refs:
            c = _conv_of(r.module)
            if c.kernel_size != (1, 1) or c.groups != 1 or c.stride != (stride, stride) or c.padding != (0, 0):
                raise TypeError(f"expected a dense stride-{stride} 1x1 conv at {r.name}, got {c}")
        self.groups = len(refs)
        self._stacked("weight", refs, "weight", parameter=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A batched matmul of [R, C_out, C_in] weights with [B, R, C_in, H·W] is the same dot
        # products as the grouped conv, and on CPU about twice as fast for these small groups.
        B, _, H, W = x.shape
        R = self.groups
        w = self.weight.view(R, -1, self.weight.shape[1])
        return torch.matmul(w, x.reshape(B, R, -1, H * W)).view(B, -1, H, W)


class ChainRows(nn.Module):
    """SepConv / DilConv over R rows: blocks of depthwise → pointwise → BN, ReLU between blocks.

    The leading ReLU is not applied here: the caller computes it once per source tensor and shares
    it between every op and edge reading that source.
    """

    def __init__(self, refs: Sequence[PlainRef]) -> None:
        super().__init__()
        blocks = []
        children = [list(r.module.named_children()) for r in refs]
        count = len(children[0])
        if count % 4 or any(len(c) != count for c in children):
            raise TypeError(f"unexpected layout of {type(refs[0].module).__name__} at {refs[0].name}")
        for start in range(0, count, 4):
            parts = []
            for offset in range(1, 4):
                parts.append(
                    [PlainRef(r.learner, _key(r.name, c[start + offset][0]), c[start + offset][1]) for r, c in zip(refs, children)]
                )
            blocks.append(nn.ModuleList([DepthwiseRows(parts[0]), PointwiseRows(parts[1]), RowBatchNorm(parts[2])]))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (depthwise, pointwise, bn) in enumerate(self.blocks):
            if i:
                x = F.relu(x)
            x = bn(pointwise(depthwise(x)))
        return x


def factorized_halves(x: torch.Tensor) -> torch.Tensor:
    """``[B, R, C, H, W]`` (after ReLU) → ``[B, R·2·C, ⌈H/2⌉, ⌈W/2⌉]``: per row, the even pixels then
    the odd ones (the shifted half of ``FactorizedReduce``), each padded to the ceil size.

    A stride-2 1x1 conv reads exactly the even pixels; ``FactorizedReduce``'s shifted input read at
    stride 2 is the odd pixels followed by its one padded row/column on odd sizes.
    """
    B, R, C, H, W = x.shape
    Ho, Wo = -(-H // 2), -(-W // 2)
    even = x[..., ::2, ::2]
    odd = x[..., 1::2, 1::2]
    if odd.shape[-2:] != (Ho, Wo):
        odd = F.pad(odd, (0, Wo - odd.shape[-1], 0, Ho - odd.shape[-2]))
    return torch.stack([even, odd], dim=2).view(B, R * 2 * C, Ho, Wo)


class FactorizedReduceRows(nn.Module):
    """R ``FactorizedReduce``: conv_1 and conv_2 of every row are one
    grouped 1x1 conv with 2R groups over the even/odd halves; conv_1's half comes first, as in the
    plain concatenation."""

    def __init__(self, refs: Sequence[PlainRef]) -> None:
        super().__init__()
        convs = [PlainRef(r.learner, _key(r.name, a), getattr(r.module, a)) for r in refs for a in ("conv_1", "conv_2")]
        self.convs = PointwiseRows(convs, stride=2)
        self.bn = RowBatchNorm([PlainRef(r.learner, _key(r.name, "bn"), r.module.bn) for r in refs])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, R·C_in, H, W]``, before the ReLU (the cell preprocessing)."""
        B, _, H, W = x.shape
        return self.from_halves(factorized_halves(F.relu(x).view(B, self.convs.groups // 2, -1, H, W)))

    def from_halves(self, halves: torch.Tensor) -> torch.Tensor:
        """``halves``: ``factorized_halves`` of the ReLU'd input, ``[B, R·2·C_in, H', W']``."""
        return self.bn(self.convs(halves))


def max_or_avg_pool(x: torch.Tensor, name: str, stride: int) -> torch.Tensor:
    """The 3x3 pooling of the OPS table (``count_include_pad=False`` for the average)."""
    if name == "max_pool_3x3":
        return F.max_pool2d(x, 3, stride, 1)
    return F.avg_pool2d(x, 3, stride, 1, count_include_pad=False)


class ReLUConvBNRows(nn.Module):
    """R ``ReLUConvBN`` 1x1 (the cell preprocessing): ReLU, grouped 1x1 conv, BN."""

    def __init__(self, refs: Sequence[PlainRef]) -> None:
        super().__init__()
        self.conv = PointwiseRows([PlainRef(r.learner, _key(r.name, "1"), r.module[1]) for r in refs])
        self.bn = RowBatchNorm([PlainRef(r.learner, _key(r.name, "2"), r.module[2]) for r in refs])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x)))

