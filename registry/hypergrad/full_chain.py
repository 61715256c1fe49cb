"""darts_unrolled plus the path through the pseudo-labels: A_j → W_j' → q_j → V_k' → L_val,k.

docs/hypergradients.md §3 derives it. In short, for a target j and every learner k that learns
from j (searchable or fixed: every validation loss of the group counts, the paper's stage 3):

``c_kj = (∂V_k'/∂q_j)ᵀ ∇_{V'} L_val,k = −∇_{q_j}(∇_V L2_k · u_k)`` comes out of the same mixed
product that gives DARTS' term (the labels are one more input of it: no extra pass), and then
``d/dA_j ⟨Σ_k c_kj, q_j(W_j'(A_j), A_j)⟩`` is DARTS' formula once more, one level down: the outer
loss is ⟨c_j, q_j⟩, the inner loss is W_j's training CE, the step is W's SGD step.

Both mixed products use the spec's ``hessian``. The labels are differentiable only inside this
function (leaves made here); what the executor's PL step produces is untouched.
"""

from __future__ import annotations

import torch

from .base import ArchContext
from .unrolled import unrolled_passes
from .virtual_step import labeler_term, labelers_needed, pseudo_active, source_term, virtual_labels


def full_chain(ctx: ArchContext, r: float = 0.01, hessian: str = "finite_difference") -> dict[str, list[torch.Tensor]]:
    targets = set(ctx.targets)
    sources = list(ctx.targets)
    if pseudo_active(ctx):
        # learners whose validation loss depends on a target's A through that target's labels
        sources += [k for k in ctx.learners if k not in targets and targets & set(ctx.peers.get(k, []))]
    needed = labelers_needed(ctx, sources)
    labelers = virtual_labels(ctx, needed, chain=[j for j in needed if j in targets], hessian=hessian)

    grads: dict[str, list[torch.Tensor]] = {}
    cotangents: dict[str, torch.Tensor] = {}
    for k in sources:
        chain = [j for j in ctx.peers.get(k, []) if j in labelers and labelers[j].q_graph is not None]
        g_arch, c = source_term(ctx, k, labelers, r=r, hessian=hessian, chain=chain)
        if g_arch is not None:
            grads[k] = g_arch
        for j, c_kj in c.items():
            cotangents[j] = c_kj if j not in cotangents else cotangents[j] + c_kj
    for j, c_j in cotangents.items():
        extra = labeler_term(ctx, labelers[j], c_j, r=r, hessian=hessian)
        grads[j] = [a + b for a, b in zip(grads[j], extra)]
    return grads


def full_chain_passes(peers: int, hessian: str) -> dict[str, int]:
    """darts_unrolled's passes plus, for a learner that labels for its peers: the backward from
    ⟨c_j, q_j⟩ through the kept label graph (1B) and the mixed product on W's training loss
    (finite differences 2F+2B, hvp one double backward 1B). The cotangents c_kj are free."""
    passes = unrolled_passes(peers, hessian)
    if peers > 0:
        passes["backward"] += 1
        if hessian == "hvp":
            passes["backward"] += 1
        else:
            passes["forward"] += 2
            passes["backward"] += 2
    return passes
