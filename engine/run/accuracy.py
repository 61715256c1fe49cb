"""Accuracy of a network on a dataset, summed over every process's share (one sync at the end)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .data import eval_batches
from .distributed import Collectives


def accuracy(forward: Callable[[torch.Tensor], torch.Tensor], dataset: Any, indices: torch.Tensor | None,
             batch_size: int, collectives: Collectives, autocast: Callable[[], Any], **source: Any) -> float:
    """Fraction of ``dataset`` (or of its ``indices``) that ``forward`` classifies right."""
    return measure(forward, dataset, indices, batch_size, collectives, autocast, **source)[0]


def measure(forward: Callable[[torch.Tensor], torch.Tensor], dataset: Any, indices: torch.Tensor | None,
            batch_size: int, collectives: Collectives, autocast: Callable[[], Any],
            with_loss: bool = False, resident: Any = None, workers: int = 0) -> tuple[float, float | None]:
    """``(accuracy, mean cross-entropy or None)`` of ``forward`` on ``dataset`` (or its ``indices``);
    batches from ``resident`` (the dataset on the device) or ``workers`` (see ``eval_batches``)."""
    device = collectives.device
    correct = torch.zeros((), device=device)
    total = torch.zeros((), device=device)
    loss = torch.zeros((), device=device)
    batches = eval_batches(dataset, indices, batch_size, device, rank=collectives.rank, world=collectives.world,
                           resident=resident, workers=workers)
    with torch.inference_mode(), autocast():
        for x, y in batches:
            logits = forward(x)
            correct += (logits.argmax(dim=1) == y).sum()
            total += y.shape[0]
            if with_loss:
                loss += F.cross_entropy(logits.float(), y, reduction="sum")
    counts = collectives.sum(torch.stack([correct, total, loss]) if with_loss else torch.stack([correct, total]))
    mean_loss = float(counts[2] / counts[1].clamp(min=1)) if with_loss else None
    return float(counts[0] / counts[1].clamp(min=1)), mean_loss


@contextmanager
def batch_statistics(module: nn.Module) -> Iterator[None]:
    """Normalise with each batch's statistics without touching the running ones, dropout off."""
    # BatchNorm layers, and fused ones that behave alike (a `track_running_stats` switch)
    norms = [m for m in module.modules() if getattr(m, "track_running_stats", False) and hasattr(m, "running_mean")]
    dropouts = [m for m in module.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    module.train()
    for m in norms:
        m.track_running_stats = False
    for m in dropouts:
        m.eval()
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True
        module.train()


@contextmanager
def running_statistics(module: nn.Module) -> Iterator[None]:
    """Evaluation mode (running statistics, no dropout), back to training mode after."""
    module.eval()
    try:
        yield
    finally:
        module.train()
