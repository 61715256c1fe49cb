"""Random images and labels of any shape, for tests and benchmarks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..task import Task
from .base import Cutout, DataBundle, TensorImageDataset

if TYPE_CHECKING:
    from . import FakeConfig


def load_fake_bundle(cfg: FakeConfig, *, seed: int, cutout: int = 0) -> DataBundle:
    """Standard-normal images and uniform labels, all from one generator seeded with ``seed``.

    The training set is drawn first and the test set after it, so the two never coincide and the
    same config and seed always give the same data, whatever the global RNG state.
    """
    generator = torch.Generator().manual_seed(seed)
    shape = (cfg.channels, cfg.image_size, cfg.image_size)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.randn((n, *shape), generator=generator)
        labels = torch.randint(cfg.num_classes, (n,), generator=generator)
        return images, labels

    train_images, train_labels = draw(cfg.train_size)
    test_images, test_labels = draw(cfg.test_size)
    transform = Cutout(cutout) if cutout > 0 else None
    train = TensorImageDataset(train_images, train_labels, transform=transform)
    return DataBundle(
        train=train,
        train_eval=train.without_transform(),
        test=TensorImageDataset(test_images, test_labels),
        task=Task(num_classes=cfg.num_classes, in_channels=cfg.channels, image_size=cfg.image_size),
    )
