"""Shapes and small behaviours of the DARTS candidate operations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sgl.registry.spaces import DARTS_PRIMITIVES
from sgl.registry.spaces.ops import OPS, FactorizedReduce, Identity, Zero, make_op


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("size", [7, 8, 9])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_keeps_channels_and_gives_ceil_size(name: str, stride: int, size: int, affine: bool) -> None:
    torch.manual_seed(0)
    op = OPS[name](6, stride, affine)
    x = torch.randn(2, 6, size, size, requires_grad=True)
    y = op(x)
    out = -(-size // stride)  # ceil: every op of a mixed op must agree on it
    assert y.shape == (2, 6, out, out)
    y.sum().backward()  # the graph reaches the input for every op, `none` included
    assert x.grad is not None


def test_primitives_are_all_in_ops() -> None:
    assert set(DARTS_PRIMITIVES) <= set(OPS)


def test_affine_flag_reaches_batch_norm() -> None:
    for name in ("sep_conv_3x3", "dil_conv_5x5", "conv_7x1_1x7"):
        for affine in (True, False):
            bns = [m for m in OPS[name](4, 1, affine).modules() if isinstance(m, nn.BatchNorm2d)]
            assert bns and all(bn.affine is affine for bn in bns)


def test_skip_connect_is_identity_at_stride_1_and_factorized_at_2() -> None:
    assert isinstance(OPS["skip_connect"](4, 1, True), Identity)
    assert isinstance(OPS["skip_connect"](4, 2, True), FactorizedReduce)


def test_zero_is_zero_and_subsamples() -> None:
    x = torch.randn(1, 3, 9, 9)
    assert torch.equal(Zero(1)(x), torch.zeros_like(x))
    assert Zero(2)(x).shape == (1, 3, 5, 5)
    assert not Zero(2)(x).any()


def test_factorized_reduce_equals_unpadded_version_on_even_sizes() -> None:
    torch.manual_seed(0)
    fr = FactorizedReduce(4, 6, affine=False).eval()
    x = torch.randn(2, 4, 8, 8)
    r = torch.relu(x)
    expected = fr.bn(torch.cat([fr.conv_1(r), fr.conv_2(r[:, :, 1:, 1:])], dim=1))
    assert torch.allclose(fr(x), expected)


def test_factorized_reduce_needs_even_channels() -> None:
    with pytest.raises(ValueError, match="even"):
        FactorizedReduce(4, 5)


def test_avg_pool_ignores_padding() -> None:
    # count_include_pad=False: a constant image stays constant at the border too.
    y = OPS["avg_pool_3x3"](1, 1, False)(torch.ones(1, 1, 5, 5))
    assert torch.allclose(y, torch.ones_like(y))


def test_sep_conv_stacks_two_blocks_and_only_the_first_strides() -> None:
    convs = [m for m in OPS["sep_conv_3x3"](4, 2, True) if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4
    assert [c.stride for c in convs] == [(2, 2), (1, 1), (1, 1), (1, 1)]
    assert convs[0].groups == 4 and convs[2].groups == 4


def test_dil_conv_dilation() -> None:
    conv = [m for m in OPS["dil_conv_5x5"](4, 1, True) if isinstance(m, nn.Conv2d)][0]
    assert conv.dilation == (2, 2) and conv.padding == (4, 4)


def test_make_op_unknown_name_lists_known() -> None:
    with pytest.raises(KeyError, match="sep_conv_3x3"):
        make_op("conv_9x9", 4, 1, True)
