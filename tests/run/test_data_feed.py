"""A data path that never stalls the device (issue #19): the device copies of datasets are the
right ones and leave with their stage (fault 3), accuracy is measured from whole batches, not image
by image (fault 6), no batch waits for a copy from the host (fault 7), and DataLoader workers are
the machine's CPUs shared among its processes and streams (fault 8)."""

from __future__ import annotations

import gc
import os
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, default_collate

from conftest import write_spec
from sgl.engine.run.accuracy import measure
from sgl.engine.run.data import BatchStream, eval_batches
from sgl.engine.run.runner import build_runner
from sgl.registry.datasets import Cifar10Config, DigitsConfig
from sgl.registry.datasets.batched import BatchAugment, InMemory

SPEC = """
name: feed
seed: 2
data: {dataset: digits, batch_size: 16, split: {train: 0.1, val: 0.1}, batches: device}
learners:
  alice: {kind: darts, channels: 4, layers: 3, nodes: 2}
stages:
  - {name: search, epochs: 1, steps: [A, W]}
  - {name: derive}
  - {name: evaluate, learner: alice, epochs: 1, channels: 4, layers: 3, batch_size: 32, cutout: 16}
run: {cpu: true}
"""


def write_cifar(root: Path, per_batch: int = 8, test: int = 20) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", test)]:
        data = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, n).tolist()}
        (folder / name).write_bytes(pickle.dumps(data))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(c) for c in range(10)]}))


class _One:
    """Collectives of one process (what ``measure`` needs)."""

    def __init__(self, rank: int = 0, world: int = 1) -> None:
        self.rank, self.world, self.device = rank, world, torch.device("cpu")

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        return values


# --------------------------------------------------------------------------- fault 3: the device copies


def test_a_dataset_built_later_never_gets_an_earlier_datasets_device_copy(tmp_path):
    runtime = build_runner(write_spec(tmp_path, SPEC)).runtime
    wrong = []
    for trial in range(50):
        # an evaluation stage's data: built anew, with the protocol's cutout or none
        length = 16 if trial % 2 else 0
        bundle = DigitsConfig().build(tmp_path, seed=2, cutout=length)
        data = runtime.resident(bundle.train)
        if (data.augment.cutout if data.augment is not None else 0) != length:
            wrong.append(trial)
        del bundle, data
        gc.collect()  # the next dataset may take the address of this one
    assert wrong == [], f"trials given another dataset's device copy: {wrong}"


def test_an_evaluation_stage_frees_its_device_copies_when_it_ends(tmp_path):
    from sgl.engine.run.evaluate import EvaluationStage

    runner = build_runner(write_spec(tmp_path, SPEC))
    runtime = runner.runtime
    kept = dict(runtime.resident_data)  # the search's data stays for the run

    class Sink:
        def model(self, stage, package):
            return f"models/{stage}.pt"

        def architecture_file(self, learner):
            return f"genotypes/{learner}.json"

    stage = next(s for s in runner.plan.stages if s.name == "evaluate")
    work = EvaluationStage(runtime, stage, Sink(), progress=None)
    assert work.training.stream.resident is not None  # its batches are made on the device
    work.finish()
    assert runtime.resident_data.keys() == kept.keys()


# --------------------------------------------------------------------------- fault 6: whole batches


def test_cifar_accuracy_reads_no_image_one_at_a_time_and_is_the_per_image_result(tmp_path, monkeypatch):
    write_cifar(tmp_path / "cifar")
    bundle = Cifar10Config(root=tmp_path / "cifar").build(tmp_path, seed=0)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10))
    # the per-image result: every test image through the dataset's transform, in order
    expected_correct, expected_loss = 0, 0.0
    with torch.inference_mode():
        for start in range(0, len(bundle.test), 8):
            x, y = default_collate([bundle.test[i] for i in range(start, min(start + 8, len(bundle.test)))])
            logits = net(x)
            expected_correct += int((logits.argmax(1) == y).sum())
            expected_loss += float(F.cross_entropy(logits, y, reduction="sum"))
    calls = []
    getitem = type(bundle.test).__getitem__
    monkeypatch.setattr(type(bundle.test), "__getitem__", lambda self, i: calls.append(i) or getitem(self, i))
    acc, loss = measure(net, bundle.test, None, 8, _One(), _no_autocast, with_loss=True)
    batches = list(eval_batches(bundle.test, None, 8, torch.device("cpu")))
    assert calls == [], f"{len(calls)} images read one at a time"
    assert round(acc * len(bundle.test)) == expected_correct
    assert abs(loss - expected_loss / len(bundle.test)) < 1e-6
    monkeypatch.undo()
    # the very tensors the per-image transform makes (ToTensor, Normalize), bit for bit
    per_image = [default_collate([bundle.test[i] for i in range(s, min(s + 8, len(bundle.test)))]) for s in range(0, 20, 8)]
    assert all(torch.equal(x, px) and torch.equal(y, py) for (x, y), (px, py) in zip(batches, per_image))


def _no_autocast():
    import contextlib

    return contextlib.nullcontext()


