"""First-order architecture gradient: V is treated as independent of A (the SGL authors' code)."""

from __future__ import annotations

import torch

from .base import ArchContext
from .virtual_step import Functional, grad, val_loss


def first_order(ctx: ArchContext) -> dict[str, list[torch.Tensor]]:
    grads = {}
    for name in ctx.targets:
        # Functional: cloned buffers, so measuring L_val leaves V's BatchNorm statistics alone.
        model = Functional(ctx.learners[name], "v")
        grads[name] = grad(val_loss(ctx, model, model.params), model.arch())
    return grads
