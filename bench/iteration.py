"""One SGL search iteration: a hand-written PyTorch loop vs the engine's default path vs its plain one.

    python bench/iteration.py [--sizes small cifar] [--iterations 10] [--cifar-iterations 2] [--json]
                              [--device cpu|cuda] [--precision no|bf16|fp16]

Every variant runs the same math on the same networks (DARTS supernets, K learners, first-order
A-step, then W, PL and V steps for every learner, the authors' order) from the same initial
weights: the hand loop is what a researcher forking DARTS' train_search.py would write; the
engine's default path is ``sgl run``'s (the fused supernets, ``run.fused: true``); its plain path
is ``run.fused: false`` (the reference networks). The variants alternate iteration by iteration in
one process (the machine's speed drifts), the first iteration of each is a warm-up, and the
medians and ratios are printed (``--json``: one object).

Sizes: ``small`` is the quickstart's scale (digits 8x8x1, 5 cells, C=8, 4 nodes, batch 64, K=2);
``cifar`` is CIFAR's shape (digits upsampled to 32x32x3, 8 cells, C=16, 4 nodes, batch 64, K=2);
``tiny`` (3 cells, C=4, batch 16) only checks that the script runs (``bench/gpu.sh --smoke``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

SPEC = """
name: bench
seed: 0
data: {{dataset: {{name: digits, size: {size}, channels: {channels}}}, batch_size: {batch}}}
learners:
{learners}
stages:
  - {{epochs: 1, steps: [A, W, PL, V]}}
run: {{cpu: {cpu}, mixed_precision: "{precision}", log_every: 1000000}}
"""

SIZES = {
    "small": dict(size=8, channels=1, cells=5, C=8, batch=64),
    "cifar": dict(size=32, channels=3, cells=8, C=16, batch=64),
    "tiny": dict(size=8, channels=1, cells=3, C=4, batch=16),
}


def hand_iteration(learners, opts, arch_opts, x, y, xu, xv, yv, clip=5.0, autocast=None) -> None:
    import contextlib

    with autocast() if autocast is not None else contextlib.nullcontext():
        _hand_iteration(learners, opts, arch_opts, x, y, xu, xv, yv, clip)


def _hand_iteration(learners, opts, arch_opts, x, y, xu, xv, yv, clip=5.0) -> None:
    # A: first order through V on the validation batch
    for k, (space, w, v) in learners.items():
        arch_opts[k].zero_grad()
        loss = F.cross_entropy(v(xv, space()), yv)
        grads = torch.autograd.grad(loss, space.arch_parameters(), allow_unused=True)
        for p, g in zip(space.arch_parameters(), grads):
            p.grad = torch.zeros_like(p) if g is None else g
        arch_opts[k].step()
    # W
    for k, (space, w, v) in learners.items():
        with torch.no_grad():
            arch = space()
        opts[k, "W"].zero_grad()
        F.cross_entropy(w(x, arch), y).backward()
        torch.nn.utils.clip_grad_norm_(w.parameters(), clip)
        opts[k, "W"].step()
    # PL
    labels = {}
    with torch.no_grad():
        for k, (space, w, v) in learners.items():
            labels[k] = F.softmax(w(xu, space()), dim=1)
    # V
    for k, (space, w, v) in learners.items():
        with torch.no_grad():
            arch = space()
        opts[k, "V"].zero_grad()
        loss = F.cross_entropy(v(x, arch), y)
        logits_u = v(xu, arch)
        for j in learners:
            if j != k:
                loss = loss - (labels[j] * F.log_softmax(logits_u, dim=1)).sum(1).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(v.parameters(), clip)
        opts[k, "V"].step()


def _runners(size: str, learners: int, device: str, precision: str):
    from sgl.engine.run.runner import build_runner

    shape = SIZES[size]
    names = [f"l{i}" for i in range(learners)]
    text = "\n".join(f"  {n}: {{kind: darts, channels: {shape['C']}, layers: {shape['cells']}, nodes: 4}}" for n in names)
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "bench.yaml"
        spec.write_text(SPEC.format(size=shape["size"], channels=shape["channels"], batch=shape["batch"], learners=text,
                                    cpu="true" if device == "cpu" else "false", precision=precision))
        return build_runner(spec), build_runner(spec, ["run.fused=false"])


def _hand(runner):
    """The hand loop's own copies of the engine's networks, optimizers built as DARTS does."""
    hand, opts, arch_opts = {}, {}, {}
    for k, learner in runner.learners.items():
        space = copy.deepcopy(learner.space)
        w, v = copy.deepcopy(learner.nets["W"].module), copy.deepcopy(learner.nets["V"].module)
        hand[k] = (space, w, v)
        for name, net in (("W", w), ("V", v)):
            opts[k, name] = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
        arch_opts[k] = torch.optim.Adam(space.arch_parameters(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    return hand, opts, arch_opts


def measure(size: str, learners: int, iterations: int, device: str = "cpu", precision: str = "no") -> dict:
    default, plain = _runners(size, learners, device, precision)
    hand, opts, arch_opts = _hand(plain)
    streams = plain.streams
    cuda = device == "cuda"

    def hand_step() -> None:
        x, y = streams["train"].next()
        hand_iteration(hand, opts, arch_opts, x, y, streams["unlabeled"].next()[0], *streams["val"].next(),
                       autocast=plain.accelerator.autocast if precision != "no" else None)

    variants = {"hand": hand_step, "engine": default.search_iteration, "engine_plain": plain.search_iteration}
    times: dict[str, list[float]] = {name: [] for name in variants}
    peak: dict[str, int] = {name: 0 for name in variants}
    load_before = os.getloadavg()[0]
    for _ in range(iterations + 1):
        for name, step in variants.items():
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            step()
            if cuda:
                torch.cuda.synchronize()
                peak[name] = max(peak[name], torch.cuda.max_memory_allocated())
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t[1:]) for name, t in times.items()}
    result = {
        "size": size, "learners": learners, "iterations": iterations, "shape": SIZES[size],
        "device": device, "precision": precision,
        "seconds_per_iteration": {k: round(v, 4) for k, v in med.items()},
        "hand_over_engine": round(med["hand"] / med["engine"], 3),
        "engine_plain_over_hand": round(med["engine_plain"] / med["hand"], 3),
        "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    if cuda:
        result["peak_memory_gib"] = {k: round(v / 2**30, 3) for k, v in peak.items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=["small", "cifar"])
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations at the small size")
    parser.add_argument("--cifar-iterations", type=int, default=2, help="timed iterations at CIFAR shape (slow)")
    parser.add_argument("--learners", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["no", "bf16", "fp16"], default="no")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if os.getloadavg()[0] > 0.7:
        print(f"warning: 1-minute load is {os.getloadavg()[0]:.2f}; timings on a busy machine are unreliable", file=sys.stderr)
    results = []
    for size in args.sizes:
        n = args.cifar_iterations if size == "cifar" else args.iterations
        results.append(measure(size, args.learners, n, args.device, args.precision))
        if not args.json:
            r = results[-1]
            s = r["seconds_per_iteration"]
            print(f"{size}: hand {s['hand']:.3f} s/it, engine (default, fused) {s['engine']:.3f} s/it "
                  f"({r['hand_over_engine']}x faster than hand), engine plain {s['engine_plain']:.3f} s/it "
                  f"(x{r['engine_plain_over_hand']} of hand); load {r['load_1min']}", flush=True)
    if args.json:
        print(json.dumps({"threads": args.threads, "results": results}))


if __name__ == "__main__":
    main()
