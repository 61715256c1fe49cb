"""CIFAR batches are read without running code: only plain data and numpy arrays unpickle."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from sgl.registry.datasets import safe_pickle
from sgl.registry.datasets.safe_pickle import RefusedPickle


class _RunsACommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _batch(**extra) -> dict:
    rng = np.random.default_rng(0)
    return {
        "batch_label": "training batch 1 of 5",
        "data": rng.integers(0, 256, (3, 3072), dtype=np.uint8),
        "labels": [1, 2, 3],
        "filenames": [b"a.png", b"b.png", b"c.png"],
        **extra,
    }


def test_a_pickle_calling_os_system_is_refused_and_the_command_does_not_run(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(_batch(labels=_RunsACommand(marker))))
    with pytest.raises(RefusedPickle) as info:
        safe_pickle.load(path)
    assert str(info.value).startswith(f"{path}: refused to load {os.system.__module__}.system: ")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_numpy_arrays_and_plain_data_load_at_every_protocol(tmp_path, protocol):
    batch = _batch(extra_scalar=np.int64(7), floats=np.arange(6, dtype=np.float32).reshape(2, 3))
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    loaded = safe_pickle.load(path)
    assert np.array_equal(loaded["data"], batch["data"]) and loaded["data"].dtype == np.uint8
    assert np.array_equal(loaded["floats"], batch["floats"]) and loaded["extra_scalar"] == 7
    assert loaded["labels"] == [1, 2, 3] and loaded["filenames"] == [b"a.png", b"b.png", b"c.png"]


@pytest.mark.parametrize("protocol", [0, 2])
def test_numpy_1x_global_names_load_too(tmp_path, protocol):
    """Batches pickled under numpy 1.x name numpy.core.multiarray (2.x: numpy._core.multiarray).

    The official CIFAR batches are protocol 2 (Python 2's cPickle), whose globals are plain text
    lines, so renaming them in the bytes makes the other numpy's pickle."""
    data = np.arange(12, dtype=np.uint8).reshape(3, 4)
    raw = pickle.dumps({"data": data}, protocol=protocol)
    other = raw.replace(b"numpy._core.", b"numpy.core.") if b"numpy._core." in raw else raw.replace(b"numpy.core.", b"numpy._core.")
    assert other != raw
    for blob in (raw, other):
        path = tmp_path / "batch"
        path.write_bytes(blob)
        assert np.array_equal(safe_pickle.load(path)["data"], data)


def test_codecs_encode_is_admitted_only_as_latin1(tmp_path):
    # Protocols 0-2 write bytes as _codecs.encode(text, 'latin1'); any other codec is refused.
    raw = pickle.dumps({"x": b"\x00\xff"}, protocol=2)
    assert b"_codecs" in raw and b"latin1" in raw
    path = tmp_path / "batch"
    path.write_bytes(raw.replace(b"latin1", b"rot_13"))
    with pytest.raises(RefusedPickle, match=rf"^{path}: _codecs.encode with encoding 'rot_13'"):
        safe_pickle.load(path)


def test_other_globals_are_refused_by_name(tmp_path):
    path = tmp_path / "meta"
    path.write_bytes(pickle.dumps({"label_names": [pickle.loads]}))
    with pytest.raises(RefusedPickle, match=r"refused to load _pickle\.loads"):
        safe_pickle.load(path)


def test_a_truncated_batch_is_a_clear_error(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(_batch())[:50])
    with pytest.raises(pickle.UnpicklingError, match=rf"^{path}: not a readable CIFAR batch"):
        safe_pickle.load(path)


def test_cifar10_dataset_refuses_a_crafted_batch(tmp_path):
    from sgl.registry.datasets import Cifar10Config

    marker = tmp_path / "ran"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(_batch()))
    (folder / "data_batch_3").write_bytes(pickle.dumps(_batch(labels=_RunsACommand(marker))))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    with pytest.raises(RefusedPickle, match="data_batch_3: refused to load"):
        Cifar10Config(root=tmp_path).build(tmp_path, seed=0)
    assert not marker.exists()
    # The meta file goes through the same reader.
    (folder / "data_batch_3").write_bytes(pickle.dumps(_batch()))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": _RunsACommand(marker)}))
    with pytest.raises(RefusedPickle, match="batches.meta: refused to load"):
        Cifar10Config(root=tmp_path).build(tmp_path, seed=0)
    assert not marker.exists()
