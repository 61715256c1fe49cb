"""Data for a run: deterministic splits and persistent, resumable batch streams.

A ``BatchStream`` never ends: it walks a permutation of its indices and draws a new permutation
(from its own seed and the cycle number) when one is used up. Its whole state is two integers,
so a checkpoint resumes the exact data order without replaying anything.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, default_collate


def stream_seed(run_seed: int, name: str) -> int:
    return zlib.crc32(f"{run_seed}/{name}".encode()) & 0x7FFFFFFF


@dataclass(frozen=True)
class Splits:
    train: torch.Tensor  # indices into the bundle's training set
    val: torch.Tensor


def split_indices(n: int, train: float, val: float, *, shuffle: bool, seed: int) -> Splits:
    """D_train then D_val, taken in order (DARTS: first and second half) or after a seeded shuffle."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(n)
    n_train = int(n * train)
    n_val = min(int(n * val), n - n_train)
    return Splits(order[:n_train], order[n_train : n_train + n_val])


def in_memory(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(images, labels) when the dataset is plain tensors with no per-item transform: then batches
    are gathered with one indexing operation instead of item by item."""
    if getattr(dataset, "transform", "absent") is None and hasattr(dataset, "images"):
        return dataset.images, dataset.labels
    return None


class BatchStream:
    """An endless, seeded stream of batches over ``indices`` of ``dataset``, sharded by rank.

    Three ways to make a batch: gather it from the dataset's tensors when they are plain data (no
    per-item transform); with ``resident`` (the dataset as tensors already on the device, see
    ``registry.datasets.batched``), gather and augment it there as a whole, from a generator seeded
    by the stream, the batch's position and the rank (so it resumes exactly); or item by item
    through the dataset's transform (``num_workers`` DataLoader workers, pinned memory on a GPU).
    """

    def __init__(
        self,
        dataset: Dataset,
        indices: torch.Tensor,
        batch_size: int,
        seed: int,
        *,
        rank: int = 0,
        world: int = 1,
        num_workers: int = 0,
        device: torch.device | str = "cpu",
        resident: Any = None,
    ) -> None:
        self.dataset = dataset
        self.indices = indices
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world = world
        self.num_workers = num_workers
        self.device = torch.device(device)
        self.batches_per_cycle = len(indices) // (batch_size * world)
        if self.batches_per_cycle == 0:
            raise ValueError(f"{len(indices)} examples cannot fill one batch of {batch_size} on {world} process(es)")
        self.cycle = 0
        self.pos = 0
        self.resident = resident
        self._tensors = in_memory(dataset)
        self._perm: torch.Tensor | None = None
        self._loader_iter: Iterator[Any] | None = None

    def _permutation(self, cycle: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + cycle)
        return self.indices[torch.randperm(len(self.indices), generator=generator)]

    def _batch_indices(self, cycle: int, pos: int) -> torch.Tensor:
        if self._perm is None or self._perm_cycle != cycle:
            self._perm = self._permutation(cycle)
            self._perm_cycle = cycle
        start = (pos * self.world + self.rank) * self.batch_size
        return self._perm[start : start + self.batch_size]

    def _positions(self, cycle: int, pos: int) -> Iterator[list[int]]:
        """Batch index lists from (cycle, pos) on, for a DataLoader's batch_sampler."""
        while True:
            perm = self._permutation(cycle)
            for p in range(pos, self.batches_per_cycle):
                start = (p * self.world + self.rank) * self.batch_size
                yield perm[start : start + self.batch_size].tolist()
            cycle, pos = cycle + 1, 0

    def _resident_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        data = self.resident
        if self._perm is None or self._perm_cycle != self.cycle:
            # One copy of the cycle's order to the device; a copy per batch would wait for the device.
            self._perm = self._permutation(self.cycle).to(data.images.device)
            self._perm_cycle = self.cycle
        idx = self._batch_indices(self.cycle, self.pos)
        x, y = data.images[idx], data.labels[idx]
        if data.augment is None:
            return x if x.is_floating_point() else x.float(), y
        generator = torch.Generator(device=x.device)
        generator.manual_seed(((self.seed * 1_000_003 + self.cycle) * 1_000_033 + self.pos) * 64 + self.rank & (2**63 - 1))
        return data.augment(x, generator), y

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pos >= self.batches_per_cycle:
            self.cycle, self.pos = self.cycle + 1, 0
        if self.resident is not None:
            x, y = self._resident_batch()
            self.pos += 1
            return x, y
        if self._tensors is not None:
            idx = self._batch_indices(self.cycle, self.pos)
            x, y = self._tensors[0][idx], self._tensors[1][idx]
        elif self.num_workers == 0:
            idx = self._batch_indices(self.cycle, self.pos)
            x, y = default_collate([self.dataset[i] for i in idx.tolist()])
        else:
            if self._loader_iter is None:
                loader = DataLoader(
                    self.dataset,
                    batch_sampler=self._positions(self.cycle, self.pos),
                    num_workers=self.num_workers,
                    persistent_workers=True,
                    pin_memory=self.device.type == "cuda",
                )
                self._loader_iter = iter(loader)
            x, y = next(self._loader_iter)
        self.pos += 1
        if self.device.type == "cuda":  # pinned host memory: the copy overlaps the work already queued
            x, y = (t if t.is_pinned() else t.pin_memory() for t in (x, y))
            return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        return x.to(self.device), y.to(self.device)

    def state_dict(self) -> dict[str, int]:
        return {"cycle": self.cycle, "pos": self.pos}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.cycle, self.pos = int(state["cycle"]), int(state["pos"])
        self._loader_iter = None


