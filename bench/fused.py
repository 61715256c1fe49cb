"""Forward+backward of K plain supernets vs edge batching vs edge and learner batching.

    python bench/fused.py [--sizes small,cifar] [--iterations 10] [--cifar-iterations 2] [--threads 1]
                          [--kind darts] [--variants edge_batched,edge_and_learner_batched,...]

Ways of computing the same thing, timed interleaved in one process (iteration i runs each variant
once, in rotating order, so machine load hits them alike): the K plain networks one after the
other; K fused networks of one learner each (edge batching only); one fused network of K learners
(edge and learner batching); and both fused variants without the depthwise-conv rewrites of
``fused_conv`` (``*_direct_convs``), to tell the levers apart. Sizes: "small" is the quickstart (digits 8x8x1, 5 cells,
C=8, 4 nodes, batch 64, K=2); "cifar" is CIFAR's shape (32x32x3, 8 cells, C=16, batch 64, K=2).
Prints one JSON object: median seconds per variant and size, speed-ups over plain, and the
1-minute load average before and after each size (the machine is shared; ratios are what count).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SIZES = {
    "small": dict(task=(10, 1, 8), channels=8, layers=5, nodes=4, batch=64, learners=2),
    "cifar": dict(task=(10, 3, 32), channels=16, layers=8, nodes=4, batch=64, learners=2),
}


def build(kind: str, size: dict):
    from sgl.registry.spaces import DartsConfig, PCDartsConfig, PDartsConfig, PDartsPhase
    from sgl.registry.task import Task

    common = dict(channels=size["channels"], nodes=size["nodes"])
    if kind == "darts":
        cfg = DartsConfig(layers=size["layers"], **common)
    elif kind == "pc_darts":
        cfg = PCDartsConfig(layers=size["layers"], **common)
    else:
        cfg = PDartsConfig(phases=[PDartsPhase(layers=size["layers"], ops=8, skip_dropout=0.0)], **common)
    task = Task(*size["task"])
    spaces = [cfg.build(task) for _ in range(size["learners"])]
    return task, spaces, [s.new_network() for s in spaces]


def measure(kind: str, name: str, iterations: int, chosen: list[str]) -> dict:
    import torch
    import torch.nn.functional as F

    from sgl.registry.spaces.fused import FusedDartsNetwork

    size = SIZES[name]
    torch.manual_seed(0)
    task, spaces, nets = build(kind, size)
    edge_only = [FusedDartsNetwork.from_networks([n]) for n in nets]
    fused = FusedDartsNetwork.from_networks(nets)
    edge_only_direct = [FusedDartsNetwork.from_networks([n], depthwise=False) for n in nets]
    fused_direct = FusedDartsNetwork.from_networks(nets, depthwise=False)
    x = torch.randn(size["batch"], task.in_channels, task.image_size, task.image_size)
    y = torch.arange(size["batch"]) % task.num_classes

    def plain() -> None:
        loss = sum(F.cross_entropy(n(x, s()), y) for s, n in zip(spaces, nets))
        loss.backward()

    def edges(nets) -> None:  # type: ignore[no-untyped-def]
        loss = sum(F.cross_entropy(f(x, [s()])[0], y) for s, f in zip(spaces, nets))
        loss.backward()

    def learners(net) -> None:  # type: ignore[no-untyped-def]
        logits = net(x, [s() for s in spaces])
        sum(F.cross_entropy(z, y) for z in logits).backward()

    every = {
        "plain": plain,
        "edge_batched": lambda: edges(edge_only),
        "edge_and_learner_batched": lambda: learners(fused),
        # The same without fused_conv's depthwise rewrites: what the batching alone gives.
        "edge_batched_direct_convs": lambda: edges(edge_only_direct),
        "edge_and_learner_batched_direct_convs": lambda: learners(fused_direct),
    }
    variants = {k: every[k] for k in ["plain", *chosen]}
    for fn in variants.values():  # warm-up: oneDNN builds its kernels on first use
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    load_before = os.getloadavg()[0]
    order = list(variants)
    for i in range(iterations):
        for key in order[i % len(order) :] + order[: i % len(order)]:
            start = time.perf_counter()
            variants[key]()
            times[key].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {
        "config": {k: v for k, v in size.items()},
        "iterations": iterations,
        "median_s": {k: round(v, 4) for k, v in medians.items()},
        "speedup_vs_plain": {k: round(medians["plain"] / v, 3) for k, v in medians.items() if k != "plain"},
        "load_1min_before": load_before,
        "load_1min_after": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,cifar")
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations at the small size")
    parser.add_argument("--cifar-iterations", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kind", default="darts", choices=["darts", "pc_darts", "p_darts"])
    parser.add_argument(
        "--variants",
        default="edge_batched,edge_and_learner_batched,edge_batched_direct_convs,edge_and_learner_batched_direct_convs",
        help="compared with plain; the *_direct_convs ones skip the depthwise rewrites",
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    result = {"kind": args.kind, "threads": args.threads, "torch": torch.__version__, "sizes": {}}
    for name in args.sizes.split(","):
        iterations = args.iterations if name == "small" else args.cifar_iterations
        result["sizes"][name] = measure(args.kind, name, iterations, args.variants.split(","))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
