"""What overlapping the gradient mean with the backward pass could save: the mean's share of a step.

    python bench/allreduce.py [--size small|cifar] [--steps 5] [--device cpu|cuda]

Two processes (gloo on the CPU, NCCL on two GPUs) each build the supernet of one DARTS learner at
the quickstart's scale or CIFAR's shape, and time, interleaved, a weight step's forward and
backward and the engine's gradient mean over the two processes (``Collectives.mean_``, one
all-reduce per dtype). Overlapping the mean with the backward pass can save at most the mean's
time: the printed ``mean_share`` bounds what it would pay.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

SHAPES = {"small": dict(size=8, channels=1, cells=5, C=8), "cifar": dict(size=32, channels=3, cells=8, C=16)}


class _Accelerator:
    def __init__(self, rank: int, device: torch.device) -> None:
        self.process_index, self.num_processes, self.is_main_process, self.device = rank, 2, rank == 0, device


def _worker(rank: int, args: argparse.Namespace, rendezvous: str) -> None:
    import torch.distributed as dist

    from sgl.engine.run.distributed import Collectives
    from sgl.registry.spaces import DartsConfig
    from sgl.registry.task import Task

    torch.set_num_threads(1)
    device = torch.device(f"cuda:{rank}" if args.device == "cuda" else "cpu")
    dist.init_process_group("nccl" if args.device == "cuda" else "gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    shape = SHAPES[args.size]
    torch.manual_seed(0)
    space = DartsConfig(channels=shape["C"], layers=shape["cells"], nodes=4).build(
        Task(num_classes=10, in_channels=shape["channels"], image_size=shape["size"])).to(device)
    net = space.new_network(fused=True).to(device)
    params = [p for p in net.parameters() if p.requires_grad]
    collectives = Collectives(_Accelerator(rank, device))
    x = torch.randn(64, shape["channels"], shape["size"], shape["size"], device=device)
    y = torch.randint(10, (64,), device=device)
    arch = {k: v.detach() for k, v in space().items()}
    times: dict[str, list[float]] = {"forward_backward": [], "mean": []}

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.steps + 1):
        start = time.perf_counter()
        for p in params:
            p.grad = None
        F.cross_entropy(net(x, arch), y).backward()
        sync()
        middle = time.perf_counter()
        collectives.mean_([p.grad for p in params])
        sync()
        times["forward_backward"].append(middle - start)
        times["mean"].append(time.perf_counter() - middle)
    if rank == 0:
        med = {k: statistics.median(v[1:]) for k, v in times.items()}
        print(json.dumps({"size": args.size, "device": args.device, "parameters_M": round(sum(p.numel() for p in params) / 1e6, 3),
                          "seconds": {k: round(v, 4) for k, v in med.items()},
                          "mean_share": round(med["mean"] / (med["mean"] + med["forward_backward"]), 4)}))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=list(SHAPES), default="small")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mp.start_processes(_worker, args=(args, str(Path(tmp) / "rendezvous")), nprocs=2, start_method="spawn")


if __name__ == "__main__":
    main()
