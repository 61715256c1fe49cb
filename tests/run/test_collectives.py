"""The engine's collectives between two gloo processes (issue #19): the gradient mean takes tensors
of several dtypes at once, one bucket each (fault 11), the flags of a stop travel without anyone
waiting (fault 7), and BatchNorm statistics are every process's own in a checkpoint (fault 10)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import torch.multiprocessing as mp

from sgl.engine.run.checkpoint import local_statistics, set_local_statistics


class _Accelerator:
    """What ``Collectives`` asks of Accelerate, over the process group formed here."""

    def __init__(self, rank: int, world: int) -> None:
        self.process_index, self.num_processes = rank, world
        self.is_main_process = rank == 0
        self.device = torch.device("cpu")

    def reduce(self, values, reduction="sum"):
        import torch.distributed as dist

        values = values.clone()
        dist.all_reduce(values)
        return values / self.num_processes if reduction == "mean" else values


def _in_two_processes(body) -> None:
    """Run ``body(rank, collectives)`` in two processes joined by gloo (a file rendezvous: no port)."""
    with tempfile.TemporaryDirectory() as tmp:
        mp.start_processes(_worker, args=(body, str(Path(tmp) / "rendezvous")), nprocs=2, start_method="spawn")


def _worker(rank: int, body, rendezvous: str) -> None:
    import torch.distributed as dist

    from sgl.engine.run.distributed import Collectives

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        body(rank, Collectives(_Accelerator(rank, 2)))
    finally:
        dist.destroy_process_group()


def _mixed_dtypes(rank: int, collectives) -> None:
    # each dtype reduced in its own: a bf16 buffer would round the float32 mean 1 + 2^-11 to 1, and a
    # float32 one the float64 mean 2 + 2^-39 to 2
    tensors = [torch.full((4,), 4.0 * (rank + 1), dtype=torch.bfloat16), torch.full((3,), 1.0 + (1 + 2 * rank) * 2**-12),
               torch.full((2, 2), 2.0 + (1 + 2 * rank) * 2**-40, dtype=torch.float64), torch.full((1,), 10.0 * rank)]
    for _ in range(2):  # the second time through the kept buffers
        values = [t.clone() for t in tensors]
        collectives.mean_(values)
        expected = [6.0, 1.0 + 2**-11, 2.0 + 2**-39, 5.0]
        for value, original, mean in zip(values, tensors, expected):
            assert value.dtype == original.dtype and value.shape == original.shape
            assert torch.equal(value, torch.full_like(original, mean)), (value, mean)


def test_the_gradient_mean_takes_several_dtypes_at_once():
    _in_two_processes(_mixed_dtypes)


def _flags_later(rank: int, collectives) -> None:
    pending = [collectives.any_of_later([rank == 1, False]), collectives.any_of_later([False, rank == 0])]
    assert pending[0].result() == [True, False] and pending[1].result() == [False, True]


def test_stop_flags_are_reduced_without_waiting_for_them():
    _in_two_processes(_flags_later)


def test_each_process_takes_back_its_own_batchnorm_statistics():
    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2)).train() for _ in range(2)]
    for k, net in enumerate(nets):
        net(torch.randn(4, 1, 3, 3) + k)  # each process's own batch
    saved = [local_statistics({"alice.W": net}) for net in nets]
    assert not torch.equal(saved[0]["alice.W/1.running_mean"], saved[1]["alice.W/1.running_mean"])
    restored = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    restored.load_state_dict(nets[0].state_dict())  # the checkpoint's network: the main process's
    set_local_statistics({"alice.W": restored}, saved, rank=1, world=2)
    assert torch.equal(restored[1].running_mean, nets[1][1].running_mean)
    assert torch.equal(restored[1].running_var, nets[1][1].running_var)
    # resumed on another number of processes: their mean
    set_local_statistics({"alice.W": restored}, saved, rank=0, world=1)
    torch.testing.assert_close(restored[1].running_mean, (nets[0][1].running_mean + nets[1][1].running_mean) / 2)
