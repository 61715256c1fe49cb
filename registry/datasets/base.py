"""What every dataset loader returns, and the pieces the loaders share.

Datasets yield ``(image, label)`` with ``image`` a float tensor ``C x H x W`` and ``label`` an int.
Every dataset class here exposes ``targets`` (one label per item, in item order) so the engine can
split the training set stratified without reading any image.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..task import Task

if TYPE_CHECKING:
    from .batched import InMemory


@dataclass
class DataBundle:
    """A loaded dataset: ``train`` carries the dataset's standard training augmentation, ``test``
    the evaluation transform. The engine carves train / val / unlabeled out of ``train``; it
    measures accuracy on D_val through ``train_eval``, the same images with the evaluation
    transform (``train`` itself when a loader gives none)."""

    train: Dataset
    test: Dataset
    task: Task
    train_eval: Dataset | None = None


class TensorImageDataset(Dataset):
    """Images already in memory as one tensor ``[N, C, H, W]`` with labels ``[N]``.

    With ``transform`` None, ``images`` and ``labels`` *are* the data: the engine may index them
    directly in batches instead of going through ``__getitem__`` item by item, which is far faster
    for small in-memory sets. A transform (e.g. Cutout) forces the per-item path.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor | Sequence[int],
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        labels = torch.as_tensor(labels, dtype=torch.long)
        if images.dim() != 4:
            raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must be [N] with N={images.shape[0]}, got shape {tuple(labels.shape)}"
            )
        self.images = images
        self.labels = labels
        self.transform = transform

    @property
    def targets(self) -> Tensor:
        return self.labels

    def in_memory(self) -> "InMemory | None":
        """The images as one tensor with the training augmentation as a batch operation, when the
        transform is one the batch form has (none, or Cutout)."""
        from .batched import BatchAugment, InMemory

        if self.transform is None:
            return InMemory(self.images, self.labels, None)
        if isinstance(self.transform, Cutout):
            return InMemory(self.images, self.labels, BatchAugment(cutout=self.transform.length))
        return None

    def without_transform(self) -> "TensorImageDataset":
        """The same images (shared, not copied) without the training transform."""
        return TensorImageDataset(self.images, self.labels)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


class Cutout:
    """DARTS' ``utils.Cutout``: zero a ``length x length`` square centred on a uniformly drawn pixel,
    clipped at the borders (so squares near an edge are smaller). As in DARTS the side is
    ``2 * (length // 2)``, and it applies to the already-normalised tensor.

    Two deliberate differences from DARTS: the centre comes from torch's RNG (seedable with
    ``torch.manual_seed``, and re-seeded per DataLoader worker), not numpy's; and the image is
    copied, not masked in place, because ``TensorImageDataset`` hands out views of its storage.
    ``generator`` pins the draws to a private stream — beware that DataLoader workers each get a
    copy of it, and so the same squares; leave it None there.
    """

    def __init__(self, length: int, generator: torch.Generator | None = None) -> None:
        if length <= 0:
            raise ValueError(f"Cutout length must be positive, got {length}")
        self.length = length
        self.generator = generator

    def __call__(self, img: Tensor) -> Tensor:
        h, w = img.shape[-2], img.shape[-1]
        y = int(torch.randint(h, (1,), generator=self.generator))
        x = int(torch.randint(w, (1,), generator=self.generator))
        half = self.length // 2
        y1, y2 = max(y - half, 0), min(y + half, h)
        x1, x2 = max(x - half, 0), min(x + half, w)
        out = img.clone()
        out[..., y1:y2, x1:x2] = 0.0
        return out

    def __repr__(self) -> str:
        return f"Cutout(length={self.length})"


def resolve_root(root: str | Path, base_dir: str | Path) -> Path:
    """A configured root, with ``~`` expanded and relative paths taken against the spec's folder."""
    path = Path(root).expanduser()
    return path if path.is_absolute() else Path(base_dir) / path


@contextmanager
def download_lock(root: Path) -> Iterator[None]:
    """Hold ``root``'s download lock (``root/.download.lock``, flock'ed) while downloading into it:
    processes that share a data root (machines on one network disk) download one at a time, and the
    ones after the first find the files there. The kernel drops the lock of a process that dies."""
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".download.lock", "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
