"""Dataset loaders: digits, CIFAR from hand-written pickle batches, ImageFolder subsets, fake data, Cutout."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_cifar10
from sgl.registry.datasets import (
    Cifar10Config,
    Cifar100Config,
    DigitsConfig,
    FakeConfig,
    ImageNetFolderConfig,
)
from sgl.registry.datasets.base import Cutout, DataBundle, TensorImageDataset
from sgl.registry.task import Task

# ---------------------------------------------------------------- digits


def _split_key(ds: TensorImageDataset) -> torch.Tensor:
    return ds.images.flatten(1).sum(1)


def test_digits_default_shapes_and_sizes() -> None:
    cfg = DigitsConfig()
    bundle = cfg.build(Path("."), seed=0)
    assert isinstance(bundle, DataBundle)
    assert bundle.task == Task(num_classes=10, in_channels=1, image_size=8)
    assert len(bundle.train) == cfg.num_train() == 1797 - 359
    assert len(bundle.train) + len(bundle.test) == 1797
    image, label = bundle.train[0]
    assert image.shape == (1, 8, 8) and image.dtype == torch.float32
    assert isinstance(label, int) and 0 <= label < 10
    assert bundle.train.transform is None  # the engine's fast batched path
    assert torch.equal(torch.as_tensor(bundle.train.targets), bundle.train.labels)
    # normalised with the training part's statistics
    assert abs(float(bundle.train.images.mean())) < 1e-4
    assert abs(float(bundle.train.images.std()) - 1) < 1e-4


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.3, 0.5, 0.77])
def test_digits_train_size_matches_plan_and_is_stratified(fraction: float) -> None:
    cfg = DigitsConfig(test_fraction=fraction)
    bundle = cfg.build(Path("."), seed=3)
    assert len(bundle.train) == cfg.num_train()
    all_counts = torch.bincount(torch.cat([bundle.train.labels, bundle.test.labels]), minlength=10)
    test_counts = torch.bincount(bundle.test.labels, minlength=10)
    expected = all_counts.double() * len(bundle.test) / 1797
    assert torch.all((test_counts - expected).abs() < 1)


def test_digits_split_is_determined_by_the_seed() -> None:
    cfg = DigitsConfig()
    a, b, c = (cfg.build(Path("."), seed=s) for s in (7, 7, 8))
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(_split_key(a.test), _split_key(c.test))
    # the split ignores the global RNG
    torch.manual_seed(123)
    d = cfg.build(Path("."), seed=7)
    assert torch.equal(d.test.images, a.test.images)


def test_digits_resized_to_cifar_shape() -> None:
    bundle = DigitsConfig(size=32, channels=3).build(Path("."), seed=0)
    assert bundle.task == Task(num_classes=10, in_channels=3, image_size=32)
    image, _ = bundle.test[5]
    assert image.shape == (3, 32, 32)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_digits_cutout_is_per_item() -> None:
    bundle = DigitsConfig(size=16).build(Path("."), seed=0, cutout=8)
    assert isinstance(bundle.train.transform, Cutout)
    assert bundle.test.transform is None
    before = bundle.train.images[0].clone()
    torch.manual_seed(0)
    image, _ = bundle.train[0]
    assert (image != before).any()
    assert torch.equal(bundle.train.images[0], before)  # storage untouched


# ---------------------------------------------------------------- Cutout


def test_cutout_zeroes_a_clipped_square() -> None:
    cut = Cutout(4, generator=torch.Generator().manual_seed(0))
    img = torch.ones(3, 10, 10)
    full_squares = 0
    for _ in range(200):
        out = cut(img)
        zero = out[0] == 0
        assert torch.equal(out[0] == 0, out[2] == 0)  # same square on every channel
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4
        # the zeros are exactly the rectangle rows x cols
        assert int(zero.sum()) == len(rows) * len(cols)
        assert rows.diff().eq(1).all() and cols.diff().eq(1).all()
        full_squares += int(zero.sum()) == 16
    assert full_squares > 50
    assert torch.equal(img, torch.ones(3, 10, 10))


def test_cutout_follows_torch_seed() -> None:
    img = torch.randn(1, 12, 12)
    torch.manual_seed(5)
    a = Cutout(6)(img)
    torch.manual_seed(5)
    b = Cutout(6)(img)
    assert torch.equal(a, b)


# ---------------------------------------------------------------- CIFAR


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _write_cifar100(root: Path, n_train: int = 5, n_test: int = 3) -> np.ndarray:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    train_data = rng.integers(0, 256, (n_train, 3072), dtype=np.uint8)
    fine = [97, 3, 50, 0, 99][:n_train]
    _dump(folder / "train", {"data": train_data, "fine_labels": fine, "coarse_labels": [0] * n_train})
    test_data = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    _dump(folder / "test", {"data": test_data, "fine_labels": [1] * n_test, "coarse_labels": [0] * n_test})
    _dump(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)], "coarse_label_names": ["x"] * 20})
    return train_data


def _expected(row: np.ndarray, mean, std) -> torch.Tensor:
    image = torch.as_tensor(row.reshape(3, 32, 32), dtype=torch.float32) / 255
    return (image - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def test_cifar10_loads_written_batches(tmp_path: Path) -> None:
    from sgl.registry.datasets.cifar import CIFAR10_MEAN, CIFAR10_STD

    test_data = write_cifar10(tmp_path / "data" / "cifar")
    bundle = Cifar10Config().build(tmp_path, seed=0)  # relative root resolves against base_dir
    assert bundle.task == Task(num_classes=10, in_channels=3, image_size=32)
    assert len(bundle.train) == 15 and len(bundle.test) == 4
    assert list(bundle.train.targets[:3]) == [1, 2, 3]
    image, label = bundle.test[2]
    assert label == 2 and image.shape == (3, 32, 32)
    assert torch.allclose(image, _expected(test_data[2], CIFAR10_MEAN, CIFAR10_STD), atol=1e-6)
    train_image, _ = bundle.train[0]
    assert train_image.shape == (3, 32, 32)


def test_cifar10_train_transform_without_augmentation_is_test_transform(tmp_path: Path) -> None:
    from sgl.registry.datasets.cifar import CIFAR10_MEAN, CIFAR10_STD

    write_cifar10(tmp_path)
    bundle = Cifar10Config(root=tmp_path, augment=False).build(Path("/nonexistent"), seed=0)
    row = bundle.train.data[4].transpose(2, 0, 1).reshape(-1)  # stored HWC
    assert torch.allclose(bundle.train[4][0], _expected(row, CIFAR10_MEAN, CIFAR10_STD), atol=1e-6)


def test_cifar10_cutout_goes_last(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    bundle = Cifar10Config(root=tmp_path).build(tmp_path, seed=0, cutout=16)
    names = [type(t).__name__ for t in bundle.train.transform.transforms]
    assert names == ["RandomCrop", "RandomHorizontalFlip", "ToTensor", "Normalize", "Cutout"]
    assert [type(t).__name__ for t in bundle.test.transform.transforms] == ["ToTensor", "Normalize"]


def test_cifar_download_is_skipped_when_files_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.cifar as tv_cifar

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", no_network)
    write_cifar10(tmp_path)
    assert len(Cifar10Config(root=tmp_path, download=True).build(tmp_path, seed=0).train) == 15


def test_cifar100_loads_written_batches(tmp_path: Path) -> None:
    from sgl.registry.datasets.cifar import CIFAR100_MEAN, CIFAR100_STD

    train_data = _write_cifar100(tmp_path)
    bundle = Cifar100Config(root=tmp_path, augment=False).build(tmp_path, seed=0)
    assert bundle.task == Task(num_classes=100, in_channels=3, image_size=32)
    assert len(bundle.train) == 5 and len(bundle.test) == 3
    assert list(bundle.train.targets) == [97, 3, 50, 0, 99]
    image, label = bundle.train[0]
    assert label == 97
    assert torch.allclose(image, _expected(train_data[0], CIFAR100_MEAN, CIFAR100_STD), atol=1e-6)


def test_cifar_missing_files_say_where_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        Cifar10Config(root=Path("nowhere")).build(tmp_path, seed=0)
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in message
    assert "download: true" in message and "data_batch_1" in message

    _write_cifar100(tmp_path)
    (tmp_path / "cifar-100-python" / "test").unlink()
    with pytest.raises(FileNotFoundError, match=r"found no test\."):
        Cifar100Config(root=tmp_path).build(tmp_path, seed=0)


# ---------------------------------------------------------------- ImageFolder


def _write_image_folder(root: Path, classes=("ant", "bee", "cat"), n_train: int = 10, val=("bee", "cat")) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, names, n in (("train", classes, n_train), ("val", val, 2)):
        for name in names:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{name}_{i}.png")


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("imagenet")
    _write_image_folder(root)
    return root


def test_image_folder_full(image_root: Path) -> None:
    bundle = ImageNetFolderConfig(root=image_root, image_size=32).build(Path("."), seed=0)
    assert bundle.task == Task(num_classes=3, in_channels=3, image_size=32)
    assert len(bundle.train) == 30
    image, label = bundle.train[0]
    assert image.shape == (3, 32, 32) and label == 0
    # val/ lacks "ant", yet its labels follow train/'s numbering
    assert bundle.test.targets == [1, 1, 2, 2]
    assert bundle.test[0][0].shape == (3, 32, 32)


def test_image_folder_subset_is_per_class_and_seeded(image_root: Path) -> None:
    cfg = ImageNetFolderConfig(root=image_root, image_size=32, subset=0.3)
    a, b, c = (cfg.build(Path("."), seed=s).train for s in (1, 1, 2))
    assert np.bincount(a.targets).tolist() == [3, 3, 3]
    assert a.samples == b.samples
    assert a.samples != c.samples
    assert [s[1] for s in a.samples] == a.targets and a.imgs == a.samples
    tiny = ImageNetFolderConfig(root=image_root, image_size=32, subset=0.01).build(Path("."), seed=0).train
    assert np.bincount(tiny.targets).tolist() == [1, 1, 1]


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train"):
        ImageNetFolderConfig(root=tmp_path).build(Path("."), seed=0)
    _write_image_folder(tmp_path, classes=("ant",), n_train=1, val=("ant", "zebra"))
    with pytest.raises(ValueError, match="zebra"):
        ImageNetFolderConfig(root=tmp_path).build(Path("."), seed=0)


# ---------------------------------------------------------------- fake


def test_fake_is_seeded_and_shaped() -> None:
    cfg = FakeConfig(train_size=20, test_size=6, image_size=5, channels=2, num_classes=4)
    a, b, c = (cfg.build(Path("."), seed=s) for s in (0, 0, 1))
    assert a.task == Task(num_classes=4, in_channels=2, image_size=5)
    assert a.train.images.shape == (20, 2, 5, 5) and len(a.test) == 6
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.train.images, c.train.images)
    assert not torch.equal(a.train.images[:6], a.test.images)
    assert int(a.train.labels.max()) < 4
    assert torch.equal(a.train.targets, a.train.labels)
    assert isinstance(cfg.build(Path("."), seed=0, cutout=2).train.transform, Cutout)


def test_tensor_dataset_validates_shapes() -> None:
    with pytest.raises(ValueError):
        TensorImageDataset(torch.zeros(3, 8, 8), torch.zeros(3))
    with pytest.raises(ValueError):
        TensorImageDataset(torch.zeros(3, 1, 8, 8), torch.zeros(2))
