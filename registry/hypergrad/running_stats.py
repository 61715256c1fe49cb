"""``running_stats: update`` for the methods with a virtual step: V's BatchNorm statistics after the A-step.

The SGL authors' first-order A-step (DARTS' ``_backward_step``) runs V forward in train mode on the
validation batch, so V's running statistics absorb one validation batch per A-step. The virtual-step
methods run many passes (at V, at V ± εu, at V' on x_val), all on cloned buffers. With ``update``
they afterwards run exactly one forward of every target's V, with its own module, current weights and
mode, on x_val: the statistics end as the first-order ``update`` leaves them, whatever ``hessian``
is. DARTS' own second-order code leaves something else — the forwards of its Hessian-vector product
at the perturbed weights V± on the *training* batch — an artefact of its implementation, which we
do not reproduce.
"""

from __future__ import annotations

import torch

from .base import ArchContext
from .autograd import unwrap


def forward_on_val(ctx: ArchContext) -> None:
    """One forward of every target's V on x_val, without autograd (its output is not needed)."""
    with torch.no_grad():
        for name in ctx.targets:
            learner = ctx.learners[name]
            # The bare module: a DDP wrapper would broadcast buffers (a collective) on forward.
            with ctx.autocast():
                learner.logits(unwrap(learner.v_net), ctx.x_val)
