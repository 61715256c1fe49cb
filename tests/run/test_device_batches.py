"""Batches made on the device (``data.batches: device``): seeded per position, resumable, sharded by
rank, a search on them resumes bit for bit; and accuracy on D_val measured every few epochs or on a
subset (``val_every``, ``val_subset``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import BASE_SPEC, assert_same_run, build_spec, merged, run_in, write_cifar10
from sgl.engine.run.data import BatchStream
from sgl.registry.datasets.batched import BatchAugment, InMemory

MEAN, STD = (0.49, 0.48, 0.44), (0.25, 0.24, 0.26)


def _bytes(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def _resident_stream(data: InMemory, **kwargs) -> BatchStream:
    return BatchStream(torch.utils.data.TensorDataset(data.images, data.labels), torch.arange(len(data.labels)), 16,
                       seed=5, resident=data, **kwargs)


def test_device_batches_are_seeded_per_position_and_resume_exactly():
    data = InMemory(_bytes(64), torch.arange(64) % 10, BatchAugment(pad=4, flip=True, mean=MEAN, std=STD, cutout=8))
    a, b = _resident_stream(data), _resident_stream(data)
    first = [a.next() for _ in range(6)]
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(first, (b.next() for _ in range(6))))
    c = _resident_stream(data)
    for _ in range(3):
        c.next()
    saved = c.state_dict()
    d = _resident_stream(data)
    d.load_state_dict(saved)
    assert all(torch.equal(d.next()[0], x) for x, _ in first[3:])
    ranks = [_resident_stream(data, rank=r, world=2).next()[0] for r in (0, 1)]
    assert not torch.equal(*ranks)


#: Two DARTS learners on hand-written CIFAR-10 batches (40 images, tests/conftest.py's write_cifar10).
ON_CIFAR = merged(BASE_SPEC, {"name": "data_path", "seed": 3,
                              "data": {"dataset": {"name": "cifar10", "root": "cifar"}, "batch_size": 8, "split": {"train": 0.5, "val": 0.5}},
                              "run": {"log_every": 2}})


def _run(tmp_path: Path, name: str, batches: str = "device", data: dict | None = None, epochs: int = 2, **options) -> Path:
    if not (tmp_path / "cifar").exists():
        write_cifar10(tmp_path / "cifar", per_batch=8)
    spec = build_spec(tmp_path / f"{name}.yaml", ON_CIFAR, data={"batches": batches, **(data or {})},
                      stages=[{"name": "search", "epochs": epochs, "steps": ["A", "W", "PL", "V"]}])
    return run_in(spec, tmp_path / name, **options)


def test_a_search_on_device_batches_resumes_bit_identically(tmp_path):
    from sgl.engine.errors import Interrupted
    from sgl.engine.run.executor import RunOptions
    from sgl.engine.rundir.session import resume_run

    straight = _run(tmp_path, "straight")
    with pytest.raises(Interrupted):
        _run(tmp_path, "stopped", stop_after_epochs=1)
    resume_run(tmp_path / "stopped", RunOptions(progress=False))
    assert_same_run(straight, tmp_path / "stopped")


def test_accuracy_on_d_val_every_few_epochs_and_on_a_subset(tmp_path, monkeypatch):
    from sgl.engine.run.runtime import Runtime

    seen = []
    real = Runtime.network_accuracy

    def counting(self, learner, net, dataset, indices, with_loss=False):
        seen.append(None if indices is None else len(indices))
        return real(self, learner, net, dataset, indices, with_loss)

    monkeypatch.setattr(Runtime, "network_accuracy", counting)
    run_dir = _run(tmp_path, "sparse", batches="per_image", data={"val_every": 2, "val_subset": 5}, epochs=3)
    epochs = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines() if '"kind": "epoch"' in l]
    measured = sorted({r["epoch"] for r in epochs if "val/V/acc" in r})
    assert measured == [1, 2]  # every second epoch, and the last
    assert set(n for n in seen if n is not None) == {5}
