"""Per-epoch learning-rate schedules: the values the reference code would have used, epoch by epoch."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from sgl.registry.optim import CosineConfig, LinearConfig, StepConfig


def _lrs(schedule, epochs: int, lrs: tuple[float, ...] = (0.5,)) -> list[list[float]]:
    """The lr of every param group in each epoch, stepping once per epoch as the engine does."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in lrs]
    optimizer = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], lr=lrs[0])
    scheduler = schedule.build(optimizer, epochs)
    seen = []
    for _ in range(epochs):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return seen


def _pc_darts_imagenet(base: float, epochs: int, batch_size: int, epoch: int) -> float:
    """PC-DARTS train_imagenet.py: adjust_lr(), then the warm-up for batches above 256 (their order)."""
    if epochs - epoch > 5:
        lr = base * (epochs - 5 - epoch) / (epochs - 5)
    else:
        lr = base * (epochs - epoch) / ((epochs - 5) * 5)
    if epoch < 5 and batch_size > 256:
        lr = lr * (epoch + 1) / 5.0
    return lr


@pytest.mark.parametrize("epochs", [250, 12])
def test_linear_is_the_pc_darts_imagenet_schedule(epochs):
    got = [lr for (lr,) in _lrs(LinearConfig(warmup_epochs=5, tail_epochs=5), epochs, (0.5,))]
    want = [_pc_darts_imagenet(0.5, epochs, 1024, e) for e in range(epochs)]
    assert got == pytest.approx(want, rel=1e-12, abs=0)


def test_linear_pc_darts_imagenet_spot_values():
    lrs = [lr for (lr,) in _lrs(LinearConfig(warmup_epochs=5, tail_epochs=5), 250, (0.5,))]
    assert lrs[0] == pytest.approx(0.5 / 5)  # first warm-up epoch: a fifth of the (undecayed) lr
    assert lrs[4] == pytest.approx(0.5 * 241 / 245)  # last warm-up epoch: full scale
    assert lrs[5] == pytest.approx(0.5 * 240 / 245)
    # The tail continues where the main line stopped, then falls by lr/1225 an epoch.
    assert lrs[244] == pytest.approx(0.5 / 245) and lrs[245] == pytest.approx(0.5 / 245)
    assert lrs[249] == pytest.approx(0.5 / 1225)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))


def test_linear_plain_decay_heads_for_min_lr_per_group():
    got = _lrs(LinearConfig(min_lr=0.01), 10, (0.1, 0.05))
    for e, (a, b) in enumerate(got):
        assert a == pytest.approx(0.01 + 0.09 * (10 - e) / 10)
        assert b == pytest.approx(0.01 + 0.04 * (10 - e) / 10)


def test_linear_warmup_start_sets_the_first_factor():
    got = [lr for (lr,) in _lrs(LinearConfig(warmup_epochs=3, warmup_start=0.5), 20, (1.0,))]
    decay = [(20 - e) / 20 for e in range(20)]
    assert got[:4] == pytest.approx([0.5 * decay[0], 0.75 * decay[1], 1.0 * decay[2], decay[3]])


def test_linear_tail_must_leave_main_epochs():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match=r"tail_epochs \(5\) must be below the schedule's 5 epochs"):
        LinearConfig(tail_epochs=5).build(optimizer, 5)
    with pytest.raises(ValidationError):
        LinearConfig(warmup_start=0.0)


def test_step_is_darts_imagenet_steplr():
    got = [lr for (lr,) in _lrs(StepConfig(step_size=1, gamma=0.97), 6, (0.1,))]
    assert got == pytest.approx([0.1 * 0.97**e for e in range(6)], rel=1e-12)
    got = [lr for (lr,) in _lrs(StepConfig(step_size=2, gamma=0.5), 6, (1.0,))]
    assert got == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25, 0.25])


def test_cosine_warmup_scales_the_cosine_values():
    epochs, base, low = 10, 0.5, 0.0
    plain = [lr for (lr,) in _lrs(CosineConfig(min_lr=low), epochs, (base,))]
    warmed = [lr for (lr,) in _lrs(CosineConfig(min_lr=low, warmup_epochs=5), epochs, (base,))]
    closed = [low + (base - low) * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)]
    assert plain == pytest.approx(closed, rel=1e-12, abs=1e-15)
    assert warmed == pytest.approx([c * min(1.0, (e + 1) / 5) for e, c in enumerate(closed)], rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    "schedule",
    [LinearConfig(warmup_epochs=3, tail_epochs=2), StepConfig(step_size=2, gamma=0.5), CosineConfig(warmup_epochs=2)],
    ids=["linear", "step", "cosine-warmup"],
)
def test_a_resumed_schedule_continues_where_it_stopped(schedule):
    epochs = 12
    whole = _lrs(schedule, epochs)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.5)
    scheduler = schedule.build(optimizer, epochs)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    state = (optimizer.state_dict(), scheduler.state_dict())

    param2 = torch.nn.Parameter(torch.zeros(1))
    optimizer2 = torch.optim.SGD([param2], lr=0.5)
    scheduler2 = schedule.build(optimizer2, epochs)
    optimizer2.load_state_dict(state[0])
    scheduler2.load_state_dict(state[1])
    rest = []
    for _ in range(5, epochs):
        rest.append(optimizer2.param_groups[0]["lr"])
        optimizer2.step()
        scheduler2.step()
    assert rest == pytest.approx([lr for (lr,) in whole[5:]], rel=1e-12)
