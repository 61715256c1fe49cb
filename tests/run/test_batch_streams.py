"""Batch streams: endless, seeded, resumable from two integers, sharded by rank, same with workers."""

from __future__ import annotations

import torch

from sgl.engine.run.data import BatchStream, eval_batches, split_indices
from sgl.registry.datasets.base import TensorImageDataset


def _plus_one(image: torch.Tensor) -> torch.Tensor:  # module level: DataLoader workers can use it
    return image + 1


def _data(transform=None) -> TensorImageDataset:
    images = torch.arange(40, dtype=torch.float32).view(40, 1, 1, 1)
    return TensorImageDataset(images, torch.arange(40) % 10, transform=transform)


def _labels(stream: BatchStream, n: int) -> list[list[int]]:
    return [stream.next()[1].tolist() for _ in range(n)]


def test_split_in_order_or_shuffled():
    ordered = split_indices(10, 0.5, 0.5, shuffle=False, seed=0)
    assert ordered.train.tolist() == [0, 1, 2, 3, 4] and ordered.val.tolist() == [5, 6, 7, 8, 9]
    shuffled = split_indices(10, 0.5, 0.5, shuffle=True, seed=0)
    assert sorted(shuffled.train.tolist() + shuffled.val.tolist()) == list(range(10))
    assert shuffled.train.tolist() == split_indices(10, 0.5, 0.5, shuffle=True, seed=0).train.tolist()


def test_stream_cycles_through_every_index_with_a_new_order_each_cycle():
    stream = BatchStream(_data(), torch.arange(40), batch_size=8, seed=3)
    first = [stream.next()[0].view(-1).tolist() for _ in range(5)]
    second = [stream.next()[0].view(-1).tolist() for _ in range(5)]
    assert sorted(sum(first, [])) == list(range(40)) == sorted(sum(second, []))
    assert first != second


def test_stream_resumes_exactly_from_its_state():
    stream = BatchStream(_data(), torch.arange(40), batch_size=8, seed=3)
    _labels(stream, 7)
    state = stream.state_dict()
    expected = _labels(stream, 6)
    again = BatchStream(_data(), torch.arange(40), batch_size=8, seed=3)
    again.load_state_dict(state)
    assert _labels(again, 6) == expected


def test_ranks_take_disjoint_shares_of_each_global_batch():
    ranks = [BatchStream(_data(), torch.arange(40), batch_size=4, seed=1, rank=r, world=2) for r in range(2)]
    for _ in range(5):  # one cycle: 40 / (4 * 2)
        a, b = (s.next()[0].view(-1).tolist() for s in ranks)
        assert not set(a) & set(b)


def test_workers_give_the_same_batches_as_the_main_process():
    plain = BatchStream(_data(_plus_one), torch.arange(40), batch_size=8, seed=5)
    workers = BatchStream(_data(_plus_one), torch.arange(40), batch_size=8, seed=5, num_workers=2)
    for _ in range(7):
        x, y = plain.next()
        xw, yw = workers.next()
        assert torch.equal(x, xw) and torch.equal(y, yw)
    state = workers.state_dict()
    resumed = BatchStream(_data(_plus_one), torch.arange(40), batch_size=8, seed=5, num_workers=2)
    resumed.load_state_dict(state)
    assert torch.equal(resumed.next()[0], plain.next()[0])


def test_eval_batches_cover_the_indices_once_across_ranks():
    seen = []
    for rank in range(2):
        for x, _ in eval_batches(_data(), torch.arange(10, 30), 6, torch.device("cpu"), rank=rank, world=2):
            seen += x.view(-1).tolist()
    assert sorted(seen) == list(range(10, 30))