class _PerImage(Dataset):
    """A dataset that can only be read image by image (as ImageFolder); says which process read."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, i: int):
        return torch.full((1, 2, 2), float(i)), torch.tensor([i % 10, os.getpid()])


def test_a_dataset_read_image_by_image_is_measured_with_worker_processes():
    batches = list(eval_batches(_PerImage(), None, 5, torch.device("cpu"), workers=2))
    assert [x[:, 0, 0, 0].tolist() for x, _ in batches] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]
    assert all(int(pid) != os.getpid() for _, y in batches for pid in y[:, 1])


def test_accuracy_batches_are_the_same_whatever_the_number_of_processes():
    # so that an accuracy with each batch's own BatchNorm statistics (run.eval_bn: batch) does not
    # depend on the world size: the ranks share out whole batches (fault 10)
    from sgl.registry.datasets.base import TensorImageDataset

    dataset = TensorImageDataset(torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10))

    def batches(rank: int = 0, world: int = 1) -> list[list[float]]:
        return [x.flatten().tolist() for x, _ in eval_batches(dataset, torch.arange(10), 4, torch.device("cpu"),
                                                              rank=rank, world=world)]

    assert sorted(batches(0, 2) + batches(1, 2)) == batches() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


# --------------------------------------------------------------------------- fault 7: no copy per batch


def test_device_batches_make_no_host_copies_batch_by_batch(monkeypatch):
    data = InMemory(torch.randint(256, (64, 3, 8, 8), dtype=torch.uint8), torch.arange(64) % 10,
                    BatchAugment(pad=2, flip=True, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2)))
    stream = BatchStream(torch.utils.data.TensorDataset(data.images, data.labels), torch.arange(64), 8, seed=1, resident=data)
    stream.next()  # the first batch of a cycle moves the cycle's order and the constants once
    made, moved = [], []
    tensor, to = torch.tensor, torch.Tensor.to
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: made.append(a) or tensor(*a, **k))
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: moved.append(a) or to(self, *a, **k))
    for _ in range(5):
        stream.next()
    assert made == [] and moved == [], (made, moved)


class _WorldOfTwo:
    """Collectives of a world of two that counts the reductions every process waits for."""

    world, rank, device = 2, 0, torch.device("cpu")

    def __init__(self) -> None:
        self.waited, self.sent = 0, 0

    def any_of(self, flags):
        self.waited += 1
        return list(flags)

    def any_of_later(self, flags):
        from sgl.engine.run.distributed import Pending

        self.sent += 1
        return Pending(None, torch.tensor([float(f) for f in flags]))


class _Work:
    name, epochs, iterations = "search", 1, 10

    def begin_epoch(self, epoch): pass
    def iteration(self, epoch): pass
    def display(self, epoch): return epoch, 1
    def flush(self, epoch, iteration): pass
    def end_epoch(self, epoch): return False


class _Quiet:
    def advance(self, *args): pass


def test_an_epoch_checks_its_stops_without_waiting_every_iteration():
    from sgl.engine.run.checkpoint import Cursor
    from sgl.engine.run.loop import StopControl, TrainingLoop

    collectives = _WorldOfTwo()
    loop = TrainingLoop(log_every=100, stop=StopControl(collectives=collectives), progress=_Quiet(), save=lambda *a: None)
    loop.run(_Work(), Cursor())
    assert collectives.waited == 0, f"{collectives.waited} blocking reductions in an epoch of 10 iterations"
    assert collectives.sent == 9  # every iteration's flags still travel, read one iteration later


def test_a_stop_asked_on_one_process_is_acted_on_by_all_one_iteration_later():
    from sgl.engine.errors import Interrupted
    from sgl.engine.run.checkpoint import Cursor
    from sgl.engine.run.loop import StopControl, TrainingLoop

    stop = StopControl(collectives=_WorldOfTwo())
    saved = []

    class Work(_Work):
        def iteration(self, epoch):
            if cursor.iteration == 3:
                stop.signalled = True  # a Ctrl-C arrives during the 4th iteration

    cursor = Cursor()
    loop = TrainingLoop(log_every=100, stop=stop, progress=_Quiet(), save=lambda c, w: saved.append(c.iteration))
    try:
        loop.run(Work(), cursor)
    except Interrupted:
        pass
    assert saved == [5]  # sent after iteration 4, agreed and acted on after iteration 5


# --------------------------------------------------------------------------- fault 8: workers


def test_workers_are_the_machines_cpus_shared_among_its_processes_and_streams(tmp_path, monkeypatch):
    from sgl.engine.run.runtime import data_workers

    plan = build_runner(write_spec(tmp_path, SPEC)).plan

    class OnAGpu:
        device = torch.device("cuda")

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # 8 GPUs, 8 processes on this machine
    assert 3 * data_workers(plan, OnAGpu(), share=3) <= 3  # 2 CPUs each: a worker per stream at most
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert data_workers(plan, OnAGpu(), share=3) == 2 and data_workers(plan, OnAGpu()) == 8