def eval_batches(dataset: Dataset, indices: torch.Tensor | None, batch_size: int, device: torch.device, *,
                 rank: int = 0, world: int = 1, resident: Any = None, workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed-order batches for measuring accuracy. The batches are the same whatever the number of
    processes (each rank takes every ``world``-th of them), so an accuracy measured with each batch's
    own statistics (``run.eval_bn: batch``) does not depend on it.

    A batch is gathered from ``resident`` (the dataset on the device) or from the dataset's tensors
    on the host, with its evaluation transform (normalising) applied to the whole batch; a dataset
    that can only be read image by image goes through a DataLoader with ``workers`` processes
    (pinned memory on a GPU) when it has any, else through the main process.
    """
    idx = torch.arange(len(dataset)) if indices is None else indices
    data = resident if resident is not None else _evaluation_tensors(dataset)
    if data is not None:
        # the indices go to the device once, not batch by batch
        chunks = idx.to(data.images.device).split(batch_size)[rank::world]
        for chunk in chunks:
            x, y = data.images[chunk], data.labels[chunk]
            x = data.augment.normalise(x) if data.augment is not None else (x if x.is_floating_point() else x.float())
            yield _to(x, device), _to(y, device)
        return
    chunks = [chunk.tolist() for chunk in idx.split(batch_size)[rank::world]]
    if workers == 0:
        for chunk in chunks:
            x, y = default_collate([dataset[i] for i in chunk])
            yield x.to(device), y.to(device)
        return
    with torch.random.fork_rng(devices=[]):  # the loader's seed draw leaves the run's randomness alone
        loader = iter(DataLoader(dataset, batch_sampler=chunks, num_workers=workers, pin_memory=device.type == "cuda"))
    for x, y in loader:
        yield _to(x, device), _to(y, device)


def _evaluation_tensors(dataset: Dataset) -> Any:
    """The dataset as tensors on the host with a transform that draws nothing (else None)."""
    tensors = in_memory(dataset)
    if tensors is not None:
        from sgl.registry.datasets.batched import InMemory

        return InMemory(tensors[0], tensors[1], None)
    data = dataset.in_memory() if hasattr(dataset, "in_memory") else None
    return data if data is not None and (data.augment is None or not data.augment.random) else None


def _to(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """On ``device``; from pinned host memory without waiting for the device."""
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return (t if t.is_pinned() else t.pin_memory()).to(device, non_blocking=True)
    return t.to(device)
