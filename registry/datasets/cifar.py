"""CIFAR-10 and CIFAR-100 through torchvision, with DARTS' transforms and constants.

This module imports torchvision at the top; ``CifarConfig.build`` imports it only when a spec
actually loads CIFAR, so the CLI's start-up never pays for it.

Integrity checks: torchvision verifies every extracted batch file against fixed md5 sums and
refuses anything else. We check that the files *exist* instead (``_ExistenceChecked`` below),
because users legitimately re-pack or copy the batches (and tests write tiny ones), and an md5
mismatch there says nothing useful. What is still verified: a download's archive md5
(torchvision's ``download_and_extract_archive``); what a corrupt file still produces: an error
from unpickling or reshaping, not silent garbage.

The batches are pickles, and torchvision unpickles them with ``pickle.load``, which runs whatever
code a crafted file names. We read them ourselves through ``safe_pickle.load`` (plain data and
numpy arrays only), so ``__init__`` below repeats torchvision's few lines of loading. This relies
on torchvision's private ``_check_integrity`` and ``_load_meta`` hooks and its ``train_list`` /
``test_list`` / ``meta`` layout; tests/registry/test_datasets.py exercises them, so a change shows up there.
"""

from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torchvision import datasets, transforms
from torchvision.datasets.vision import VisionDataset

from ..task import Task
from . import safe_pickle
from .base import Cutout, DataBundle, download_lock, resolve_root
from .batched import BatchAugment, InMemory

if TYPE_CHECKING:
    from . import CifarConfig

# DARTS utils._data_transforms_cifar10
CIFAR10_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR10_STD = (0.24703233, 0.24348505, 0.26158768)
# DARTS itself has no CIFAR-100 transform; these are P-DARTS' utils._data_transforms_cifar100
# (chenxin061/pdarts), the DARTS-family code that searched and evaluated on CIFAR-100.
CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)


class _ExistenceChecked:
    """Mixin for torchvision's CIFAR classes: files must exist; their md5 sums are not checked."""

    root: str
    base_folder: str
    train_list: list[list[str]]
    test_list: list[list[str]]
    meta: dict[str, str]
    classes: list[str]
    class_to_idx: dict[str, int]

    def __init__(
        self,
        root: str | Path,
        train: bool = True,
        transform: Callable[..., Any] | None = None,
        target_transform: Callable[..., Any] | None = None,
        download: bool = False,
    ) -> None:
        # torchvision's CIFAR10.__init__, reading the batches with safe_pickle instead of pickle.
        VisionDataset.__init__(self, root, transform=transform, target_transform=target_transform)
        self.train = train
        if download:
            self.download()  # type: ignore[attr-defined]  (torchvision's)
        if not self._check_integrity():
            raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")
        data, self.targets = [], []
        for name, _ in self.train_list if train else self.test_list:
            entry = safe_pickle.load(os.path.join(self.root, self.base_folder, name))
            data.append(entry["data"])
            self.targets.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
        self.data = np.vstack(data).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))  # HWC
        self._load_meta()

    @classmethod
    def required_files(cls) -> list[str]:
        names = [name for name, _ in cls.train_list + cls.test_list]
        return [*names, cls.meta["filename"]]

    def _check_integrity(self) -> bool:
        folder = os.path.join(self.root, self.base_folder)
        return all(os.path.isfile(os.path.join(folder, name)) for name in self.required_files())

    def _load_meta(self) -> None:
        path = os.path.join(self.root, self.base_folder, self.meta["filename"])
        self.classes = safe_pickle.load(path)[self.meta["key"]]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}


    batch_augment: BatchAugment | None = None  # the training transform as a batch operation

    def in_memory(self) -> InMemory | None:
        """The images as one byte tensor ``[N, 3, 32, 32]`` and the transform as a batch operation."""
        if self.batch_augment is None:
            return None
        images = torch.from_numpy(np.ascontiguousarray(self.data.transpose((0, 3, 1, 2))))
        return InMemory(images, torch.as_tensor(self.targets, dtype=torch.long), self.batch_augment)


class CIFAR10Files(_ExistenceChecked, datasets.CIFAR10):
    """torchvision's CIFAR10 accepting any batch files in the standard pickle layout."""


class CIFAR100Files(_ExistenceChecked, datasets.CIFAR100):
    """torchvision's CIFAR100 accepting any batch files in the standard pickle layout."""


_VARIANTS = {
    "cifar10": (CIFAR10Files, 10, CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (CIFAR100Files, 100, CIFAR100_MEAN, CIFAR100_STD),
}


def cifar_transforms(
    mean: tuple[float, ...], std: tuple[float, ...], *, augment: bool, cutout: int
) -> tuple[transforms.Compose, transforms.Compose]:
    """DARTS' (train, test) transforms; Cutout goes last, on the normalised tensor, as in DARTS."""
    normalize = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    augmentation = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if augment else []
    train = [*augmentation, *normalize, *([Cutout(cutout)] if cutout > 0 else [])]
    return transforms.Compose(train), transforms.Compose(normalize)


def load_cifar_bundle(cfg: CifarConfig, *, base_dir: Path, cutout: int = 0) -> DataBundle:
    cls, num_classes, mean, std = _VARIANTS[cfg.name]
    root = resolve_root(cfg.root, base_dir)
    folder = root / cls.base_folder
    missing = [name for name in cls.required_files() if not (folder / name).is_file()]
    if missing and not cfg.download:
        raise FileNotFoundError(
            f"{cfg.name}: looked in {folder} and found no {', '.join(missing)}. "
            f"Set `download: true` in the dataset section to fetch it into {root}, "
            f"or place the python-version batches ({cls.filename}, extracted) there."
        )

    train_tf, test_tf = cifar_transforms(mean, std, augment=cfg.augment, cutout=cutout)
    # download=True is a no-op when the files exist (our _check_integrity says so): of processes that
    # share the root, the first downloads under the lock and the others find the files
    with download_lock(root) if cfg.download else contextlib.nullcontext():
        train = cls(str(root), train=True, transform=train_tf, download=cfg.download)
    train.batch_augment = BatchAugment(pad=4 if cfg.augment else 0, flip=cfg.augment, mean=mean, std=std, cutout=cutout)
    train_eval = copy.copy(train)  # the same arrays, the evaluation transform
    train_eval.transform, train_eval.batch_augment = test_tf, BatchAugment(mean=mean, std=std)
    test = cls(str(root), train=False, transform=test_tf, download=False)
    test.batch_augment = BatchAugment(mean=mean, std=std)
    return DataBundle(train=train, test=test, train_eval=train_eval,
                      task=Task(num_classes=num_classes, in_channels=3, image_size=32))
