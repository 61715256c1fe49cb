"""First-order architecture gradient: V is treated as independent of A."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import ArchContext


def first_order(ctx: ArchContext) -> dict[str, list[torch.Tensor]]:
    grads = {}
    for name in ctx.targets:
        learner = ctx.learners[name]
        params = learner.space.arch_parameters()
        with ctx.autocast():
            loss = F.cross_entropy(learner.logits(learner.v_net, ctx.x_val), ctx.y_val)
        # allow_unused: a supernet too shallow to have a normal cell never reads α_normal.
        found = torch.autograd.grad(loss, params, allow_unused=True)
        grads[name] = [torch.zeros_like(p) if g is None else g for p, g in zip(params, found)]
    return grads
