"""Whole-batch augmentation on the device (``registry/datasets/batched.py``): crop, flip, Cutout and
normalisation as torchvision's per-image transforms, with their distributions; CIFAR's images held on
the device and its evaluation view for D_val."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision import transforms

from conftest import write_cifar10
from sgl.registry.datasets import Cifar10Config
from sgl.registry.datasets.base import Cutout
from sgl.registry.datasets.batched import BatchAugment, cutout, random_crop, random_flip

MEAN, STD = (0.49, 0.48, 0.44), (0.25, 0.24, 0.26)


def _bytes(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randint(256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def _twin(seed: int = 3) -> tuple[torch.Generator, torch.Generator]:
    return torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)


def test_batched_crop_is_torchvisions_crop_of_the_padded_image():
    images = _bytes()
    mine, theirs = _twin()
    cropped = random_crop(images, 4, mine)
    top, left = torch.randint(9, (6,), generator=theirs), torch.randint(9, (6,), generator=theirs)
    for i in range(6):
        padded = transforms.functional.pad(images[i], [4, 4, 4, 4])
        assert torch.equal(cropped[i], transforms.functional.crop(padded, int(top[i]), int(left[i]), 32, 32))


def test_batched_flip_and_cutout_follow_their_draws():
    images = torch.randn(6, 3, 8, 8)
    mine, theirs = _twin()
    flipped = random_flip(images, mine)
    coins = torch.randint(2, (6,), generator=theirs).bool()
    for i in range(6):
        assert torch.equal(flipped[i], images[i].flip(-1) if coins[i] else images[i])
    mine, theirs = _twin()
    holes = cutout(images, 4, mine)
    ys, xs = torch.randint(8, (6,), generator=theirs), torch.randint(8, (6,), generator=theirs)
    for i in range(6):
        expected = images[i].clone()
        y, x = int(ys[i]), int(xs[i])
        expected[..., max(y - 2, 0):min(y + 2, 8), max(x - 2, 0):min(x + 2, 8)] = 0.0
        assert torch.equal(holes[i], expected)


def test_batched_normalisation_is_to_tensor_then_normalize():
    images = _bytes(2)
    per_image = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    batch = BatchAugment(mean=MEAN, std=STD).normalise(images)
    for i in range(2):
        expected = per_image(images[i].permute(1, 2, 0).numpy())
        torch.testing.assert_close(batch[i], expected, rtol=1e-6, atol=1e-6)


def test_batched_draws_have_the_per_image_distributions():
    generator = torch.Generator().manual_seed(0)
    images = torch.arange(10, dtype=torch.float32).view(1, 1, 1, 10).expand(4000, 1, 10, 10).contiguous()
    shifted = random_crop(images, 4, generator)
    # the crop's left offset is uniform over 0..8: the first visible column is 0 (padding) or a shift
    offsets = (shifted[:, 0, 5, 0] - 0).clamp(min=0)
    assert set(offsets.unique().tolist()) <= set(range(10))
    flips = random_flip(torch.zeros(4000, 1, 2, 2).index_fill_(3, torch.tensor([0]), 1.0), generator)[:, 0, 0, 1]
    assert 0.45 < float(flips.mean()) < 0.55
    holes = cutout(torch.ones(4000, 1, 32, 32), 16, generator)
    zeroed = (holes == 0).flatten(1).sum(1).float()
    assert float(zeroed.max()) == 256 and float(zeroed.min()) >= 64  # 16x16, clipped at a corner to 8x8


def test_cifar_offers_its_images_on_the_device_and_an_evaluation_view(tmp_path: Path):
    write_cifar10(tmp_path / "cifar", per_batch=8)
    bundle = Cifar10Config(root=tmp_path / "cifar").build(tmp_path, seed=0, cutout=4)
    data = bundle.train.in_memory()
    assert data.images.dtype == torch.uint8 and data.images.shape == (40, 3, 32, 32)
    assert data.augment == BatchAugment(pad=4, flip=True, mean=data.augment.mean, std=data.augment.std, cutout=4)
    assert torch.equal(data.labels, torch.as_tensor(bundle.train.targets))
    # the evaluation view: the same images, no augmentation (D_val's accuracy is measured through it)
    image, _ = bundle.train_eval[0]
    torch.testing.assert_close(image, bundle.train_eval.batch_augment.normalise(data.images[:1])[0], rtol=1e-6, atol=1e-6)
    assert not any(isinstance(t, (Cutout, transforms.RandomCrop)) for t in bundle.train_eval.transform.transforms)
