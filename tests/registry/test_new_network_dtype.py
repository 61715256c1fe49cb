"""A space builds its networks in its α's dtype, whatever torch's default is at the time: a
P-DARTS phase change builds new networks mid-run, and a float64 run must stay float64."""

from __future__ import annotations

import pytest
import torch

from sgl.registry.spaces import PDartsConfig, PDartsPhase
from sgl.registry.task import Task

DIGITS = Task(num_classes=10, in_channels=1, image_size=8)


@pytest.mark.parametrize("fused", [False, True])
def test_a_later_phase_is_built_in_the_spaces_dtype(fused: bool) -> None:
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        space = PDartsConfig(channels=4, nodes=2, phases=[PDartsPhase(layers=3, ops=8), PDartsPhase(layers=4, ops=3)]).build(DIGITS)
    finally:
        torch.set_default_dtype(before)
    space.enter_phase(1)
    net = space.new_network(fused=fused)
    assert {t.dtype for t in net.state_dict().values() if t.is_floating_point()} == {torch.float64}
    assert torch.get_default_dtype() == before
    assert net(torch.randn(2, 1, 8, 8, dtype=torch.float64), space()).dtype == torch.float64
