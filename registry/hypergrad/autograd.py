"""Autograd plumbing of the architecture-gradient methods: gradients that tolerate unused inputs,
the loss scale of fp16 runs, precision contexts, unwrapping prepared networks, and replaying the
same randomness in repeated passes."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Sequence

import torch
from torch import Tensor, nn

from .base import ArchContext


def grad(output: Tensor | float, inputs: Sequence[Tensor], *, create_graph: bool = False) -> list[Tensor]:
    """``torch.autograd.grad`` with zeros for inputs the output does not depend on."""
    inputs = list(inputs)
    if not inputs:
        return []
    if not isinstance(output, Tensor) or not output.requires_grad:
        return [torch.zeros_like(t) for t in inputs]
    wanted = [i for i, t in enumerate(inputs) if t.requires_grad]
    result = [torch.zeros_like(t) for t in inputs]
    if wanted:
        grads = torch.autograd.grad(
            output, [inputs[i] for i in wanted], allow_unused=True, create_graph=create_graph
        )
        for i, g in zip(wanted, grads):
            if g is not None:
                result[i] = g
    return result


def scaled(loss: Tensor, scale: float) -> Tensor:
    """``loss · scale`` (the executor's loss scale; 1 leaves the graph as it is)."""
    return loss if scale == 1.0 else loss * scale


def unscaled(grads: Sequence[Tensor], scale: float) -> list[Tensor]:
    """Gradients of a ``scaled`` loss, divided back (inf / NaN from an overflow stay, for the scaler to see)."""
    return list(grads) if scale == 1.0 else [g / scale for g in grads]


def precision(ctx: ArchContext, fp32: bool = False) -> AbstractContextManager:
    """``ctx.autocast()``, or autocast switched off on the batch's device (``fp32``)."""
    if fp32:
        return torch.autocast(ctx.x_train.device.type, enabled=False)
    return ctx.autocast()


def unwrap(net: nn.Module) -> nn.Module:
    """The module under DistributedDataParallel / DataParallel / torch.compile wrappers.

    Calling the bare module keeps the method's many passes local: a DDP wrapper would otherwise
    expect a ``backward`` (and an all-reduce) after every forward.
    """
    while True:
        if isinstance(net, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            net = net.module
        elif hasattr(net, "_orig_mod") and isinstance(net._orig_mod, nn.Module):
            net = net._orig_mod
        else:
            return net


class _SameRandomness:
    """Replays the RNG state captured at construction, so both finite-difference passes draw the same
    dropout masks (an unmatched pair would turn the central difference into noise / 2ε)."""

    def __init__(self, device: torch.device):
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        self.device = device

    def replay(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)
