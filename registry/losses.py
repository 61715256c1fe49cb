"""Loss functions and pseudo-label transforms (pure tensor math)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the batch of -Σ_c q_c · log_softmax(z)_c; masked examples count as zero."""
    per_example = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1)
    if mask is not None:
        per_example = per_example * mask
    return per_example.mean()


def _confidence_mask(probs: torch.Tensor, threshold: float) -> torch.Tensor | None:
    if threshold <= 0:
        return None
    return (probs.max(dim=1).values >= threshold).to(probs.dtype)


def _at_least_float32(logits: torch.Tensor) -> torch.Tensor:
    # Labels from half-precision logits are computed in float32; float64 stays float64.
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def soft_labels(logits: torch.Tensor, temperature: float, threshold: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    probs = F.softmax(_at_least_float32(logits) / temperature, dim=1)
    return probs, _confidence_mask(probs, threshold)


def hard_labels(logits: torch.Tensor, temperature: float, threshold: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    probs = F.softmax(_at_least_float32(logits) / temperature, dim=1)
    one_hot = F.one_hot(probs.argmax(dim=1), probs.shape[1]).to(probs.dtype)
    return one_hot, _confidence_mask(probs, threshold)


def stage2_loss(
    logits_train: torch.Tensor,
    y_train: torch.Tensor,
    logits_unlabeled: torch.Tensor | None,
    pseudo: list[tuple[torch.Tensor, torch.Tensor | None]],
    w_labeled: float,
    w_pseudo: float,
) -> torch.Tensor:
    """SGL stage 2: w_lab·CE(V(x_tr), y_tr) + λ·Σ_j softCE(V(x_u), q_j) over the peers' labels q_j."""
    loss = w_labeled * F.cross_entropy(logits_train, y_train) if w_labeled else logits_train.sum() * 0
    if w_pseudo and pseudo:
        assert logits_unlabeled is not None
        for targets, mask in pseudo:
            loss = loss + w_pseudo * soft_cross_entropy(logits_unlabeled, targets, mask)
    return loss
