"""Downloads into a data root happen once, however many processes ask at the same time (issue #19,
fault 5): processes that share a root (machines on one network disk) take its lock in turn, and the
ones after the first find the files there."""

from __future__ import annotations

import pickle
import threading
import time
from pathlib import Path

import numpy as np
import torchvision.datasets.cifar as torchvision_cifar

from sgl.registry.datasets import Cifar10Config


def _fake_download(calls: list, inside: list):
    """torchvision's download_and_extract_archive, writing the batches slowly and counting who is in."""

    def download(url, root, filename=None, md5=None):
        inside.append(1)
        calls.append(len(inside))  # how many downloads run at this moment
        time.sleep(0.3)
        folder = Path(root) / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
            data = {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [1, 2]}
            (folder / name).write_bytes(pickle.dumps(data))
        (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(c) for c in range(10)]}))
        inside.pop()

    return download


def test_processes_sharing_a_data_root_download_into_it_once(tmp_path, monkeypatch):
    calls, inside, errors = [], [], []
    monkeypatch.setattr(torchvision_cifar, "download_and_extract_archive", _fake_download(calls, inside))
    config = Cifar10Config(root=tmp_path / "shared", download=True)

    def load() -> None:
        try:
            assert len(config.build(tmp_path, seed=0).train) == 10
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert calls == [1], f"downloads at once: {calls}"
