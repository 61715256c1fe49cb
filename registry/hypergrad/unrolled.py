"""DARTS' second-order architecture gradient, through one virtual V step on the stage-2 loss.

For every target k (docs/hypergradients.md §2):
``∇_{A_k} L_val(V_k', A_k) − ∇_{A_k}(∇_V L2_k · u_k)``, ``u_k = ξ_V ⊙ ∇_{V'} L_val``, the mixed
product by DARTS' central difference (``hessian="finite_difference"``, ε = r/‖u‖) or by a double
backward (``hessian="hvp"``). The peers' labels q_j = label(W_j'(x_u)) come from their virtual W
step — the labels this iteration's V step will really use — and are held constant here;
``full_chain`` differentiates through them.
"""

from __future__ import annotations

import torch

from .base import ArchContext
from .virtual_step import labelers_needed, source_term, virtual_labels


def darts_unrolled(ctx: ArchContext, r: float = 0.01, hessian: str = "finite_difference") -> dict[str, list[torch.Tensor]]:
    labelers = virtual_labels(ctx, labelers_needed(ctx, ctx.targets), hessian=hessian)
    grads = {}
    for k in ctx.targets:
        g_arch, _ = source_term(ctx, k, labelers, r=r, hessian=hessian)
        assert g_arch is not None, f"{k} is a target but has no architecture"
        grads[k] = g_arch
    return grads


def unrolled_passes(peers: int, hessian: str) -> dict[str, int]:
    """Network passes (one batch each) per searchable learner and iteration; see docs/hypergradients.md §5.

    With peers: labeling (once per learner: virtual W step 1F+1B on x_tr, labels 1F on x_u),
    virtual V step (2F+2B: x_tr and x_u), L_val at V' (1F+1B), and the mixed product:
    finite differences 2×(2F+2B), hvp one double backward through the kept stage-2 graph (2B).
    Without peers (plain DARTS) the stage-2 loss is one batch.
    """
    if peers > 0:
        labels = {"forward": 2, "backward": 1}
        stage2 = 2
    else:
        labels = {"forward": 0, "backward": 0}
        stage2 = 1
    forward = labels["forward"] + stage2 + 1
    backward = labels["backward"] + stage2 + 1
    if hessian == "hvp":
        backward += stage2
    else:
        forward += 2 * stage2
        backward += 2 * stage2
    return {"forward": forward, "backward": backward}
