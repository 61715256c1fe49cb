"""The fused supernet under mixed precision (issue #19, fault 1): every space it fuses — P-DARTS
past its first phase included, where an edge's kept ops differ between edges and the op outputs
are summed into place — runs under bf16 and fp16 autocast and computes what the plain network
computes under the same autocast, up to half-precision rounding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sgl.registry.spaces import DartsConfig, PCDartsConfig, PDartsConfig, PDartsPhase
from sgl.registry.spaces.fused import FusedDartsNetwork
from sgl.registry.task import Task

DIGITS = Task(num_classes=10, in_channels=1, image_size=8)

SPACES = {
    "darts": lambda: DartsConfig(channels=4, layers=3, nodes=3),
    "pc_darts": lambda: PCDartsConfig(channels=8, layers=3, nodes=3, partial_channels=4),
    "p_darts_phase_2": lambda: PDartsConfig(channels=4, nodes=3, phases=[PDartsPhase(layers=2, ops=8),
                                                                         PDartsPhase(layers=3, ops=3)]),
}


def _space_and_net(kind: str):
    torch.manual_seed(0)
    space = SPACES[kind]().build(DIGITS)
    with torch.no_grad():
        for p in space.parameters():
            p.normal_()  # distinct weights per op, so pruning keeps different ops on different edges
    if kind.startswith("p_darts"):
        space.enter_phase(1)
    return space, space.new_network()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("kind", sorted(SPACES))
def test_fused_runs_under_autocast_and_agrees_with_plain(kind: str, dtype: torch.dtype) -> None:
    space, plain = _space_and_net(kind)
    fused = FusedDartsNetwork.from_networks([plain])
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(6) % 10
    outputs = []
    for net in (plain, fused):
        space.zero_grad()
        with torch.autocast("cpu", dtype=dtype):
            logits = net(x, space()) if net is plain else net(x, [space()])[0]
        F.cross_entropy(logits.float(), y).backward()
        outputs.append((logits.float().detach(), [p.grad.clone() for p in space.parameters()]))
    (plain_logits, plain_grads), (fused_logits, fused_grads) = outputs
    # half precision rounds to 2^-8 (bf16) of a value: sums taken in another order differ by a few of those
    torch.testing.assert_close(fused_logits, plain_logits, atol=0.05, rtol=0.05)
    for a, b in zip(fused_grads, plain_grads):
        torch.testing.assert_close(a, b, atol=0.02, rtol=0.1)
