"""scikit-learn's handwritten digits (1,797 real 8x8 images, 10 classes): the data that needs no download."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from ..task import Task
from .base import Cutout, DataBundle, TensorImageDataset

if TYPE_CHECKING:
    from . import DigitsConfig

NUM_CLASSES = 10


def stratified_holdout(labels: Tensor, n_holdout: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Split indices into (kept, held out) with exactly ``n_holdout`` held out, stratified by label.

    Per-class quotas use largest remainders so they sum to ``n_holdout`` exactly (the planner's
    ``num_train()`` promises that size); ties go to the smaller class index, so the split depends
    on the generator alone. Both index tensors come back sorted.
    """
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * n_holdout / labels.numel()
    quota = exact.floor().long()
    short = n_holdout - int(quota.sum())
    if short:
        # stable sort: equal remainders keep class order
        order = torch.sort(exact - quota.double(), descending=True, stable=True).indices
        quota[order[:short]] += 1
    held = []
    for c, q in zip(classes.tolist(), quota.tolist()):
        members = torch.nonzero(labels == c).flatten()
        held.append(members[torch.randperm(members.numel(), generator=generator)[:q]])
    held_idx = torch.sort(torch.cat(held)).values
    keep = torch.ones(labels.numel(), dtype=torch.bool)
    keep[held_idx] = False
    return torch.nonzero(keep).flatten(), held_idx


def load_digits_bundle(cfg: DigitsConfig, *, seed: int, cutout: int = 0) -> DataBundle:
    """Digits as tensors: [0, 16] pixels scaled to [0, 1], resized, channel-repeated, normalised.

    Normalisation uses the mean and std of the *training part* after resizing (one value for all
    channels, which are copies of the grey one) — as CIFAR's constants come from its training set,
    and so the test images never inform preprocessing. Train items are then zero-mean, unit-std.
    """
    from sklearn.datasets import load_digits

    raw = load_digits()
    images = torch.as_tensor(raw.images, dtype=torch.float32).unsqueeze(1) / 16.0  # [N, 1, 8, 8]
    labels = torch.as_tensor(raw.target, dtype=torch.long)

    if cfg.size != images.shape[-1]:
        # antialias only matters when shrinking; upsampling is plain bilinear either way
        images = F.interpolate(images, size=(cfg.size, cfg.size), mode="bilinear", align_corners=False, antialias=True)
    if cfg.channels == 3:
        images = images.repeat(1, 3, 1, 1)

    n_test = round(labels.numel() * cfg.test_fraction)  # same expression as DigitsConfig.num_train
    generator = torch.Generator().manual_seed(seed)
    train_idx, test_idx = stratified_holdout(labels, n_test, generator)

    train_images = images[train_idx]
    mean, std = train_images.mean(), train_images.std()
    images = (images - mean) / std

    transform = Cutout(cutout) if cutout > 0 else None
    train = TensorImageDataset(images[train_idx].contiguous(), labels[train_idx], transform=transform)
    return DataBundle(
        train=train,
        train_eval=train.without_transform(),
        test=TensorImageDataset(images[test_idx].contiguous(), labels[test_idx]),
        task=Task(num_classes=NUM_CLASSES, in_channels=cfg.channels, image_size=cfg.size),
    )
