"""ImageNet-layout folders (root/train/<class>/*, root/val/<class>/*) read with torchvision's ImageFolder."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torchvision import datasets, transforms

from ..task import Task
from .base import Cutout, DataBundle, resolve_root

if TYPE_CHECKING:
    from . import ImageNetFolderConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageFolderWithClasses(datasets.ImageFolder):
    """An ImageFolder whose class list is given, not read from its own sub-folders.

    The validation folder must number classes as the training folder does; ImageFolder numbers
    whatever folders it finds, so a val/ missing one class would silently shift every label after
    it. Classes with no images here are allowed (a small val/ need not cover them all).
    """

    def __init__(self, root: str | Path, classes: list[str], **kwargs: Any) -> None:
        self._given_classes = list(classes)
        super().__init__(str(root), allow_empty=True, **kwargs)

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        return self._given_classes, {name: i for i, name in enumerate(self._given_classes)}


def imagenet_transforms(image_size: int, *, cutout: int) -> tuple[transforms.Compose, transforms.Compose]:
    """DARTS' ImageNet (train, eval) transforms, scaled to ``image_size`` (224 -> resize 256)."""
    normalize = [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    train = [
        transforms.RandomResizedCrop(image_size),
        transforms.RandomHorizontalFlip(),
        transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2),
        *normalize,
        *([Cutout(cutout)] if cutout > 0 else []),
    ]
    evaluation = [transforms.Resize(int(image_size * 256 / 224)), transforms.CenterCrop(image_size), *normalize]
    return transforms.Compose(train), transforms.Compose(evaluation)


def per_class_subset(targets: list[int], fraction: float, generator: torch.Generator) -> list[int]:
    """Indices keeping ``round(fraction * n_c)`` (at least 1) items of each class, drawn from the
    generator, in ascending order. Classes are visited in label order so the draw is reproducible."""
    labels = torch.as_tensor(targets, dtype=torch.long)
    kept = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        n = max(1, round(fraction * members.numel()))
        kept.append(members[torch.randperm(members.numel(), generator=generator)[:n]])
    return torch.sort(torch.cat(kept)).values.tolist()


def load_imagenet_bundle(cfg: ImageNetFolderConfig, *, base_dir: Path, seed: int, cutout: int = 0) -> DataBundle:
    root = resolve_root(cfg.root, base_dir)
    train_dir, val_dir = root / "train", root / "val"
    for folder in (train_dir, val_dir):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"imagenet_folder: no folder {folder}; expected {root}/train/<class>/* and {root}/val/<class>/*"
            )

    train_tf, eval_tf = imagenet_transforms(cfg.image_size, cutout=cutout)
    train = datasets.ImageFolder(str(train_dir), transform=train_tf)
    unknown = sorted(p.name for p in val_dir.iterdir() if p.is_dir() and p.name not in train.class_to_idx)
    if unknown:
        raise ValueError(f"imagenet_folder: {val_dir} has classes absent from {train_dir}: {', '.join(unknown[:10])}")
    test = ImageFolderWithClasses(val_dir, train.classes, transform=eval_tf)

    if cfg.subset is not None and cfg.subset < 1:
        keep = per_class_subset(train.targets, cfg.subset, torch.Generator().manual_seed(seed))
        # filter in place: stays an ImageFolder, so `targets`, `classes` and pickling still work
        train.samples = [train.samples[i] for i in keep]
        train.imgs = train.samples
        train.targets = [label for _, label in train.samples]

    task = Task(num_classes=len(train.classes), in_channels=3, image_size=cfg.image_size)
    train_eval = copy.copy(train)  # the same file list, the evaluation transform
    train_eval.transform = eval_tf
    return DataBundle(train=train, test=test, task=task, train_eval=train_eval)
