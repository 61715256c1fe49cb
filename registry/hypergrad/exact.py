"""The reference: autograd through the virtual steps themselves. Exact, memory-hungry; for tests and
tiny problems, never the default.

The virtual iteration is the one ``darts_unrolled`` and ``full_chain`` look through (the same
``SgdStep``, losses and labeler, networks run statelessly with ``torch.func.functional_call``),
but every inner gradient is taken with ``create_graph=True`` and the total validation loss of the
group is differentiated in one backward — no hand-derived chain rule, no finite differences.
With ``chain=False`` the labels are detached (what ``darts_unrolled`` computes); with
``chain=True`` they are not (what ``full_chain`` computes).
"""

from __future__ import annotations

import torch

from .base import ArchContext
from .autograd import grad, scaled, unscaled
from .virtual_step import Functional, labelers_needed, pseudo_active, stage2, train_loss, val_loss


def exact(ctx: ArchContext, chain: bool = True) -> dict[str, list[torch.Tensor]]:
    targets = set(ctx.targets)
    sources = list(ctx.targets)
    s = ctx.loss_scale
    if chain and pseudo_active(ctx):
        sources += [k for k in ctx.learners if k not in targets and targets & set(ctx.peers.get(k, []))]

    labels = {}
    for j in labelers_needed(ctx, sources):
        model = Functional(ctx.learners[j], "w")
        differentiable = chain and j in targets
        grads = grad(scaled(train_loss(ctx, model, model.params), s), model.params, create_graph=differentiable)
        stepped = model.step(model.params, unscaled(grads, s))
        with torch.set_grad_enabled(differentiable):
            with ctx.autocast():
                logits = model(stepped, ctx.x_unlabeled)
            q, mask = ctx.pseudo_labeler.label(logits)
        labels[j] = (q if differentiable else q.detach(), None if mask is None else mask.detach())

    total = 0
    for k in sources:
        model = Functional(ctx.learners[k], "v")
        peers = [labels[j] for j in ctx.peers.get(k, []) if j in labels]
        grads = grad(scaled(stage2(ctx, model, model.params, peers), s), model.params, create_graph=True)
        total = total + val_loss(ctx, model, model.step(model.params, unscaled(grads, s)))

    arch = {k: list(ctx.learners[k].space.arch_parameters()) for k in ctx.targets}
    flat = unscaled(grad(scaled(total, s), [a for k in ctx.targets for a in arch[k]]), s)
    out, i = {}, 0
    for k in ctx.targets:
        out[k] = flat[i : i + len(arch[k])]
        i += len(arch[k])
    return out


def exact_passes(peers: int, chain: bool) -> dict[str, int]:
    """As darts_unrolled / full_chain with hvp (docs/hypergradients.md §5): the virtual steps'
    backwards are taken with create_graph and the final backward runs through all of them."""
    from .full_chain import full_chain_passes
    from .unrolled import unrolled_passes

    return (full_chain_passes if chain else unrolled_passes)(peers, "hvp")
