"""First-order architecture gradient: V is treated as independent of A (the SGL authors' code)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import ArchContext
from .autograd import grad, scaled, unscaled, unwrap
from .virtual_step import Functional, val_loss


def first_order(ctx: ArchContext, running_stats: str = "keep") -> dict[str, list[torch.Tensor]]:
    """∇_A CE(V(x_val; A), y_val) for every target.

    ``running_stats="keep"`` runs V functionally on a copy of its buffers, so measuring L_val leaves
    its BatchNorm statistics alone; ``"update"`` runs V's own module, so they move exactly as the
    authors' (and DARTS') ``_backward_step`` moves them. The gradient is the same either way: in
    train mode BatchNorm normalises with the batch's statistics, never the running ones.
    """
    if running_stats not in ("keep", "update"):
        raise ValueError(f"running_stats must be 'keep' or 'update', not {running_stats!r}")
    grads = {}
    for name in ctx.targets:
        learner = ctx.learners[name]
        if running_stats == "update":
            # The bare module: a DDP wrapper would broadcast buffers (a collective) on forward.
            with ctx.autocast():
                loss = F.cross_entropy(learner.logits(unwrap(learner.v_net), ctx.x_val), ctx.y_val)
            arch = list(learner.space.arch_parameters())
        else:
            model = Functional(learner, "v")
            loss = val_loss(ctx, model, model.params)
            arch = model.arch()
        grads[name] = unscaled(grad(scaled(loss, ctx.loss_scale), arch), ctx.loss_scale)
    return grads
