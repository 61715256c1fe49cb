"""Datasets a spec can name (configs here; loading code beside).

``build`` returns a ``DataBundle``: the training set (with the dataset's standard augmentation),
the test set (evaluation transform) and the ``Task``. The engine splits the training set into
train / val / unlabeled, deterministically from the seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, PositiveInt

from ..core import ComponentConfig, PathField, register

if TYPE_CHECKING:
    from .base import DataBundle


class DatasetConfig(ComponentConfig):
    def build(self, base_dir: Path, *, seed: int, cutout: int = 0) -> DataBundle:
        """Load the data. Relative roots resolve against ``base_dir`` (the spec's folder)."""
        raise NotImplementedError

    def num_train(self) -> int | None:
        """Size of the training set when known without loading it (for planning)."""
        return None

    def input_shape(self) -> tuple[int, int] | None:
        """(channels, image size) of its images when known without loading them (for planning)."""
        return None

    def missing(self, base_dir: Path) -> str | None:
        """Where the data's files must go when they are not there (None: there, or none to read);
        checked without reading them, so `sgl validate` says it and `sgl run` refuses before anything."""
        return None


def _root(root: Path, base_dir: Path) -> Path:
    """A configured root as the loaders resolve it: ``~`` expanded, relative to the spec's folder."""
    path = Path(root).expanduser()
    return path if path.is_absolute() else Path(base_dir) / path


def _is(test: str, path: Path) -> bool:
    """``path.is_file()`` / ``is_dir()`` that says False for a path it cannot even look at (too long, no access)."""
    try:
        return getattr(path, test)()
    except OSError:
        return False


def _exists(path: Path) -> bool:
    try:
        return path.exists() or path.is_symlink()
    except OSError:
        return False


@register("dataset", "digits")
class DigitsConfig(DatasetConfig):
    """scikit-learn's 1,797 handwritten 8x8 digits: real data that ships inside the wheel, no download."""

    name: Literal["digits"] = "digits"
    size: PositiveInt = Field(
        8, le=512, description="Resize the images to size x size (8 keeps them as they are; at most 512)."
    )
    channels: Literal[1, 3] = Field(1, description="1 (grey) or 3 (grey repeated, CIFAR-shaped).")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="Held out as the test set, stratified, from the seed.")

    def build(self, base_dir: Path, *, seed: int, cutout: int = 0) -> DataBundle:
        from .digits import load_digits_bundle

        return load_digits_bundle(self, seed=seed, cutout=cutout)

    def num_train(self) -> int:
        return 1797 - round(1797 * self.test_fraction)

    def input_shape(self) -> tuple[int, int]:
        return self.channels, self.size


class CifarConfig(DatasetConfig):
    root: PathField = Field(Path("data/cifar"), description="Folder holding the CIFAR python batches (relative to the spec).")
    download: bool = Field(False, description="Download into root when missing (needs a network).")
    augment: bool = Field(True, description="Random crop with 4-pixel padding and horizontal flip for training.")

    #: torchvision's layout: the folder the archive extracts to, its files, the archive.
    folder: ClassVar[str]
    files: ClassVar[tuple[str, ...]]
    archive: ClassVar[str]

    def missing(self, base_dir: Path) -> str | None:
        root = _root(self.root, base_dir)
        if _exists(root) and not _is("is_dir", root):
            return f"{self.name}: {root} (data.dataset.root) is not a folder"
        if self.download:
            return None
        folder = root / self.folder
        absent = [name for name in self.files if not _is("is_file", folder / name)]
        if not absent:
            return None
        return (f"{self.name}: {folder} has no {', '.join(absent)} (as regular files); place the python-version "
                f"batches there ({self.archive}, extracted into {root}), or set download: true to fetch them")

    def build(self, base_dir: Path, *, seed: int, cutout: int = 0) -> DataBundle:
        from .cifar import load_cifar_bundle

        return load_cifar_bundle(self, base_dir=base_dir, cutout=cutout)

    def num_train(self) -> int:
        return 50_000

    def input_shape(self) -> tuple[int, int]:
        return 3, 32


@register("dataset", "cifar10")
class Cifar10Config(CifarConfig):
    """CIFAR-10 through torchvision, normalised as DARTS does."""

    name: Literal["cifar10"] = "cifar10"
    folder: ClassVar[str] = "cifar-10-batches-py"
    files: ClassVar[tuple[str, ...]] = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
    archive: ClassVar[str] = "cifar-10-python.tar.gz"


@register("dataset", "cifar100")
class Cifar100Config(CifarConfig):
    """CIFAR-100 through torchvision, normalised as DARTS does."""

    name: Literal["cifar100"] = "cifar100"
    folder: ClassVar[str] = "cifar-100-python"
    files: ClassVar[tuple[str, ...]] = ("train", "test", "meta")
    archive: ClassVar[str] = "cifar-100-python.tar.gz"


@register("dataset", "imagenet_folder")
class ImageNetFolderConfig(DatasetConfig):
    """An ImageNet-layout folder (root/train/<class>/*, root/val/<class>/*) read with ImageFolder."""

    name: Literal["imagenet_folder"] = "imagenet_folder"
    root: PathField = Field(Path("data/imagenet"), description="Folder with train/ and val/ (relative to the spec).")
    subset: float | None = Field(
        None, gt=0, le=1, description="Keep this fraction of training images per class (0.1, 0.025), drawn from the seed."
    )
    image_size: PositiveInt = Field(224, le=4096, description="Training crop and evaluation centre-crop size (at most 4096).")

    def missing(self, base_dir: Path) -> str | None:
        root = _root(self.root, base_dir)
        absent = [str(root / part) for part in ("train", "val") if not _is("is_dir", root / part)]
        if not absent:
            return None
        return (f"imagenet_folder: no folder {' or '.join(absent)}; place the images as {root}/train/<class>/* "
                f"and {root}/val/<class>/*")

    def build(self, base_dir: Path, *, seed: int, cutout: int = 0) -> DataBundle:
        from .imagenet import load_imagenet_bundle

        return load_imagenet_bundle(self, base_dir=base_dir, seed=seed, cutout=cutout)

    def input_shape(self) -> tuple[int, int]:
        return 3, self.image_size


@register("dataset", "fake")
class FakeConfig(DatasetConfig):
    """Random images and labels of any shape, generated from the seed (for tests and benchmarks)."""

    name: Literal["fake"] = "fake"
    train_size: PositiveInt = Field(256, le=1_000_000, description="Training images (at most 1,000,000).")
    test_size: PositiveInt = Field(64, le=1_000_000, description="Test images (at most 1,000,000).")
    image_size: PositiveInt = Field(32, le=4096, description="Height and width (at most 4096).")
    channels: PositiveInt = Field(3, le=64, description="Channels (at most 64).")
    num_classes: PositiveInt = Field(10, le=100_000, description="Classes (at most 100,000).")

    def build(self, base_dir: Path, *, seed: int, cutout: int = 0) -> DataBundle:
        from .fake import load_fake_bundle

        return load_fake_bundle(self, seed=seed, cutout=cutout)

    def num_train(self) -> int:
        return self.train_size

    def input_shape(self) -> tuple[int, int]:
        return self.channels, self.image_size
